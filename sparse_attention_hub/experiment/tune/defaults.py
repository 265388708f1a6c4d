"""The default search space of each recipe, so ``methods: [quest, oracle_top_k]`` works.

Sizes are fractions of the keys scaled by the target density (``scale``): a trial for target
0.05 gives ``heavy_size`` 0.5 to 0.9 times 0.05. A recipe not listed here has no default
space: give ``space:`` in the file.

The eviction recipes tune ``compression_ratio`` (the share of the context's keys removed) over
a wide range: the realized density also counts the question and answer keys, which eviction
keeps. The prefill recipes tune the prefill density: ``block_top_k_prefill``'s ``block_budget`` is a
fraction of the causal key blocks, scaled by the target; FlexPrefill's ``gamma`` and
XAttention's ``threshold`` (cumulative attention kept) do not scale with the target, so their
ranges are wide. MInference's vertical / slash sizes and the streaming prefill's window are
token counts: the density they give depends on the context length, so their ranges are wide
log ranges (narrow them with ``space:`` for a benchmark's length).
"""

from __future__ import annotations

from typing import Any

# recipe -> parameter -> the ``space:`` entry the file would give
DEFAULT_SPACES: dict[str, dict[str, Any]] = {
    "streaming_llm": {
        "sink_size": {"scale": [0.05, 0.3]},
        "window_size": {"scale": [0.6, 0.95]},
    },
    "oracle_top_k": {
        "sink_size": {"scale": [0.05, 0.25]},
        "window_size": {"scale": [0.05, 0.25]},
        "heavy_size": {"scale": [0.4, 0.9]},
    },
    "oracle_top_p": {"top_p": {"low": 0.5, "high": 0.99}},
    "quest": {
        "heavy_size": {"scale": [0.5, 1.0]},
        "page_size": {"choices": [8, 16, 32]},
    },
    "vattention": {
        "sink_size": {"scale": [0.05, 0.15]},
        "window_size": {"scale": [0.05, 0.15]},
        "heavy_size": {"scale": [0.2, 0.6]},
        "base_rate_sampling": {"scale": [0.05, 0.3]},
        "epsilon": {"low": 0.01, "high": 0.3, "log": True},
        "delta": {"low": 0.01, "high": 0.3, "log": True},
    },
    "magicpig": {
        "lsh_k": {"choices": [6, 8, 10]},
        "lsh_l": {"choices": [50, 100, 150, 200]},
    },
    # the eviction recipes: the fraction of the context's keys removed; the density also
    # counts the question and answer keys, which eviction keeps, so the range is wide
    **{
        recipe: {"compression_ratio": {"low": 0.5, "high": 0.99}}
        for recipe in ("snapkv", "knorm", "tova", "h2o", "pyramidkv", "adakv")
    },
    "streaming_llm_eviction": {"compression_ratio": {"low": 0.5, "high": 0.99}},
    # the prefill recipes: their targets are prefill densities (density.py)
    "block_top_k_prefill": {"block_budget": {"scale": [0.4, 1.0]}},
    "flexprefill": {"gamma": {"low": 0.5, "high": 0.99}},
    "xattention": {"threshold": {"low": 0.5, "high": 0.99}, "stride": {"choices": [8, 16]}},
    "minference": {
        "vertical_size": {"low": 64, "high": 4096, "log": True, "integer": True},
        "slash_size": {"low": 256, "high": 16384, "log": True, "integer": True},
    },
    "streaming_prefill": {"window_size": {"low": 256, "high": 8192, "log": True, "integer": True}},
}
