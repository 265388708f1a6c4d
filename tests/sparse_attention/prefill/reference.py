"""Brute-force references of the sparse prefill on small L: (B, H, Q, K) token masks and
dense masked attention, written from the definitions (no code shared with the engine)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sparse_attention_hub.sparse_attention.prefill.base import PrefillSelection


def allowed_pairs(
    q_len: int, k_len: int, query_start: int, key_offset: int, window: int | None
) -> torch.Tensor:
    """(Q, K) bool: causal (and in the window) pairs, by absolute positions, in Python loops."""
    out = torch.zeros(q_len, k_len, dtype=torch.bool)
    for q in range(q_len):
        for k in range(k_len):
            diff = (query_start + q) - (key_offset + k)
            out[q, k] = diff >= 0 and (window is None or diff < window)
    return out


def selection_pairs(selection: PrefillSelection, b: int, h: int, q_len: int, k_len: int):
    """(B, H, Q, K) bool: the pairs one selection holds (before the causal cut)."""
    s = selection.block_size
    q = torch.arange(q_len)
    k = torch.arange(k_len)
    blocks = selection.blocks.expand(b, h, *selection.blocks.shape[2:])
    on = blocks[:, :, q // s][:, :, :, k // s]  # (B, H, Q, K)
    if selection.mask_mod is not None:
        bi = torch.arange(b).view(b, 1, 1, 1)
        hi = torch.arange(h).view(1, h, 1, 1)
        on = on & selection.mask_mod(bi, hi, q.view(1, 1, -1, 1), k.view(1, 1, 1, -1))
    return on


def union_pairs(
    selections: Sequence[PrefillSelection], b: int, h: int, allowed: torch.Tensor
) -> torch.Tensor:
    """(B, H, Q, K) bool: the union of the selections cut to ``allowed`` (Q, K)."""
    q_len, k_len = allowed.shape
    on = torch.zeros(b, h, q_len, k_len, dtype=torch.bool)
    for selection in selections:
        on |= selection_pairs(selection, b, h, q_len, k_len)
    return on & allowed


def dense_masked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    scale: float,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, Q, H, Dv) fp32 attention of q (B, H, Q, D) over k, v (B, Hkv, K, D) on ``mask``
    (B, H, Q, K) bool, with a sink logit per head as one more softmax entry without value."""
    group = q.shape[1] // k.shape[1]
    k = k.float().repeat_interleave(group, dim=1)
    v = v.float().repeat_interleave(group, dim=1)
    s = q.float() @ k.transpose(-1, -2) * scale
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)
    s = s.masked_fill(~mask, float("-inf"))
    if sinks is not None:
        sink = sinks.float().view(1, -1, 1, 1).expand(*s.shape[:3], 1)
        s = torch.cat([s, sink], dim=-1)
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)[..., : k.shape[2]]
    return (p @ v).transpose(1, 2)
