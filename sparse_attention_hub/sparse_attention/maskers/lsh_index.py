"""Hash tables of packed SimHash codes: collisions counted per hit, not per key and table.

Comparing every query code with every key code of every table costs B * H * Q * K * L
operations (MagicPIG's L = 150 tables make that the whole cost of a decode step). Sorting each
table's key codes once lets a query find its matching keys with a binary search; collisions
are then counted over the matches only (about K * L / 2**lsh_k per query for spread codes).

:class:`CodeIndex` holds the sorted codes of the first keys and an unsorted tail of keys added
since (compared one by one); the tail is merged into the sorted part once it grows past an
eighth of it. Counts are exact either way, so the layout never changes a mask.

No host wait when counting: the keys of a query's bucket are read as a fixed number of slots,
``CodeIndex.width`` (a host-side bound of the largest bucket, measured once when the index is
sorted and raised by the tail's length at a merge), the slots past the bucket's end counted
into a discarded column. Temporaries are bounded by counting in chunks of tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

#: The tail is merged into the sorted part past this many keys (or an eighth of the sorted).
MERGE_AT = 1024
#: Bucket slots (B * Hkv * tables * R * width) read per chunk of tables (about 25 bytes each).
SLOT_ELEMENTS = 1 << 21
#: Code comparisons (B * Hkv * R * tables * tail) per chunk of tables against the tail (bool).
TAIL_ELEMENTS = 1 << 24
#: Codes (B * Hkv * tables * n) sorted per chunk of tables: bounds the sort's int64 indices
#: (4 MiB of them), a state build's largest temporary.
SORT_ELEMENTS = 1 << 19
#: Codes (B * Hkv * tables * s) per chunk of rows in :func:`longest_run` (a few int64 each).
RUN_ELEMENTS = 1 << 18


def order_dtype(n: int) -> torch.dtype:
    """The smallest dtype of the key indices 0 .. n - 1 (int16 up to 2**15 keys, else int32)."""
    return torch.int16 if n <= 2**15 else torch.int32


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


def sort_codes(codes: torch.Tensor, in_place: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Each table of ``codes`` (B, Hkv, L, n) sorted ascending (stable): the sorted codes and
    the key index of each, :func:`order_dtype` (not int64), sorted per chunk of tables of at
    most ``SORT_ELEMENTS`` codes so the sort's int64 indices stay one chunk's. ``in_place``:
    the sorted codes are written over ``codes`` (a tensor the caller owns and drops)."""
    b, h, tables, n = codes.shape
    sorted_codes = codes if in_place else torch.empty_like(codes)
    order = torch.empty(codes.shape, dtype=order_dtype(n), device=codes.device)
    step = max(1, SORT_ELEMENTS // max(1, b * h * n))
    for start in range(0, tables, step):
        part, index = torch.sort(codes[:, :, start : start + step], dim=-1, stable=True)
        sorted_codes[:, :, start : start + step] = part
        order[:, :, start : start + step] = index
    return sorted_codes, order


@dataclass(frozen=True)
class CodeIndex:
    """Codes of n keys per (B, Hkv, table): ``sorted_codes`` (B, Hkv, L, s) ascending per
    table, ``order`` (B, Hkv, L, s) the key index of each (int16 up to 2**15 keys, else int32), ``tail`` (B, Hkv, L, t) the
    codes of keys s .. s + t - 1 in key order, ``width`` (host int) at least the number of
    sorted keys that share one code in one table."""

    sorted_codes: torch.Tensor
    order: torch.Tensor
    tail: torch.Tensor
    width: int

    @property
    def size(self) -> int:
        """n, the number of keys."""
        return self.sorted_codes.shape[-1] + self.tail.shape[-1]


def longest_run(sorted_codes: torch.Tensor) -> int:
    """The most equal codes in one row of ``sorted_codes`` (..., s), ascending per row.

    Reads one number back from the device: the width of every later count is a host int.
    This runs where an index is sorted (a state build or rebuild: a new prompt), never when a
    decode step counts or extends (a merge there raises the width by the tail's length)."""
    s = sorted_codes.shape[-1]
    if s == 0:
        return 0
    rows = sorted_codes.reshape(-1, s)  # (B * Hkv * L, s)
    positions = torch.arange(s, device=rows.device)
    best = torch.zeros((), dtype=torch.int64, device=rows.device)
    step = max(1, RUN_ELEMENTS // s)
    for start in range(0, rows.shape[0], step):
        part = rows[start : start + step]  # (r, s)
        first = torch.ones_like(part, dtype=torch.bool)
        first[:, 1:] = part[:, 1:] != part[:, :-1]  # a run starts here
        run_start = torch.where(first, positions, 0).cummax(-1).values  # (r, s)
        best = torch.maximum(best, (positions - run_start).amax())
    return int(best) + 1


def index_codes(codes: torch.Tensor, in_place: bool = False) -> CodeIndex:
    """The index of ``codes`` (B, Hkv, L, n), every key sorted (``in_place``: over ``codes``,
    which the caller owns and drops)."""
    tail = codes[..., :0].clone()
    sorted_codes, order = sort_codes(codes, in_place)
    return CodeIndex(sorted_codes, order, tail, longest_run(sorted_codes))


def all_codes(index: CodeIndex) -> torch.Tensor:
    """(B, Hkv, L, n) codes in key order."""
    order = as_index(index.order)
    codes = torch.empty_like(index.sorted_codes).scatter_(-1, order, index.sorted_codes)
    return torch.cat([codes, index.tail], -1)


def append_codes(index: CodeIndex, codes: torch.Tensor) -> CodeIndex:
    """``index`` plus the keys of ``codes`` (B, Hkv, L, new) after its last key."""
    tail = torch.cat([index.tail, codes], -1)  # (B, Hkv, L, t + new)
    s = index.sorted_codes.shape[-1]
    if tail.shape[-1] > max(MERGE_AT, s // 8):
        merged = torch.cat([all_codes(index)[..., :s], tail], -1)  # (B, Hkv, L, s + t)
        sorted_codes, order = sort_codes(merged, in_place=True)  # merged: a new tensor
        # no read-back: a bucket gains at most the tail's keys
        width = min(index.width + tail.shape[-1], merged.shape[-1])
        return CodeIndex(sorted_codes, order, tail[..., :0], width)
    return CodeIndex(index.sorted_codes, index.order, tail, index.width)


def cut_codes(index: CodeIndex, start: int, stop: int) -> CodeIndex:
    """The index of keys [start, stop) only, renumbered from 0 (no host wait: each row keeps
    the same number of keys, moved to the front by their rank among the kept)."""
    b, h, tables, s = index.sorted_codes.shape
    kept = max(0, min(stop, s) - start)  # the same in every row: each row holds every key
    keep = (index.order >= start) & (index.order < stop)  # (B, Hkv, L, s)
    rank = keep.cumsum(-1, dtype=torch.int32) - 1
    slot = as_index(torch.where(keep, rank, kept))  # (B, Hkv, L, s) int32, kept: discarded
    shape = (b, h, tables, kept + 1)
    sorted_codes = index.sorted_codes.new_empty(shape).scatter_(-1, slot, index.sorted_codes)
    order = index.order.new_empty(shape).scatter_(-1, slot, index.order - start)
    tail = index.tail[..., max(0, start - s) : max(0, stop - s)]
    sorted_codes, order = sorted_codes[..., :kept].contiguous(), order[..., :kept].contiguous()
    return CodeIndex(sorted_codes, order, tail, min(index.width, kept))


def count_dtype(tables: int) -> torch.dtype:
    """The smallest dtype that counts up to ``tables`` collisions."""
    return torch.uint8 if tables <= 255 else torch.int16 if tables < 2**15 else torch.int32


def count_collisions(index: CodeIndex, query_codes: torch.Tensor) -> torch.Tensor:
    """Tables in which each query code equals each key code.

    Args:
        index: the key codes (n keys); query_codes: (B, Hkv, R, L).
    Returns:
        (B, Hkv, R, n) counts, uint8 up to 255 tables (:func:`count_dtype`).
    """
    b, h, rows, tables = query_codes.shape
    s, n = index.sorted_codes.shape[-1], index.size
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
    s, n, width = index.sorted_codes.shape[-1], index.size, index.width
    low = torch.searchsorted(index.sorted_codes, queries)  # (B, Hkv, L, R)
    high = torch.searchsorted(index.sorted_codes, queries, right=True)
    slots = torch.arange(width, device=queries.device)
    step = max(1, SLOT_ELEMENTS // max(1, b * h * rows * width))
    for start in range(0, tables, step):
        stop = min(tables, start + step)
        position = low[:, :, start:stop, :, None] + slots  # (B, Hkv, c, R, W)
        past = position >= high[:, :, start:stop, :, None]
        position.clamp_(max=s - 1)
        flat = position.view(b, h, stop - start, rows * width)  # (B, Hkv, c, R * W)
        # the order is gathered in its own dtype (a copy of it would be (B, Hkv, c, s)), then
        # widened: the discard column n may not fit int16
        keys = index.order[:, :, start:stop].gather(-1, flat).view(position.shape).long()
        keys.masked_fill_(past, n)  # (B, Hkv, c, R, W)
        target = keys.transpose(2, 3).reshape(b, h, rows, -1)  # (B, Hkv, R, c * W)
        ones = counts.new_ones(()).expand(target.shape)
        counts.scatter_add_(-1, target, ones)


__all__ = [
    "CodeIndex",
    "all_codes",
    "append_codes",
    "as_index",
    "count_collisions",
    "count_dtype",
    "cut_codes",
    "index_codes",
    "longest_run",
    "order_dtype",
    "sort_codes",
]
