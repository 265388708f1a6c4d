"""Exact fp32 scores of some query rows against all keys (GQA without repeating the keys)."""

from __future__ import annotations

import torch


def row_scores(
    queries: torch.Tensor, keys: torch.Tensor, scaling: float, softcap: float | None
) -> torch.Tensor:
    """(B, H, r, K) fp32 scaled (and soft-capped) scores of queries (B, H, r, D) against keys
    (B, Hkv, K, D); head h reads key head h // (H // Hkv)."""
    b, h, r, d = queries.shape
    hkv, k_len = int(keys.shape[1]), int(keys.shape[2])
    q = queries.float().reshape(b, hkv, (h // hkv) * r, d)  # (B, Hkv, G * r, D)
    scores = torch.matmul(q, keys.float().transpose(-1, -2)) * scaling  # (B, Hkv, G * r, K)
    scores = scores.reshape(b, h, r, k_len)  # (B, H, r, K)
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    return scores
