"""Hash tables of packed SimHash codes: collisions counted per hit, not per key and table.

Comparing every query code with every key code of every table costs B * H * Q * K * L
operations (MagicPIG's L = 150 tables make that the whole cost of a decode step). Sorting each
table's key codes once lets a query find its matching keys with a binary search; collisions
are then counted over the matches only (about K * L / 2**lsh_k per query for spread codes).

:class:`CodeIndex` holds the sorted codes of the first keys and an unsorted tail of keys added
since (compared one by one); the tail is merged into the sorted part once it grows past an
eighth of it. Counts are exact either way, so the layout never changes a mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: The tail is merged into the sorted part past this many keys (or an eighth of the sorted).
MERGE_AT = 1024


@dataclass(frozen=True)
class CodeIndex:
    """Codes of n keys per (B, Hkv, table): ``sorted_codes`` (B, Hkv, L, s) ascending per
    table, ``order`` (B, Hkv, L, s) int64 the key index of each, ``tail`` (B, Hkv, L, t) the
    codes of keys s .. s + t - 1 in key order."""

    sorted_codes: torch.Tensor
    order: torch.Tensor
    tail: torch.Tensor

    @property
    def size(self) -> int:
        """n, the number of keys."""
        return self.sorted_codes.shape[-1] + self.tail.shape[-1]


def index_codes(codes: torch.Tensor) -> CodeIndex:
    """The index of ``codes`` (B, Hkv, L, n), every key sorted."""
    sorted_codes, order = torch.sort(codes, dim=-1, stable=True)
    return CodeIndex(sorted_codes, order, codes[..., :0])


def all_codes(index: CodeIndex) -> torch.Tensor:
    """(B, Hkv, L, n) codes in key order."""
    codes = torch.empty_like(index.sorted_codes).scatter_(-1, index.order, index.sorted_codes)
    return torch.cat([codes, index.tail], -1)


def append_codes(index: CodeIndex, codes: torch.Tensor) -> CodeIndex:
    """``index`` plus the keys of ``codes`` (B, Hkv, L, new) after its last key."""
    tail = torch.cat([index.tail, codes], -1)  # (B, Hkv, L, t + new)
    if tail.shape[-1] > max(MERGE_AT, index.sorted_codes.shape[-1] // 8):
        return index_codes(
            torch.cat([all_codes(index)[..., : index.sorted_codes.shape[-1]], tail], -1)
        )
    return CodeIndex(index.sorted_codes, index.order, tail)


def cut_codes(index: CodeIndex, start: int, stop: int) -> CodeIndex:
    """The index of keys [start, stop) only, renumbered from 0."""
    b, h, tables, s = index.sorted_codes.shape
    keep = (index.order >= start) & (index.order < stop)  # (B, Hkv, L, s)
    kept = max(0, min(stop, s) - start)  # the same in every row: each row holds every key
    sorted_codes = index.sorted_codes[keep].reshape(b, h, tables, kept)
    order = (index.order[keep] - start).reshape(b, h, tables, kept)
    tail = index.tail[..., max(0, start - s) : max(0, stop - s)]
    return CodeIndex(sorted_codes, order, tail)


def count_collisions(index: CodeIndex, query_codes: torch.Tensor) -> torch.Tensor:
    """Tables in which each query code equals each key code.

    Args:
        index: the key codes (n keys); query_codes: (B, Hkv, R, L).
    Returns:
        (B, Hkv, R, n) int64 counts.
    """
    b, h, rows, tables = query_codes.shape
    s, n, device = index.sorted_codes.shape[-1], index.size, query_codes.device
    queries = query_codes.transpose(2, 3).contiguous()  # (B, Hkv, L, R)
    low = torch.searchsorted(index.sorted_codes, queries)  # (B, Hkv, L, R)
    high = torch.searchsorted(index.sorted_codes, queries, right=True)
    matches = (high - low).flatten()  # one range per (b, h, table, r)
    first = (low + torch.arange(b * h * tables, device=device).view(b, h, tables, 1) * s).flatten()
    run = torch.repeat_interleave(torch.arange(matches.numel(), device=device), matches)
    offset = torch.arange(run.numel(), device=device) - (torch.cumsum(matches, 0) - matches)[run]
    keys = index.order.flatten()[first[run] + offset]  # (hits,) key indices
    head, r = run // (tables * rows), run % rows
    bins = (head * rows + r) * n + keys
    counts = torch.bincount(bins, minlength=b * h * rows * n).view(b, h, rows, n)
    if index.tail.shape[-1]:
        same = queries.transpose(2, 3).unsqueeze(-1) == index.tail.unsqueeze(2)  # (B,Hkv,R,L,t)
        counts[..., s:] += same.sum(3)
    return counts


__all__ = ["CodeIndex", "all_codes", "append_codes", "count_collisions", "cut_codes", "index_codes"]
