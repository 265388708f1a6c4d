"""Tensor helpers behind :class:`~.mask.Mask`: scatter, broadcast checks, probability checks."""

from __future__ import annotations

import torch


def scatter_max_(
    base: torch.Tensor, indices: torch.Tensor, src: torch.Tensor | bool
) -> torch.Tensor:
    """In place on ``base`` (the caller's own new tensor): entries at (B, H, Q, k)
    ``indices`` raised to ``src``."""
    if isinstance(src, bool):
        return base.scatter_(-1, indices, src)
    return base.scatter_reduce_(-1, indices, src.to(base.dtype), reduce="amax")


def as_4d(where: torch.Tensor, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """``where`` viewed as 4-D and checked to broadcast to ``shape`` (ValueError if not)."""
    if where.dim() > 4:
        raise ValueError(f"where must broadcast to {shape}, got {tuple(where.shape)}")
    where = where.reshape((1,) * (4 - where.dim()) + tuple(where.shape))  # (B?, H?, Q?, K?)
    if any(d not in (1, s) for d, s in zip(where.shape, shape, strict=True)):
        raise ValueError(f"where must broadcast to {shape}, got {tuple(where.shape)}")
    return where


def check_probabilities(probabilities: torch.Tensor) -> None:
    """ValueError unless every value lies in [0, 1] (NaN included); synchronises the device,
    so only user-facing constructors call it."""
    if probabilities.dtype == torch.bool or not probabilities.numel():
        return
    low, high = float(probabilities.min()), float(probabilities.max())
    if not (low >= 0.0 and high <= 1.0):  # also False for NaN
        raise ValueError(f"probabilities must lie in [0, 1], got values in [{low}, {high}]")


def row_values(
    indices: torch.Tensor, probabilities: torch.Tensor | float | None, dtype: torch.dtype
) -> torch.Tensor:
    """The probabilities to scatter at ``indices`` (same shape); a scalar is checked to lie in
    [0, 1] (tensors are checked by the public constructors, not on the maskers' hot path)."""
    if probabilities is None:
        return torch.ones(indices.shape, dtype=dtype, device=indices.device)
    if not isinstance(probabilities, torch.Tensor):
        p = float(probabilities)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probabilities must lie in [0, 1], got {p}")
        return torch.full(indices.shape, p, dtype=dtype, device=indices.device)
    if probabilities.shape != indices.shape:
        raise ValueError(
            f"probabilities shape {tuple(probabilities.shape)} must equal indices shape "
            f"{tuple(indices.shape)}"
        )
    return probabilities.to(dtype)
