"""Hash tables of packed SimHash codes: collisions counted per hit, not per key and table.

Comparing every query code with every key code of every table costs B * H * Q * K * L
operations (MagicPIG's L = 150 tables make that the whole cost of a decode step). Sorting each
table's keys by code once lets a query read its matching keys as one bucket; collisions are
then counted over the matches only (about K * L / 2**bits per query for spread codes).

:class:`CodeIndex` is a CSR layout per table: ``order``, the keys sorted by (code, key) and kept
in 16 bits (the low 16 bits of each key index, at any length), and ``offsets``, where each
segment (code c, block b = key >> 16) starts in ``order``; the codes themselves are not stored
(2.0 bytes per key and table, plus 4 * (2**bits * blocks + 1) per table). Keys added since the
last sort are an unsorted tail of codes in key order (compared one by one), merged into the
sorted part once it grows past an eighth of it. Counts are exact either way, so the layout
never changes a mask.

No host wait when counting: the keys of a query's bucket are read as a fixed number of slots,
``CodeIndex.width`` (a host-side bound of the largest bucket, measured once when the index is
sorted and raised by the tail's length at a merge), the slots past the bucket's end counted
into a discarded column. Temporaries are bounded by working in chunks of tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import torch

#: The tail is merged into the sorted part past this many keys (or an eighth of the sorted).
MERGE_AT = 1024
#: Bucket slots (B * Hkv * tables * R * width) read per chunk of tables (about 15 bytes each).
SLOT_ELEMENTS = 1 << 21
#: Code comparisons (B * Hkv * R * tables * tail) per chunk of tables against the tail (bool).
TAIL_ELEMENTS = 1 << 24
#: Keys (B * Hkv * tables * n) sorted, decoded or cut per chunk of tables: bounds the sort's
#: int64 indices (4 MiB of them), a state build's largest temporary.
SORT_ELEMENTS = 1 << 19
#: Offsets (B * Hkv * tables * segments) per chunk of rows in :func:`longest_run`.
RUN_ELEMENTS = 1 << 18
#: Keys per block: ``order`` keeps a key's low 16 bits, its block (key >> 16) is its segment's.
BLOCK = 1 << 16
#: The most bits per code: ``offsets`` holds 2**bits * blocks + 1 int32 per table.
MAX_BITS = 16


def block_count(n: int) -> int:
    """Blocks of :data:`BLOCK` keys among ``n`` sorted keys (1 up to 65536 keys)."""
    return max(1, -(-n // BLOCK))


def as_index(order: torch.Tensor) -> torch.Tensor:
    """``order`` as a gather / scatter index: int16 is not one (int32), and before torch 2.7
    only int64 is (:func:`index_dtype`)."""
    dtype = index_dtype()
    return order if order.dtype in (dtype, torch.int64) else order.to(dtype)


@functools.cache
def index_dtype() -> torch.dtype:
    """The smallest dtype ``gather`` / ``scatter`` take as an index in this torch release:
    int32, or int64 where int32 is refused (torch 2.6)."""
    try:
        torch.zeros(1).gather(0, torch.zeros(1, dtype=torch.int32))
    except RuntimeError:
        return torch.int64
    return torch.int32


@dataclass(frozen=True)
class CodeIndex:
    """Codes of n keys per (B, Hkv, table), ``bits`` bits each, the first s sorted:

    - ``order`` (B, Hkv, L, s) int16: the low 16 bits of the key indices (read back as
      ``order.int() & 0xFFFF``), sorted per table by (code, key);
    - ``offsets`` (B, Hkv, L, 2**bits * nb + 1) int32, nb = :func:`block_count` (s): where
      segment (code c, block b = key >> 16) starts in ``order``, at c * nb + b; bucket c is
      [offsets[c * nb], offsets[(c + 1) * nb]);
    - ``tail`` (B, Hkv, L, t): the codes of keys s .. s + t - 1 in key order;
    - ``width`` (host int): at least the number of sorted keys that share one code in one
      table."""

    order: torch.Tensor
    offsets: torch.Tensor
    tail: torch.Tensor
    width: int
    bits: int

    @property
    def sorted_size(self) -> int:
        """s, the number of sorted keys."""
        return self.order.shape[-1]

    @property
    def blocks(self) -> int:
        """nb, the blocks of 65536 keys among the sorted ones."""
        return block_count(self.sorted_size)

    @property
    def size(self) -> int:
        """n, the number of keys."""
        return self.sorted_size + self.tail.shape[-1]


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits per code must be an int in [1, {MAX_BITS}], got {bits!r}")


def sort_index(
    codes: torch.Tensor, bits: int, in_place: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(order, offsets) of ``codes`` (B, Hkv, L, n), values in [0, 2**bits): each table sorted
    stably by code (so by (code, key)), per chunk of tables of at most ``SORT_ELEMENTS`` keys
    so the sort's int64 indices stay one chunk's. ``in_place``: the order is written over
    ``codes`` where they are int16 (a tensor the caller owns and drops: no second
    (B, Hkv, L, n) tensor in a build)."""
    _check_bits(bits)
    b, h, tables, n = codes.shape
    blocks, device = block_count(n), codes.device
    segments = (1 << bits) * blocks
    own = in_place and codes.dtype == torch.int16
    order = codes if own else torch.empty(codes.shape, dtype=torch.int16, device=device)
    offsets = torch.empty((b, h, tables, segments + 1), dtype=torch.int32, device=device)
    offsets[..., segments] = n
    step = max(1, SORT_ELEMENTS // max(1, b * h * n))
    for start in range(0, tables, step):
        stop = min(tables, start + step)
        values, index = torch.sort(codes[:, :, start:stop], dim=-1, stable=True)  # (B,Hkv,c,n)
        if blocks > 1:  # segment ids, ascending: within a code the keys ascend
            values = (index >> 16).to(torch.int32).add_(values.to(torch.int32) * blocks)
        elif segments > torch.iinfo(values.dtype).max:  # 2**15 buckets of int16 codes
            values = values.to(torch.int32)
        bounds = torch.arange(segments, device=device, dtype=values.dtype)
        offsets[:, :, start:stop, :segments] = torch.searchsorted(
            values, bounds.expand(b, h, stop - start, segments).contiguous(), out_int32=True
        )
        order[:, :, start:stop] = index  # the low 16 bits (a wrapping cast)
    return order, offsets


def longest_run(offsets: torch.Tensor, blocks: int) -> int:
    """The largest bucket of ``offsets`` (..., 2**bits * blocks + 1) (see :class:`CodeIndex`).

    Reads one number back from the device: the width of every later count is a host int.
    This runs where an index is sorted (a state build or rebuild: a new prompt), never when a
    decode step counts or extends (a merge there raises the width by the tail's length)."""
    rows = offsets.reshape(-1, offsets.shape[-1])  # (B * Hkv * L, segments + 1)
    best = torch.zeros((), dtype=torch.int32, device=rows.device)
    step = max(1, RUN_ELEMENTS // rows.shape[-1])
    for start in range(0, rows.shape[0], step):
        part = rows[start : start + step, ::blocks]  # (r, 2**bits + 1): the bucket starts
        best = torch.maximum(best, (part[:, 1:] - part[:, :-1]).amax())
    return int(best)


def index_codes(codes: torch.Tensor, bits: int, in_place: bool = False) -> CodeIndex:
    """The index of ``codes`` (B, Hkv, L, n) of ``bits`` bits, every key sorted (``in_place``:
    the order written over ``codes``, which the caller owns and drops)."""
    tail = codes[..., :0].clone()
    order, offsets = sort_index(codes, bits, in_place)
    width = longest_run(offsets, block_count(codes.shape[-1])) if codes.shape[-1] else 0
    return CodeIndex(order, offsets, tail, width, bits)


def _segments(offsets: torch.Tensor, s: int) -> torch.Tensor:
    """(B, Hkv, c, s) int32: the segment of each sorted position, from ``offsets``
    (B, Hkv, c, segments + 1)."""
    positions = torch.arange(s, dtype=torch.int32, device=offsets.device)
    positions = positions.expand(*offsets.shape[:-1], s).contiguous()
    return torch.searchsorted(offsets, positions, right=True, out_int32=True).sub_(1)


def _keys(order: torch.Tensor, segments: torch.Tensor, blocks: int) -> torch.Tensor:
    """(B, Hkv, c, s) int32 key indices of ``order`` (its low 16 bits) in ``segments``."""
    keys = order.to(torch.int32).bitwise_and_(BLOCK - 1)
    return keys if blocks == 1 else keys.add_((segments % blocks) << 16)


def sorted_key_codes(index: CodeIndex) -> torch.Tensor:
    """(B, Hkv, L, s) the codes of the sorted keys, in key order (per chunk of tables)."""
    b, h, tables, s = index.order.shape
    blocks = index.blocks
    codes = index.tail.new_empty((b, h, tables, s))
    step = max(1, SORT_ELEMENTS // max(1, b * h * s))
    for start in range(0, tables if s else 0, step):
        stop = min(tables, start + step)
        segments = _segments(index.offsets[:, :, start:stop], s)  # (B, Hkv, c, s)
        keys = _keys(index.order[:, :, start:stop], segments, blocks)
        code = segments if blocks == 1 else segments.div_(blocks, rounding_mode="floor")
        codes[:, :, start:stop].scatter_(-1, as_index(keys), code.to(codes.dtype))
    return codes


def all_codes(index: CodeIndex) -> torch.Tensor:
    """(B, Hkv, L, n) codes in key order."""
    return torch.cat([sorted_key_codes(index), index.tail], -1)


def append_codes(index: CodeIndex, codes: torch.Tensor) -> CodeIndex:
    """``index`` plus the keys of ``codes`` (B, Hkv, L, new) after its last key."""
    tail = torch.cat([index.tail, codes], -1)  # (B, Hkv, L, t + new)
    if tail.shape[-1] > max(MERGE_AT, index.sorted_size // 8):
        merged = torch.cat([sorted_key_codes(index), tail], -1)  # (B, Hkv, L, s + t)
        order, offsets = sort_index(merged, index.bits, in_place=True)  # merged: a new tensor
        # no read-back: a bucket gains at most the tail's keys
        width = min(index.width + tail.shape[-1], merged.shape[-1])
        return CodeIndex(order, offsets, tail[..., :0], width, index.bits)
    return replace(index, tail=tail)


def cut_codes(index: CodeIndex, start: int, stop: int) -> CodeIndex:
    """The index of keys [start, stop) only, renumbered from 0, in O(s) per table: no sort and
    no host wait (each row keeps the same number of keys, moved to the front by their rank
    among the kept; within a bucket the kept keys still ascend, so they stay sorted)."""
    b, h, tables, s = index.order.shape
    blocks = index.blocks
    kept = max(0, min(stop, s) - start)  # the same in every row: each row holds every key
    new_blocks = block_count(kept)
    segments = (1 << index.bits) * new_blocks
    order = index.order.new_empty((b, h, tables, kept + 1))  # the last column: discarded
    offsets = torch.zeros((b, h, tables, segments + 1), dtype=torch.int32, device=order.device)
    step = max(1, SORT_ELEMENTS // max(1, b * h * s))
    for first in range(0, tables if s else 0, step):
        last = min(tables, first + step)
        segment = _segments(index.offsets[:, :, first:last], s)  # (B, Hkv, c, s)
        keys = _keys(index.order[:, :, first:last], segment, blocks)
        keep = (keys >= start) & (keys < stop)
        slot = torch.where(keep, keep.cumsum(-1, dtype=torch.int32) - 1, kept)
        keys.sub_(start)
        order[:, :, first:last].scatter_(-1, as_index(slot), keys.to(order.dtype))
        code = segment if blocks == 1 else segment.div_(blocks, rounding_mode="floor")
        new_segment = code.mul_(new_blocks).add_(keys >> 16) if new_blocks > 1 else code
        target = torch.where(keep, new_segment, segments)  # not kept: the last column
        counts = offsets.new_zeros((b, h, last - first, segments + 1))
        counts.scatter_add_(-1, as_index(target), counts.new_ones(()).expand(target.shape))
        torch.cumsum(counts[..., :segments], -1, out=offsets[:, :, first:last, 1:])
    tail = index.tail[..., max(0, start - s) : max(0, stop - s)]
    order = order[..., :kept].contiguous()
    return CodeIndex(order, offsets, tail, min(index.width, kept), index.bits)


def count_dtype(tables: int) -> torch.dtype:
    """The smallest dtype that counts up to ``tables`` collisions."""
    return torch.uint8 if tables <= 255 else torch.int16 if tables < 2**15 else torch.int32


def count_collisions(index: CodeIndex, query_codes: torch.Tensor) -> torch.Tensor:
    """Tables in which each query code equals each key code.

    Args:
        index: the key codes (n keys); query_codes: (B, Hkv, R, L), in [0, 2**index.bits).
    Returns:
        (B, Hkv, R, n) counts, uint8 up to 255 tables (:func:`count_dtype`).
    """
    b, h, rows, tables = query_codes.shape
    s, n = index.sorted_size, index.size
    # one extra column collects the slots past a bucket's end
    counts = query_codes.new_zeros((b, h, rows, n + 1), dtype=count_dtype(tables))
    queries = query_codes.transpose(2, 3).contiguous()  # (B, Hkv, L, R)
    if s and index.width:
        _count_sorted(index, queries, counts)
    t = index.tail.shape[-1]
    if t:
        step = max(1, TAIL_ELEMENTS // max(1, b * h * rows * t))
        for start in range(0, tables, step):
            q = queries[:, :, start : start + step].transpose(2, 3).unsqueeze(-1)  # (B,Hkv,R,c,1)
            same = q == index.tail[:, :, start : start + step].unsqueeze(2)  # (B, Hkv, R, c, t)
            counts[..., s:n] += same.sum(3, dtype=counts.dtype)  # (B, Hkv, R, t)
    return counts[..., :n]


def _count_sorted(index: CodeIndex, queries: torch.Tensor, counts: torch.Tensor) -> None:
    """Add to ``counts`` (B, Hkv, R, n + 1) the collisions of ``queries`` (B, Hkv, L, R) with
    the sorted keys: ``index.width`` slots from each bucket's first key, those past its end
    into the last column; chunks of tables keep the slot tensors under ``SLOT_ELEMENTS``."""
    b, h, tables, rows = queries.shape
    s, n, width, blocks = index.sorted_size, index.size, index.width, index.blocks
    bucket = queries.to(index_dtype()) * blocks  # (B, Hkv, L, R): its first segment
    low = index.offsets.gather(-1, bucket)  # (B, Hkv, L, R) int32
    high = index.offsets.gather(-1, bucket + blocks)
    # where each later block of the bucket starts (none up to 65536 keys)
    starts = [index.offsets.gather(-1, bucket + block) for block in range(1, blocks)]
    slots = torch.arange(width, dtype=torch.int32, device=queries.device)
    step = max(1, SLOT_ELEMENTS // max(1, b * h * rows * width))
    for start in range(0, tables, step):
        stop = min(tables, start + step)
        position = low[:, :, start:stop, :, None] + slots  # (B, Hkv, c, R, W) int32
        past = position >= high[:, :, start:stop, :, None]
        flat = as_index(position.clamp(max=s - 1)).view(b, h, stop - start, rows * width)
        # the order is gathered in its own dtype (a copy of it would be (B, Hkv, c, s))
        keys = index.order[:, :, start:stop].gather(-1, flat).view(position.shape)
        keys = keys.to(torch.int32).bitwise_and_(BLOCK - 1)  # (B, Hkv, c, R, W)
        for block_start in starts:
            keys += (position >= block_start[:, :, start:stop, :, None]).to(torch.int32) << 16
        keys.masked_fill_(past, n)
        target = keys.transpose(2, 3).reshape(b, h, rows, -1)  # (B, Hkv, R, c * W)
        ones = counts.new_ones(()).expand(target.shape)
        counts.scatter_add_(-1, as_index(target), ones)


__all__ = [
    "BLOCK",
    "MAX_BITS",
    "CodeIndex",
    "all_codes",
    "append_codes",
    "as_index",
    "block_count",
    "count_collisions",
    "count_dtype",
    "cut_codes",
    "index_codes",
    "longest_run",
    "sort_index",
    "sorted_key_codes",
]
