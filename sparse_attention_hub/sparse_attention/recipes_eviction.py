"""The KV-cache eviction recipes beyond ``snapkv``, ``knorm`` and ``tova`` (registered by
``recipes``, which imports this list): name, paper, builder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MaskerList = list[dict[str, dict[str, Any]]]


def h2o(
    compression_ratio: float = 0.5, recent_ratio: float = 0.5, query_aware: bool = False
) -> MaskerList:
    return [
        {
            "h2o": {
                "compression_ratio": compression_ratio,
                "recent_ratio": recent_ratio,
                "query_aware": query_aware,
            }
        }
    ]


def pyramidkv(
    compression_ratio: float = 0.5,
    num_layers: int | None = None,
    beta: int = 20,
    query_aware: bool = False,
    window_size: int = 64,
    kernel_size: int = 5,
) -> MaskerList:
    return [
        {
            "pyramidkv": {
                "compression_ratio": compression_ratio,
                "num_layers": num_layers,
                "beta": beta,
                "query_aware": query_aware,
                "window_size": window_size,
                "kernel_size": kernel_size,
            }
        }
    ]


def adakv(
    compression_ratio: float = 0.5,
    alpha_safeguard: float = 0.2,
    query_aware: bool = False,
    window_size: int = 64,
    kernel_size: int = 5,
) -> MaskerList:
    return [
        {
            "snapkv": {
                "compression_ratio": compression_ratio,
                "head_budget": "adaptive",
                "alpha_safeguard": alpha_safeguard,
                "query_aware": query_aware,
                "window_size": window_size,
                "kernel_size": kernel_size,
            }
        }
    ]


def streaming_llm_eviction(compression_ratio: float = 0.5, n_sink: int = 4) -> MaskerList:
    return [{"streaming_eviction": {"compression_ratio": compression_ratio, "n_sink": n_sink}}]


#: (name, paper, builder) of each recipe, in registration order.
EVICTION_RECIPES: list[tuple[str, str, Callable[..., MaskerList]]] = [
    (
        "h2o",
        "Zhang et al., 2023, 'H2O: Heavy-Hitter Oracle for Efficient Generative Inference of "
        "Large Language Models': heavy hitters by accumulated prefill attention + the recent "
        "keys, half the budget each; decided at the context end (no decode-time eviction).",
        h2o,
    ),
    (
        "pyramidkv",
        "Cai et al., 2024, 'PyramidKV: Dynamic KV Cache Compression based on Pyramidal "
        "Information Funneling' (as kvpress's PyramidKVPress): SnapKV's scores, a per-layer "
        "budget shrinking with depth (beta 20), the ratio over the whole cache, over the "
        "model's layers (num_layers to set another count).",
        pyramidkv,
    ),
    (
        "adakv",
        "Feng et al., 2024, 'Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget "
        "Allocation' (Ada-SnapKV, as kvpress's AdaKVPress(SnapKVPress)): one top-k across the "
        "KV heads of a layer, alpha_safeguard 0.2.",
        adakv,
    ),
    (
        "streaming_llm_eviction",
        "Xiao et al., 2024, 'Efficient Streaming Language Models with Attention Sinks' "
        "(eviction form, as kvpress's StreamingLLMPress): the first 4 context keys and the "
        "last ones kept, fixed at the context end (streaming_llm is the sliding form).",
        streaming_llm_eviction,
    ),
]
