"""KNorm (Devoto et al., 2024, arXiv:2406.11430): keep the context keys of smallest L2 norm.

Follows kvpress's ``KnormPress``: the score of a key is ``-||k||``, per KV head; the
``n_kept`` best are kept. The queries are not read, so ``query_aware`` changes nothing but
when the decision is made. Deviation: ties keep the earliest keys (``torch.topk``'s order is
unspecified).
"""

from __future__ import annotations

import dataclasses

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.eviction import EvictionConfig, EvictionMasker
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker


@dataclasses.dataclass(frozen=True)
class KNormConfig(EvictionConfig):
    """``compression_ratio`` and ``query_aware`` (see ``EvictionConfig``)."""


@register_masker(
    "knorm",
    "KNorm eviction: the context keys with the smallest L2 norm kept (kvpress's KnormPress); "
    "compression_ratio of the context removed.",
)
class KNormMasker(EvictionMasker):
    """Scores a context key by minus its L2 norm."""

    config_class = KNormConfig
    config: KNormConfig

    def context_scores(
        self, inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_context: int
    ) -> torch.Tensor:
        """(B, Hkv, n_context): ``-||k||`` in fp32."""
        keys = inputs.keys[:, :, :n_context].float()  # (B, Hkv, n, D)
        return -torch.linalg.vector_norm(keys, dim=-1)
