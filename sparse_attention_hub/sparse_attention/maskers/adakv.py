"""Ada-KV (Feng et al., 2024, arXiv:2407.11550): a layer's eviction budget spread over its heads.

Any eviction scorer (``snapkv``, ``pyramidkv``, ``h2o``, ``tova``, ``knorm``) takes
``head_budget: adaptive``: instead of the ``n_kept`` best keys of each KV head, the layer keeps
the ``Hkv * n_kept`` best (batch, head, key) scores in one top-k across its KV heads, after a
safeguard keeps the ``int(alpha_safeguard * n_kept)`` best keys of every head (kvpress's
``AdaKVPress``, ``alpha_safeguard`` 0.2). The ratio then holds for the layer, not per head.

Deviations from kvpress: ties keep the earliest (head, key) pairs; the scorer's own choice of
kept window keys (SnapKV) stays a score, so across heads it wins over every other key.
"""

from __future__ import annotations

import torch

from sparse_attention_hub.sparse_attention.maskers.topk import top_k_earliest

#: The values of ``EvictionConfig.head_budget``.
HEAD_BUDGETS = ("uniform", "adaptive")


def adaptive_keep(scores: torch.Tensor, kept: int, alpha_safeguard: float) -> torch.Tensor:
    """(B, Hkv, n) bool: Ada-KV's choice of ``Hkv * kept`` keys per batch row from ``scores``
    (B, Hkv, n, higher = keep), each head keeping at least ``int(alpha_safeguard * kept)``."""
    b, heads, n = scores.shape
    safe = int(kept * alpha_safeguard)
    if safe > 0:
        guard = top_k_earliest(scores, safe)  # (B, Hkv, n)
        scores = scores.masked_fill(guard, torch.finfo(scores.dtype).max)
    flat = top_k_earliest(scores.reshape(b, 1, heads * n), heads * kept)  # (B, 1, Hkv * n)
    return flat.view(b, heads, n)
