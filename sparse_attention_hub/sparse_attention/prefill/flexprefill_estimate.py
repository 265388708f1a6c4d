"""FlexPrefill's estimates, as pure functions: the last query block's attention summed per
key (vertical) and per diagonal (slash), block means of queries and keys, the
Jensen-Shannon test, and the cover counts (the official ``get_active_blocks`` of
bytedance/FlexPrefill, ``flex_prefill/ops/flex_prefill_attention.py``).

Everything here is computed in bounded pieces: the last rows' scores in (key heads x key
chunks) that fit a byte budget (a two-pass softmax when one head's row does not fit), the
block means in chunks of blocks. The largest tensors are (B, H, K) (vertical and slash) and
one chunk of scores; never (Q, K).
"""

from __future__ import annotations

import math

import torch

#: Bytes per score element of one chunk of :func:`last_rows_attention`: the fp32 scores,
#: their probabilities, the causal mask and the int64 diagonal index, with some slack.
SCORE_BYTES = 32

#: Tokens pooled per step of :func:`block_means` (whole blocks).
POOL_CHUNK_TOKENS = 8192


def _score_chunk(
    rows: torch.Tensor, keys: torch.Tensor, scaling: float, allowed: torch.Tensor
) -> torch.Tensor:
    """rows (n, G, r, D) fp32, keys (n, c, D) -> scores (n, G, r, c) fp32, -inf where
    ``allowed`` (r, c) is False."""
    scores = torch.einsum("ngrd,ncd->ngrc", rows, keys.float()) * scaling  # (n, G, r, c)
    return scores.masked_fill_(~allowed, float("-inf"))


def last_rows_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    scaling: float,
    query_start: int,
    key_offset: int,
    rows: int,
    budget_bytes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal softmax attention of the last ``rows`` query rows over all keys, summed.

    Args:
        queries: (B, H, Q, D); rows ``Q - rows .. Q - 1`` are used (the official last block).
        keys: (B, Hkv, K, D).
        scaling: the softmax scale.
        query_start, key_offset: absolute positions of query row 0 and key 0.
        rows: r, the number of last rows (<= Q).
        budget_bytes: the bytes one chunk of scores may take.

    Returns:
        vertical (B, H, K) fp32: the mean over the r rows of the attention each key gets;
        slash (B, H, K) fp32: ``slash[j]`` the mean over the r rows of the attention on the
        diagonal at distance ``K - 1 - j`` (query position minus key position), so ``j = K - 1``
        is the main diagonal (the official ``sum_all_diagonal_matrix`` order).
    """
    b, h, q, d = queries.shape
    hkv, k = keys.shape[1], keys.shape[2]
    g = h // hkv
    last = queries[:, :, q - rows :].float().reshape(b, hkv, g, rows, d)  # (B, Hkv, G, r, D)
    offset = query_start - key_offset  # key index of query row 0's position
    positions = offset + torch.arange(q - rows, q, device=keys.device)  # (r,) in key indices
    elements = max(1, budget_bytes // SCORE_BYTES)
    chunk_keys = min(k, max(1, elements // (g * rows)))
    chunk_heads = max(1, min(hkv, elements // (g * rows * k))) if chunk_keys == k else 1
    vertical = keys.new_zeros((b, hkv, g, k), dtype=torch.float32)  # (B, Hkv, G, K)
    slash = keys.new_zeros((b, hkv, g, k + 1), dtype=torch.float32)  # slot K: out of range
    for bi in range(b):
        for h0 in range(0, hkv, chunk_heads):
            h1 = min(hkv, h0 + chunk_heads)
            _accumulate(
                last[bi, h0:h1],
                keys[bi, h0:h1],
                scaling,
                positions,
                chunk_keys,
                vertical[bi, h0:h1],
                slash[bi, h0:h1],
            )
    vertical = vertical.reshape(b, h, k) / rows  # (B, H, K)
    return vertical, slash[..., :k].reshape(b, h, k) / rows


def _accumulate(
    rows: torch.Tensor,
    keys: torch.Tensor,
    scaling: float,
    positions: torch.Tensor,
    chunk_keys: int,
    vertical: torch.Tensor,
    slash: torch.Tensor,
) -> None:
    """Add the attention of ``rows`` (n, G, r, D) over ``keys`` (n, K, D) into ``vertical``
    (n, G, K) and ``slash`` (n, G, K + 1), key chunks of ``chunk_keys``; ``positions`` (r,)
    are the rows' positions in key indices (key k is allowed when k <= position)."""
    n, g = rows.shape[:2]
    k = keys.shape[1]
    device = keys.device
    chunks = [(k0, min(k, k0 + chunk_keys)) for k0 in range(0, k, chunk_keys)]
    lse: torch.Tensor | None = None  # (n, G, r, 1): the rows' log-sum-exp (two passes)
    if len(chunks) > 1:
        for k0, k1 in chunks:
            allowed = torch.arange(k0, k1, device=device)[None, :] <= positions[:, None]
            part = _score_chunk(rows, keys[:, k0:k1], scaling, allowed)
            part_lse = torch.logsumexp(part, dim=-1, keepdim=True)  # (n, G, r, 1)
            lse = part_lse if lse is None else torch.logaddexp(lse, part_lse)
    last_diagonal = k - 1 - positions  # (r,): slash index of key 0 per row
    for k0, k1 in chunks:
        key_index = torch.arange(k0, k1, device=device)  # (c,)
        allowed = key_index[None, :] <= positions[:, None]  # (r, c)
        scores = _score_chunk(rows, keys[:, k0:k1], scaling, allowed)  # (n, G, r, c)
        probs = torch.softmax(scores, dim=-1) if lse is None else torch.exp(scores - lse)
        vertical[:, :, k0:k1] += probs.sum(dim=2)
        diagonal = last_diagonal[:, None] + key_index[None, :]  # (r, c): K - 1 - distance
        diagonal = torch.where(allowed & (diagonal >= 0), diagonal, k)  # slot K: dropped
        flat = diagonal.reshape(1, 1, -1).expand(n, g, -1)  # (n, G, r * c)
        slash.scatter_add_(-1, flat, probs.reshape(n, g, -1))


def block_means(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """x (B, h, n, D) -> (B, h, ceil(n / block_size), D) fp32: the mean of each block of
    ``block_size`` rows (a partial last block: the mean of its rows), in chunks of whole
    blocks (no fp32 copy of ``x``)."""
    b, h, n, d = x.shape
    blocks = math.ceil(n / block_size)
    out = x.new_empty((b, h, blocks, d), dtype=torch.float32)  # (B, h, n / bs, D)
    step = max(1, POOL_CHUNK_TOKENS // block_size) * block_size
    for t0 in range(0, n, step):
        t1 = min(n, t0 + step)
        part = x[:, :, t0:t1].float()  # (B, h, c, D)
        whole = (t1 - t0) // block_size
        i0 = t0 // block_size
        if whole:
            tokens = part[:, :, : whole * block_size].reshape(b, h, whole, block_size, d)
            out[:, :, i0 : i0 + whole] = tokens.mean(dim=3)
        if whole * block_size < t1 - t0:
            out[:, :, i0 + whole] = part[:, :, whole * block_size :].mean(dim=2)
    return out


def sum_pool(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """x (B, H, K) -> (B, H, ceil(K / block_size)): sums of ``block_size`` consecutive
    entries, the last block padded with zeros (the official ``torch_bhn_sumpool``)."""
    b, h, k = x.shape
    pad = math.ceil(k / block_size) * block_size - k
    return torch.nn.functional.pad(x, (0, pad)).reshape(b, h, -1, block_size).sum(-1)


def cover_count(x: torch.Tensor, gamma: float, budget_bytes: int) -> torch.Tensor:
    """x (B, H, K) -> (B, H) int64: the official ``score_cover_topk``, the number of the
    largest entries whose cumulative sum stays <= gamma, plus one. Rows are sorted in
    chunks that fit ``budget_bytes``."""
    b, h, k = x.shape
    flat = x.reshape(b * h, k)
    out = torch.empty(b * h, dtype=torch.int64, device=x.device)
    step = max(1, budget_bytes // (16 * k))
    for r0 in range(0, b * h, step):
        part = flat[r0 : r0 + step]
        cumulative = torch.cumsum(torch.sort(part, dim=-1, descending=True).values, dim=-1)
        out[r0 : r0 + step] = (cumulative <= gamma).sum(dim=-1) + 1
    return out.reshape(b, h)


def js_distance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """(..., n), (..., n) distributions -> (...): the square root of their Jensen-Shannon
    divergence (natural log), the official ``square_root_js_divergence`` (NaN where an entry
    of p or q is exactly 0, as there)."""
    m = (p + q) / 2
    return torch.sqrt(0.5 * (p * torch.log(p / m)).sum(-1) + 0.5 * (q * torch.log(q / m)).sum(-1))


def estimated_block_attention(
    last_query_mean: torch.Tensor, key_means: torch.Tensor, scaling: float
) -> torch.Tensor:
    """last_query_mean (B, H, D), key_means (B, Hkv, Kb, D) -> (B, H, Kb) fp32: the softmax
    over key blocks of the mean last-block query against each key block's mean key (the
    official ``avg_qk``; no causal cut, as there)."""
    b, h, d = last_query_mean.shape
    hkv = key_means.shape[1]
    grouped = last_query_mean.reshape(b, hkv, h // hkv, d)  # (B, Hkv, G, D)
    scores = torch.einsum("bngd,bnkd->bngk", grouped * scaling, key_means)  # (B, Hkv, G, Kb)
    return torch.softmax(scores.reshape(b, h, -1), dim=-1)  # (B, H, Kb)
