"""Quest's page math apart from the masker: per-page min/max summaries of the keys (whole or
running within a page), the upper bound of q . k over a page, and the official fake
quantisation of the summaries (see ``quest`` for the method)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Keys summarised per step of :func:`page_summaries` (whole pages): bounds its temporaries.
SUMMARY_CHUNK_KEYS = 8192


def page_summaries(
    keys: torch.Tensor, first_position: int, page_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-page elementwise (min, max) of ``keys`` (B, Hkv, n, D) at absolute positions
    ``first_position ..``, pages aligned at position 0: two (B, Hkv, P, D) fp32 tensors for the
    pages ``first_position // page_size .. (first_position + n - 1) // page_size``; a partial
    page is summarised from its keys only.

    Min and max are exact in the keys' dtype, so they are taken there and only the (P, D)
    results are made fp32: whole pages in chunks of about ``SUMMARY_CHUNK_KEYS`` keys (a view
    of contiguous keys; a copy of one chunk otherwise), the partial edge pages on their own.
    No fp32 or padded copy of the keys is made."""
    b, h, n, d = keys.shape
    pages = -(-(first_position % page_size + n) // page_size) if n else 0
    mins = keys.new_empty((b, h, pages, d), dtype=torch.float32)  # (B, Hkv, P, D)
    maxs = torch.empty_like(mins)
    if n == 0:
        return mins, maxs
    head = min(n, (-first_position) % page_size)  # keys of a partial first page
    page = 0
    if head:
        low, high = torch.aminmax(keys[:, :, :head], dim=2)  # (B, Hkv, D)
        mins[:, :, 0], maxs[:, :, 0] = low, high
        page = 1
    whole = (n - head) // page_size  # whole pages after it
    step = max(1, SUMMARY_CHUNK_KEYS // page_size)
    for first in range(0, whole, step):
        count = min(step, whole - first)
        start = head + first * page_size
        chunk = keys[:, :, start : start + count * page_size].reshape(b, h, count, page_size, d)
        low, high = torch.aminmax(chunk, dim=3)  # (B, Hkv, count, D)
        mins[:, :, page + first : page + first + count] = low
        maxs[:, :, page + first : page + first + count] = high
    rest = n - head - whole * page_size  # keys of a partial last page
    if rest:
        low, high = torch.aminmax(keys[:, :, n - rest :], dim=2)  # (B, Hkv, D)
        mins[:, :, -1], maxs[:, :, -1] = low, high
    return mins, maxs


def page_prefix_summaries(
    keys: torch.Tensor, first_position: int, page_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Running (min, max) of ``keys`` (B, Hkv, n, D) at absolute positions ``first_position ..``
    within each page (pages aligned at position 0): two (B, Hkv, n, D) fp32 tensors, entry i
    the summary of the keys from the start of key i's page (or key 0) up to and including key
    i, i.e. that page as a decode step at key i's position holds it."""
    b, h, n, d = keys.shape
    if n == 0:
        empty = keys.new_zeros((b, h, 0, d), dtype=torch.float32)
        return empty, empty.clone()
    lead = first_position % page_size
    pages = -(-(lead + n) // page_size)
    tail = pages * page_size - lead - n
    k = keys.float()
    low = F.pad(k, (0, 0, lead, tail), value=float("inf"))  # (B, Hkv, P * page, D)
    high = F.pad(k, (0, 0, lead, tail), value=float("-inf"))
    mins = low.reshape(b, h, pages, page_size, d).cummin(3).values  # (B, Hkv, P, page, D)
    maxs = high.reshape(b, h, pages, page_size, d).cummax(3).values
    mins = mins.reshape(b, h, pages * page_size, d)[:, :, lead : lead + n]  # (B, Hkv, n, D)
    maxs = maxs.reshape(b, h, pages * page_size, d)[:, :, lead : lead + n]
    return mins, maxs


def page_bounds(queries: torch.Tensor, mins: torch.Tensor, maxs: torch.Tensor) -> torch.Tensor:
    """U[b, h, q, p] = sum_d max(q_d * maxs_p,d, q_d * mins_p,d) for queries (B, H, Q, D) and
    page summaries (B, Hkv, P, D): (B, H, Q, P) fp32; query head h reads KV head h // G.
    Summed in fp64 (each product of two fp32 values is exact there) and rounded to fp32, so a
    bound does not depend on the order of the sum: :func:`row_bounds` gives the same value."""
    b, h, n_q, d = queries.shape
    h_kv = mins.shape[1]
    q = queries.double().reshape(b, h_kv, (h // h_kv) * n_q, d)  # (B, Hkv, G * Q, D)
    low, high = mins.double().transpose(-1, -2), maxs.double().transpose(-1, -2)
    bound = q.clamp(min=0) @ high + q.clamp(max=0) @ low  # (B, Hkv, G * Q, P)
    return bound.float().reshape(b, h, n_q, -1)  # (B, H, Q, P)


def row_bounds(queries: torch.Tensor, mins: torch.Tensor, maxs: torch.Tensor) -> torch.Tensor:
    """U[b, h, q] = sum_d max(q_d * maxs_q,d, q_d * mins_q,d) for queries (B, H, Q, D) and one
    page summary per row, mins and maxs (B, H, Q, D): (B, H, Q) fp32, summed as
    :func:`page_bounds` sums."""
    q = queries.double()
    bound = q.clamp(min=0) * maxs.double() + q.clamp(max=0) * mins.double()  # (B, H, Q, D)
    return bound.sum(-1).float()  # (B, H, Q)


def fake_quantise(
    mins: torch.Tensor, maxs: torch.Tensor, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``mins`` rounded down and ``maxs`` rounded up to ``2**bits`` levels spanning each page's
    [min, max] over the D channels: (B, Hkv, P, D) each; the bound stays an upper bound."""
    if bits >= 16:
        return mins, maxs
    low = mins.amin(-1, keepdim=True)  # (B, Hkv, P, 1)
    step = ((maxs.amax(-1, keepdim=True) - low) / (2**bits - 1)).clamp_min(1e-12)
    q_min = low + torch.floor((mins - low) / step) * step
    q_max = low + torch.ceil((maxs - low) / step) * step
    return torch.minimum(q_min, mins), torch.maximum(q_max, maxs)


__all__ = [
    "SUMMARY_CHUNK_KEYS",
    "fake_quantise",
    "page_bounds",
    "page_prefix_summaries",
    "page_summaries",
    "row_bounds",
]
