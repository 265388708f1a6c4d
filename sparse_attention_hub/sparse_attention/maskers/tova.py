"""TOVA (Oren et al., 2024, arXiv:2401.06104): keep the context keys the last query attends to.

Follows kvpress's ``TOVAPress``: the last observed query's attention (causal softmax over every
key of the call), averaged over all query heads, is the score of every KV head; the last
token's own key scores highest. Deviations: TOVA evicts one token per decoding step; here, as
in kvpress, the decision is made once, at the end of the context (or of the question when
``query_aware``), and only context keys are evicted; ties keep the earliest keys.
"""

from __future__ import annotations

import dataclasses

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.eviction import EvictionConfig, EvictionMasker
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.snapkv import window_attention_mean


@dataclasses.dataclass(frozen=True)
class TOVAConfig(EvictionConfig):
    """``compression_ratio`` and ``query_aware`` (see ``EvictionConfig``)."""


@register_masker(
    "tova",
    "TOVA eviction: context keys kept by the last query's attention averaged over heads "
    "(kvpress's TOVAPress); compression_ratio of the context removed.",
)
class TOVAMasker(EvictionMasker):
    """Scores the context keys by the last query's head-averaged attention."""

    config_class = TOVAConfig
    config: TOVAConfig

    def context_scores(
        self, inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_context: int
    ) -> torch.Tensor:
        """(B, Hkv, n_context): head-averaged attention of the last query; its key highest."""
        last = queries[:, :, -1:]  # (B, H, 1, D)
        position = query_start + queries.shape[2] - 1
        scored = max(0, min(n_context, position - inputs.key_offset))
        b, kv_heads = inputs.keys.shape[:2]
        out = torch.empty(b, kv_heads, n_context, dtype=torch.float32, device=queries.device)
        if scored:
            mean = window_attention_mean(inputs, last, position, scored).mean(1)  # (B, n)
            out[:, :, :scored] = mean[:, None, :]
            out[:, :, scored:] = mean.amax() + 1
        else:
            out.fill_(1.0)
        return out
