"""StreamingLLM's eviction form (Xiao et al., 2024, arXiv:2309.17453): sink + the context's end.

Follows kvpress's ``StreamingLLMPress``: of the L context keys, the first ``n_sink`` (the
attention sinks, default 4) and the last ``n_kept - n_sink`` are kept, the middle evicted,
with ``n_kept = int(L * (1 - compression_ratio))`` as for every eviction masker. Unlike the
``sink`` + ``local`` sparse maskers, the window is fixed at the end of the CONTEXT (decided
once, at the context end) and does not slide with the question or the generated tokens, which
are all kept. The queries are not read, so ``query_aware`` changes nothing but when the
decision is made.

Deviations from kvpress: a context of at most ``n_sink`` keys is allowed (kvpress asserts it is
longer); when ``n_kept < n_sink`` the first ``n_kept`` keys are kept. kvpress's paper-exact
form re-rotates the kept keys to contiguous positions (``KeyRerotationPress``); here, as in
kvpress's plain press, the keys keep their original positions.
"""

from __future__ import annotations

import dataclasses

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.eviction import EvictionConfig, EvictionMasker
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker


@dataclasses.dataclass(frozen=True)
class StreamingEvictionConfig(EvictionConfig):
    """``n_sink``: the first context keys always kept (kvpress's default 4); the rest of the
    budget is the last context keys. ``compression_ratio`` etc. as ``EvictionConfig``."""

    n_sink: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.n_sink
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(
                f"StreamingEvictionConfig.n_sink is the number of first context keys always "
                f"kept and must be an int >= 0, got {value!r}"
            )


def streaming_scores(n_context: int, n_sink: int, device: torch.device) -> torch.Tensor:
    """(n_context,) fp32, higher = keep: the first ``n_sink`` keys score 2, the others their
    position / n_context (in [0, 1)), so a top-k keeps the sinks, then the latest keys."""
    scores = torch.arange(n_context, dtype=torch.float32, device=device) / max(1, n_context)
    scores[:n_sink] = 2.0
    return scores


@register_masker(
    "streaming_eviction",
    "StreamingLLM's eviction form: the first n_sink context keys and the last ones kept, fixed "
    "at the context end (kvpress's StreamingLLMPress); compression_ratio of the context removed.",
)
class StreamingEvictionMasker(EvictionMasker):
    """Scores the context keys by position: sinks first, then recency."""

    config_class = StreamingEvictionConfig
    config: StreamingEvictionConfig

    def context_scores(
        self, inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_context: int
    ) -> torch.Tensor:
        """(B, Hkv, n_context): :func:`streaming_scores` for every batch row and KV head."""
        b, kv_heads = inputs.keys.shape[:2]
        scores = streaming_scores(n_context, self.config.n_sink, inputs.keys.device)
        return scores.expand(b, kv_heads, n_context)
