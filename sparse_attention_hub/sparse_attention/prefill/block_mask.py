"""One FlexAttention ``BlockMask`` from the selections of a config's prefill maskers, built
from (query block, key block) index tensors: nothing of Q x K elements exists.

The computed pairs of a call are ``causal & window & OR_m(selected_m)``, where masker ``m``
selects ``blocks_m[b, h, q // s_m, kv // s_m] & mask_mod_m(b, h, q, kv)`` at its own block size
``s_m``. At the engine's block size ``bs``:

- a selection at ``s_m == bs`` without a ``mask_mod`` is *block level*: its blocks are the
  engine's blocks (all of them are OR-ed into one (B, H, nq, nk) table);
- any other selection is a *token condition*: its blocks are mapped to the engine blocks they
  overlap (an engine block is kept when any overlapping selection block is), and inside a
  kept engine block the pair is tested token by token;
- an engine block is FULL (no ``mask_mod`` runs in it) when a block-level selection holds it
  and all its pairs are causal and inside the window; the other kept blocks that hold at least
  one causal pair in the window are PARTIAL and run the combined ``mask_mod``.

Q=K=6, bs=2, a block-level diagonal selection: F = full block, P = partial (causal cut)::

    P . .
    . P .
    . . P
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch.nn.attention.flex_attention import BlockMask

from sparse_attention_hub.sparse_attention.prefill.base import (
    MaskMod,
    PrefillInputs,
    PrefillSelection,
)

#: No query-major tables (a backward pass's): an argument of torch >= 2.7's from_kv_blocks.
_NO_Q_BLOCKS: dict[str, Any] = (
    {"compute_q_blocks": False}
    if "compute_q_blocks" in inspect.signature(BlockMask.from_kv_blocks).parameters
    else {}
)
#: The window of a layer without one (larger than any position difference).
NO_WINDOW = 2**62


@dataclasses.dataclass(frozen=True)
class CallGeometry:
    """The positions of one prefill call: Q queries from ``query_start``, K keys from
    ``key_offset``, an optional sliding window (tokens), the engine block size."""

    batch: int
    heads: int
    query_length: int
    key_length: int
    query_start: int
    key_offset: int
    sliding_window: int | None
    block_size: int

    @property
    def num_blocks(self) -> tuple[int, int]:
        """(ceil(Q / bs), ceil(K / bs))."""
        bs = self.block_size
        return -(-self.query_length // bs), -(-self.key_length // bs)

    @property
    def window(self) -> int:
        return NO_WINDOW if self.sliding_window is None else int(self.sliding_window)

    def allowed(self, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        """Bool: causal and inside the window, for call indices (broadcast like the inputs)."""
        diff = (q_idx + self.query_start) - (kv_idx + self.key_offset)
        return (diff >= 0) & (diff < self.window)


def geometry_of(inputs: PrefillInputs, block_size: int | None = None) -> CallGeometry:
    """The geometry of ``inputs``' call at ``block_size`` (None: the engine's)."""
    return CallGeometry(
        batch=int(inputs.queries.shape[0]),
        heads=inputs.num_heads,
        query_length=inputs.query_length,
        key_length=inputs.key_length,
        query_start=inputs.query_start,
        key_offset=inputs.key_offset,
        sliding_window=inputs.sliding_window,
        block_size=inputs.block_size if block_size is None else block_size,
    )


def block_bounds(geometry: CallGeometry, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(any, all): (nq, nk) bool, whether a block holds any / only causal in-window pairs."""
    g, bs = geometry, geometry.block_size
    nq, nk = g.num_blocks
    q_lo = torch.arange(nq, device=device) * bs + g.query_start  # (nq,) absolute
    q_hi = torch.clamp(q_lo - g.query_start + bs, max=g.query_length) - 1 + g.query_start
    k_lo = torch.arange(nk, device=device) * bs + g.key_offset  # (nk,)
    k_hi = torch.clamp(k_lo - g.key_offset + bs, max=g.key_length) - 1 + g.key_offset
    max_diff = q_hi[:, None] - k_lo[None, :]  # (nq, nk)
    min_diff = q_lo[:, None] - k_hi[None, :]
    any_ok = (max_diff >= 0) & (min_diff < g.window)
    all_ok = (min_diff >= 0) & (max_diff < g.window)
    return any_ok, all_ok


def regrid(blocks: torch.Tensor, block_size: int, geometry: CallGeometry) -> torch.Tensor:
    """(B, H, nq, nk) bool at the engine block size: engine block (i, j) is on when a block of
    ``blocks`` (B, H, nq_s, nk_s) at ``block_size`` that overlaps it is on. No token grid."""
    bs = geometry.block_size
    if block_size == bs:
        return blocks
    out = blocks
    for dim, length in ((2, geometry.query_length), (3, geometry.key_length)):
        n_engine = -(-length // bs)
        first = torch.arange(n_engine, device=blocks.device) * bs  # first token of each block
        last = torch.clamp(first + bs, max=length) - 1
        counts = torch.cumsum(out.to(torch.int32), dim=dim)  # (.., n_s, ..)
        pad = [0] * (2 * (3 - dim)) + [1, 0]
        counts = torch.nn.functional.pad(counts, pad)  # a leading 0 along ``dim``
        hi = counts.index_select(dim, last // block_size + 1)
        lo = counts.index_select(dim, first // block_size)
        out = hi > lo
    return out


def _expand(blocks: torch.Tensor, geometry: CallGeometry) -> torch.Tensor:
    """(B, H, nq, nk) with B and H broadcast to the call's batch and heads."""
    b, h = geometry.batch, geometry.heads
    nq, nk = geometry.num_blocks
    return blocks.expand(b, h, nq, nk)


def split_selections(
    selections: Sequence[PrefillSelection], geometry: CallGeometry, device: torch.device
) -> tuple[torch.Tensor, list[PrefillSelection], torch.Tensor]:
    """(block-level union, token-condition selections, union of every selection's engine
    blocks), the tables (B, H, nq, nk) bool at the engine block size."""
    nq, nk = geometry.num_blocks
    shape = (geometry.batch, geometry.heads, nq, nk)
    plain = torch.zeros(shape, dtype=torch.bool, device=device)
    union = torch.zeros(shape, dtype=torch.bool, device=device)
    conditional: list[PrefillSelection] = []
    for selection in selections:
        engine = _expand(regrid(selection.blocks, selection.block_size, geometry), geometry)
        union |= engine
        if selection.block_size == geometry.block_size and selection.mask_mod is None:
            plain |= engine
        else:
            conditional.append(selection)
    return plain, conditional, union


def combined_mask_mod(
    geometry: CallGeometry, plain: torch.Tensor, conditional: Sequence[PrefillSelection]
) -> MaskMod:
    """``(b, h, q, kv) -> bool``: causal & window & (a block-level selection holds the pair's
    engine block, or a token-condition selection holds the pair). Closes over (B, H, n, n)
    block tables and 0-dim tensors only (a compiled kernel is reused across calls)."""
    device = plain.device
    q0 = torch.tensor(geometry.query_start - geometry.key_offset, device=device)
    window = torch.tensor(geometry.window, device=device)
    bs = geometry.block_size
    tables = [(s.blocks, s.block_size, s.mask_mod) for s in conditional]

    # tensors, not ints: a closure constant would make every call length a new kernel
    last_q = torch.tensor(geometry.query_length - 1, device=device)
    last_k = torch.tensor(geometry.key_length - 1, device=device)

    def mask_mod(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        diff = q_idx + q0 - kv_idx
        # the kernel may ask for the padding of a ragged last block: read inside the tables
        q_in, kv_in = torch.clamp(q_idx, max=last_q), torch.clamp(kv_idx, max=last_k)
        keep = plain[b, h, q_in // bs, kv_in // bs]
        for blocks, size, mod in tables:
            hb = h if blocks.shape[1] > 1 else h * 0
            bb = b if blocks.shape[0] > 1 else b * 0
            chosen = blocks[bb, hb, q_in // size, kv_in // size]
            keep = keep | (chosen & mod(b, h, q_in, kv_in) if mod is not None else chosen)
        return keep & (diff >= 0) & (diff < window)

    return mask_mod


def index_form(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(num (B, H, nq) int32, indices (B, H, nq, nk) int32): the kept key blocks of each query
    block first, in ascending order (FlexAttention's ``kv_num_blocks``, ``kv_indices``)."""
    num = table.sum(dim=-1, dtype=torch.int32)
    order = torch.argsort(table.to(torch.int8), dim=-1, descending=True, stable=True)
    return num, order.to(torch.int32)


def build_block_mask(
    selections: Sequence[PrefillSelection],
    geometry: CallGeometry,
    device: torch.device,
    padded: tuple[int, int] | None = None,
) -> tuple[BlockMask, torch.Tensor, torch.Tensor]:
    """(the BlockMask, full blocks, partial blocks), both (B, H, nq, nk) bool: the union of
    ``selections`` cut to the causal, in-window pairs of the call (see the module doc).

    ``padded``: (Q', K') >= (Q, K), the lengths of the tensors the kernel will see (the engine
    pads a call to a few shape buckets so that a compiled kernel is reused across lengths).
    The padding blocks hold nothing; a ragged last key block is never full (its padding keys
    would run unmasked); padding keys lie after every query, so the causal ``mask_mod``
    excludes them. The returned tables are the call's own (unpadded)."""
    plain, conditional, union = split_selections(selections, geometry, device)
    any_ok, all_ok = block_bounds(geometry, device)
    full = plain & all_ok
    partial = union & any_ok & ~full
    lengths = (geometry.query_length, geometry.key_length)
    kernel_full, kernel_partial = full, partial
    if padded is not None and tuple(padded) != lengths:
        kernel_full, kernel_partial = pad_tables(full, partial, geometry, padded)
        lengths = (int(padded[0]), int(padded[1]))
        plain = _pad_blocks(plain, geometry.block_size, lengths)
        conditional = [
            dataclasses.replace(s, blocks=_pad_blocks(s.blocks, s.block_size, lengths))
            for s in conditional
        ]
    kv_num, kv_idx = index_form(kernel_partial)
    full_num, full_idx = index_form(kernel_full)
    block_mask = BlockMask.from_kv_blocks(
        kv_num,
        kv_idx,
        full_num,
        full_idx,
        BLOCK_SIZE=geometry.block_size,
        mask_mod=combined_mask_mod(geometry, plain, conditional),
        seq_lengths=lengths,
        **_NO_Q_BLOCKS,
    )
    return block_mask, full, partial


def _pad_blocks(blocks: torch.Tensor, block_size: int, lengths: tuple[int, int]) -> torch.Tensor:
    """(B, H, nq, nk) block table padded with False to the block counts of ``lengths``: the
    tables a mask_mod reads have one shape per bucket (no recompilation per length)."""
    grow_q = -(-lengths[0] // block_size) - int(blocks.shape[2])
    grow_k = -(-lengths[1] // block_size) - int(blocks.shape[3])
    return torch.nn.functional.pad(blocks, (0, max(0, grow_k), 0, max(0, grow_q)), value=False)


def pad_tables(
    full: torch.Tensor, partial: torch.Tensor, geometry: CallGeometry, padded: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``full``, ``partial`` (B, H, nq, nk) padded with empty blocks to the block counts of
    lengths ``padded`` (Q', K'); full blocks of a ragged last key block become partial."""
    bs = geometry.block_size
    if geometry.key_length % bs:
        last = full[..., -1:]
        partial = torch.cat([partial[..., :-1], partial[..., -1:] | last], dim=-1)
        full = torch.cat([full[..., :-1], torch.zeros_like(last)], dim=-1)
    nq, nk = full.shape[-2:]
    grow = (0, -(-padded[1] // bs) - nk, 0, -(-padded[0] // bs) - nq)
    pad = torch.nn.functional.pad
    return pad(full, grow, value=False), pad(partial, grow, value=False)
