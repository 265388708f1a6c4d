"""The default search space of each recipe, so ``methods: [quest, oracle_top_k]`` works.

Sizes are fractions of the keys scaled by the target density (``scale``): a trial for target
0.05 gives ``heavy_size`` 0.5 to 0.9 times 0.05. A recipe not listed here has no default
space: give ``space:`` in the file.
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
}
