"""Seeded random attention tensors shared by the masker tests."""

from __future__ import annotations

import torch


def random_qkv(
    h: int, h_kv: int, q: int, k: int, d: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries (1, H, Q, D), keys and values (1, Hkv, K, D) from N(0, 1), seeded."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(1, h, q, d, generator=g),
        torch.randn(1, h_kv, k, d, generator=g),
        torch.randn(1, h_kv, k, d, generator=g),
    )
