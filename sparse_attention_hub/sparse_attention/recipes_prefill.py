"""The sparse-prefill recipes (registered by ``recipes``, which imports this list): name,
paper, builder.

A prefill recipe's builder returns the ``ResearchAttentionConfig`` dict form
``{"maskers": [...], "prefill_maskers": [...]}`` instead of a bare masker list: the decode
maskers are empty (dense decode) so the prefill method is studied alone. To pair one with a
decode method, write both lists in the study file
(``{maskers: [...], prefill_maskers: [...]}``) or override nothing and add the decode
maskers there.

``minference`` is MInference's ``vertical_slash`` prefill masker with its default head
pattern (the per-head best_pattern files of the paper's models load with ``pattern_file``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sparse_attention_hub.sparse_attention.maskers.base import Size

ConfigDict = dict[str, Any]


def block_top_k_prefill(block_budget: Size = 0.1, block_size: int | None = None) -> ConfigDict:
    return {
        "maskers": [],
        "prefill_maskers": [
            {"block_top_k": {"block_budget": block_budget, "block_size": block_size}}
        ],
    }


def flexprefill(
    gamma: float = 0.9,
    tau: float = 0.1,
    min_budget: int | None = 1024,
    max_budget: int | None = None,
    block_size: int = 128,
) -> ConfigDict:
    params = {
        "gamma": gamma,
        "tau": tau,
        "min_budget": min_budget,
        "max_budget": max_budget,
        "block_size": block_size,
    }
    return {"maskers": [], "prefill_maskers": [{"flexprefill": params}]}


def streaming_prefill(sink_size: int = 128, window_size: int = 1024) -> ConfigDict:
    return {
        "maskers": [],
        "prefill_maskers": [
            {"sink": {"sink_size": sink_size}},
            {"local": {"window_size": window_size}},
        ],
    }


def minference(
    vertical_size: int = 1000,
    slash_size: int = 6096,
    last_q: int = 64,
    pattern_file: str | None = None,
) -> ConfigDict:
    params = {
        "vertical_size": vertical_size,
        "slash_size": slash_size,
        "last_q": last_q,
        "pattern_file": pattern_file,
    }
    return {"maskers": [], "prefill_maskers": [{"vertical_slash": params}]}


def xattention(stride: int = 8, threshold: float = 0.9, block_size: int = 128) -> ConfigDict:
    params = {"stride": stride, "threshold": threshold, "block_size": block_size}
    return {"maskers": [], "prefill_maskers": [{"xattention": params}]}


#: (name, paper, builder) of each prefill recipe, in registration order.
PREFILL_RECIPES: list[tuple[str, str, Callable[..., ConfigDict]]] = [
    (
        "block_top_k_prefill",
        "The block oracle of sparse prefill (the upper bound of block-sparse methods, as in "
        "Nawrot et al., 2025, 'The Sparse Frontier'): per query block the key blocks of "
        "highest exact attention mass, 1/10 of its causal blocks; dense decode.",
        block_top_k_prefill,
    ),
    (
        "flexprefill",
        "Lai et al., 2025, 'FlexPrefill: A Context-Aware Sparse Attention Mechanism for "
        "Efficient Long-Sequence Inference' (bytedance/FlexPrefill): gamma 0.9, tau 0.1, "
        "min_budget 1024, blocks of 128; dense decode.",
        flexprefill,
    ),
    (
        "streaming_prefill",
        "The sink + local prefill baseline (StreamingLLM's pattern, Xiao et al., 2024, on the "
        "prefill): 128 sink keys (one 128-token block, the first key block FlexPrefill always "
        "keeps) + a 1024-token window (FlexPrefill's min_budget: the same floor); dense decode.",
        streaming_prefill,
    ),
    (
        "minference",
        "Jiang et al., 2024, 'MInference 1.0: Accelerating Pre-filling for Long-Context LLMs "
        "via Dynamic Sparse Attention' (microsoft/MInference): vertical-slash heads, 1000 "
        "vertical and 6096 slash lines from the last 64 queries (its default head pattern; "
        "pattern_file loads a per-head best_pattern file); dense decode.",
        minference,
    ),
    (
        "xattention",
        "Xu et al., 2025, 'XAttention: Block Sparse Attention with Antidiagonal Scoring' "
        "(mit-han-lab/x-attention): stride 8, threshold 0.9, blocks of 128; dense decode.",
        xattention,
    ),
]
