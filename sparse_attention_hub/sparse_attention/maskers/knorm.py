"""KNorm (Devoto et al., 2024, arXiv:2406.11430): keep the context keys of smallest L2 norm.

Follows kvpress's ``KnormPress``: the score of a key is ``-||k||``, per KV head; the
``n_kept`` best are kept. The queries are not read, so ``query_aware`` changes nothing but
when the decision is made. Deviation: ties keep the earliest keys (``torch.topk``'s order is
unspecified). The norms are taken over chunks of keys upcast to fp32 (``build_chunk_bytes``:
within the call's budget and at most half the size of K), never on an fp32 copy of all keys.
"""

from __future__ import annotations

import dataclasses

import torch

from sparse_attention_hub.sparse_attention.attention import build_chunk_bytes, kv_chunk_keys
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
        """(B, Hkv, n_context): ``-||k||`` in fp32, the keys upcast a chunk at a time."""
        keys = inputs.keys[:, :, :n_context]  # (B, Hkv, n, D)
        out = torch.empty(keys.shape[:3], dtype=torch.float32, device=keys.device)
        step = kv_chunk_keys(keys, build_chunk_bytes(keys, inputs.kv_chunk_bytes))
        for start in range(0, n_context, step):
            chunk = keys[:, :, start : start + step].float()  # (B, Hkv, c, D)
            torch.linalg.vector_norm(chunk, dim=-1, out=out[:, :, start : start + step])
            del chunk
        return out.neg_()
