"""Helpers of the prefill-masker tests: small call inputs, the (Q, K) pairs a selection computes
(full matrices: for small L only), and a dispatch mode recording the largest tensor created."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from sparse_attention_hub.sparse_attention.prefill.base import PrefillInputs, PrefillSelection


def make_inputs(
    q_len: int,
    k_len: int,
    heads: int = 4,
    kv_heads: int = 2,
    dim: int = 16,
    batch: int = 1,
    seed: int = 0,
    **kwargs: Any,
) -> PrefillInputs:
    """Random queries (B, H, Q, D) and keys (B, Hkv, K, D), the queries the last Q positions of
    the keys unless ``query_start`` says otherwise."""
    gen = torch.Generator().manual_seed(seed)
    queries = torch.randn(batch, heads, q_len, dim, generator=gen)
    keys = torch.randn(batch, kv_heads, k_len, dim, generator=gen)
    kwargs.setdefault("query_start", k_len - q_len)
    return PrefillInputs(queries=queries, keys=keys, scaling=dim**-0.5, **kwargs)


def causal_pairs(inputs: PrefillInputs) -> torch.Tensor:
    """(Q, K) bool: the causal (and in-window) pairs of the call."""
    q_pos = torch.arange(inputs.query_length)[:, None] + inputs.query_start
    k_pos = torch.arange(inputs.key_length)[None, :] + inputs.key_offset
    ok = q_pos >= k_pos
    if inputs.sliding_window is not None:
        ok &= q_pos - k_pos < inputs.sliding_window
    return ok


def selection_pairs(selection: PrefillSelection, inputs: PrefillInputs) -> torch.Tensor:
    """(B, H, Q, K) bool: the causal pairs a selection computes, its blocks expanded and its
    mask_mod evaluated on broadcast index grids (q_idx (Q, 1), kv_idx (1, K))."""
    q_len, k_len, bs = inputs.query_length, inputs.key_length, selection.block_size
    blocks = selection.blocks
    expanded = blocks.repeat_interleave(bs, dim=2).repeat_interleave(bs, dim=3)
    pairs = expanded[:, :, :q_len, :k_len] & causal_pairs(inputs)
    if selection.mask_mod is not None:
        q_idx = torch.arange(q_len)[:, None]
        kv_idx = torch.arange(k_len)[None, :]
        for b in range(blocks.shape[0]):
            for h in range(blocks.shape[1]):
                tok = selection.mask_mod(torch.tensor(b), torch.tensor(h), q_idx, kv_idx)
                pairs[b, h] &= tok.expand(q_len, k_len)
    return pairs


def pairs_to_blocks(pairs: torch.Tensor, block: int) -> torch.Tensor:
    """(B, H, Q, K) bool -> (B, H, ceil(Q / block), ceil(K / block)): blocks holding a pair."""
    b, h, q_len, k_len = pairs.shape
    nq, nk = -(-q_len // block), -(-k_len // block)
    padded = torch.zeros(b, h, nq * block, nk * block, dtype=torch.bool)
    padded[:, :, :q_len, :k_len] = pairs
    return padded.reshape(b, h, nq, block, nk, block).any(dim=5).any(dim=3)


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0
        self.op = ""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor) and leaf.numel() > self.largest:
                self.largest, self.op = leaf.numel(), str(func)
        return out


def with_heavy_keys(inputs: PrefillInputs, fraction: float = 0.05, seed: int = 0) -> PrefillInputs:
    """``inputs`` with attention concentrated on a ``fraction`` of the keys in runs of 16 at
    random places (every query and those keys share a direction), so that threshold and top-k
    selections are sparse."""
    gen = torch.Generator().manual_seed(seed)
    b, hkv, k_len, d = inputs.keys.shape
    u = torch.randn(d, generator=gen)
    u = u / u.norm() * 2.0 * d**0.5
    starts = torch.rand(b, hkv, k_len, generator=gen) < fraction / 16
    heavy = torch.zeros(b, hkv, k_len + 16)
    for shift in range(16):
        heavy[:, :, shift : shift + k_len] += starts.float()
    heavy = (heavy[:, :, :k_len] > 0).float()[..., None]  # (B, Hkv, K, 1)
    keys = inputs.keys + heavy * u
    queries = inputs.queries + u / 2.0
    return dataclasses.replace(inputs, queries=queries, keys=keys)
