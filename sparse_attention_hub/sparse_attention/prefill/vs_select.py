"""Pure functions of MInference's vertical-slash selection (used by ``vertical_slash.py``).

Vocabulary: a call has queries (B, H, Q, D) at positions ``query_start + q`` and keys
(B, Hkv, K, D) at positions ``key_offset + k``. A *vertical* is a key column ``k`` (a (B, H, K)
table); a *slash* is a diagonal of constant position difference ``d = (query_start + q) -
(key_offset + k)``, stored in a (B, H, Q + K) table at index ``t = q - k + K - 1`` (the call's
index difference shifted to be >= 0; ``t`` and ``d`` differ by the constant ``query_start -
key_offset - K + 1``; the last entry is unused padding). Nothing here builds a (Q, K) tensor:
the estimate reads only the last ``last_q`` query rows, and blocks are found from prefix sums of
the diagonal table.

Drawn (Q = K = 8, one vertical at k = 1, slashes d = 0 and d = 3)::

    #.......
    ##......
    .##.....
    #|.#....
    .#..#...
    .#...#..
    .#.#..#.
    .#..#..#
"""

from __future__ import annotations

import math

import torch

#: MInference's kernel block (``block_size_M = block_size_N = 64``).
VS_BLOCK = 64
#: Official forcing: the first 30 key columns (``vertical[..., :30] = inf``) ...
FORCED_VERTICALS = 30
#: ... and the 100 most recent diagonals (``slash[..., -100:] = inf``: d = 0 .. 99).
FORCED_SLASHES = 100
#: Official floors: ``vertical_size = max(vertical_size, 30)``, ``slash_size = max(.., 50)``.
MIN_VERTICALS = 30
MIN_SLASHES = 50
#: A forced entry's score: above any estimate (a softmax sum over <= 64 rows is <= 64).
_FORCED = 1.0e6


def _causal(q_pos: torch.Tensor, k_pos: torch.Tensor, sliding_window: int | None) -> torch.Tensor:
    """(n, K) bool: pairs of positions ``q_pos`` (n, 1) and ``k_pos`` (1, K) the layer sees."""
    diff = q_pos - k_pos
    ok = diff >= 0
    if sliding_window is not None:
        ok = ok & (diff < sliding_window)
    return ok


def last_q_vertical_slash_scores(
    queries: torch.Tensor,
    keys: torch.Tensor,
    heads: list[int],
    scaling: float,
    query_start: int,
    key_offset: int,
    last_q: int,
    sliding_window: int | None = None,
    budget_bytes: int = 128 * 2**20,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The estimate of ``vertical_and_slash_kernel``: softmax (fp32) of the last ``n = min(last_q,
    Q)`` query rows over all keys (causal by positions), summed per column and per diagonal.

    Args:
        queries: (B, H, Q, D).
        keys: (B, H, K, D), repeated to the query heads (a view is fine).
        heads: the query heads to estimate (h' of them).
    Returns:
        vertical: (B, h', K) fp32, the column sums.
        slash: (B, h', Q + K) fp32, the diagonal sums at ``t = q - k + K - 1``.
    Heads are processed in groups whose fp32 temporaries fit ``budget_bytes``.
    """
    b, _, q_len, d = queries.shape
    k_len = keys.shape[2]
    n = min(last_q, q_len)
    device = queries.device
    q_pos = torch.arange(q_len - n, q_len, device=device)[:, None] + query_start  # (n, 1)
    k_pos = torch.arange(k_len, device=device)[None, :] + key_offset  # (1, K)
    visible = _causal(q_pos, k_pos, sliding_window)  # (n, K)
    per_head = 4 * b * (k_len * d + 4 * n * (k_len + n))
    group = max(1, budget_bytes // max(per_head, 1))
    vertical = torch.empty(b, len(heads), k_len, dtype=torch.float32, device=device)
    slash = torch.zeros(b, len(heads), q_len + k_len, dtype=torch.float32, device=device)
    for g0 in range(0, len(heads), group):
        idx = torch.tensor(heads[g0 : g0 + group], device=device)
        q = queries[:, idx, q_len - n :].float()  # (B, g, n, D)
        k = keys[:, idx].float()  # (B, g, K, D)
        s = torch.matmul(q, k.transpose(-1, -2)) * scaling  # (B, g, n, K)
        s = s.masked_fill(~visible, float("-inf"))
        p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # rows that see nothing -> 0
        vertical[:, g0 : g0 + group] = p.sum(dim=-2)
        slash[:, g0 : g0 + group, q_len - n : q_len + k_len - 1] = _diagonal_sums(p)
    return vertical, slash


def _diagonal_sums(p: torch.Tensor) -> torch.Tensor:
    """(B, g, n, K) -> (B, g, K + n - 1): entry ``r + (K - 1 - k)`` sums ``p[..., r, k]`` (the skew
    trick: rows of the key-flipped scores shifted right by their row index)."""
    bb, g, n, k_len = p.shape
    f = torch.flip(p, dims=(-1,))  # (B, g, n, K): f[r, j] = p[r, K - 1 - j]
    f = torch.nn.functional.pad(f, (0, n))  # (B, g, n, K + n)
    f = f.reshape(bb, g, n * (k_len + n))[..., : n * (k_len + n - 1)]
    f = f.reshape(bb, g, n, k_len + n - 1)  # (B, g, n, K + n - 1): row r shifted by r
    return f.sum(dim=-2)


def keep_top(scores: torch.Tensor, sizes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, H, N) bool: per (b, h), the ``sizes[h]`` highest ``scores`` among ``valid`` entries.

    Args:
        scores: (B, H, N) fp32 (forced entries already raised above every estimate).
        sizes: (H,) int64, how many to keep per head (0 keeps none).
        valid: (N,) bool, the candidates.
    Ties keep the lower index first (a stable sort).
    """
    masked = scores.masked_fill(~valid, float("-inf"))
    order = torch.sort(masked, dim=-1, descending=True, stable=True).indices  # (B, H, N)
    rank = torch.empty_like(order)
    ar = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    rank.scatter_(-1, order, ar)  # rank[b, h, i] = position of i in the order
    return (rank < sizes.to(scores.device)[None, :, None]) & valid


def forced_vertical_scores(vertical: torch.Tensor) -> torch.Tensor:
    """(B, H, K): the column scores with the first ``FORCED_VERTICALS`` keys raised above all
    estimates (earlier keys first among them)."""
    k_len = vertical.shape[-1]
    m = min(FORCED_VERTICALS, k_len)
    out = vertical.clone()
    out[..., :m] = _FORCED - torch.arange(m, device=vertical.device, dtype=vertical.dtype)
    return out


def forced_slash_scores(slash: torch.Tensor, shift: int) -> torch.Tensor:
    """(B, H, Q + K): the diagonal scores with offsets ``d = t + shift`` in ``[0, FORCED_SLASHES)``
    raised above all estimates (smaller offsets first among them)."""
    t = torch.arange(slash.shape[-1], device=slash.device)
    d = (t + shift).to(slash.dtype)
    forced = (d >= 0) & (d < FORCED_SLASHES)
    return torch.where(forced, _FORCED - d, slash)


def causal_any_blocks(
    q_len: int,
    k_len: int,
    query_start: int,
    key_offset: int,
    block: int,
    device: torch.device,
    sliding_window: int | None = None,
) -> torch.Tensor:
    """(nq, nk) bool: the block pairs that hold at least one causal pair (key block's first
    position <= the query block's last position) and, with ``sliding_window``, one pair inside
    the window (query block's first position - key block's last position < window)."""
    nq, nk = math.ceil(q_len / block), math.ceil(k_len / block)
    first_q = torch.arange(nq, device=device) * block + query_start
    last_q = torch.clamp(torch.arange(1, nq + 1, device=device) * block, max=q_len) - 1
    first_k = torch.arange(nk, device=device) * block + key_offset
    last_k = torch.clamp(torch.arange(1, nk + 1, device=device) * block, max=k_len) - 1
    out = first_k[None, :] <= (last_q[:, None] + query_start)
    if sliding_window is not None:
        out &= (first_q[:, None] - (last_k[None, :] + key_offset)) < sliding_window
    return out


def vertical_slash_blocks(
    verticals: torch.Tensor, diagonals: torch.Tensor, q_len: int, block: int, budget_bytes: int
) -> torch.Tensor:
    """(B, H, nq, nk) bool: the blocks holding a vertical column or a slash pair.

    Args:
        verticals: (B, H, K) bool.
        diagonals: (B, H, Q + K) bool, index ``t = q - k + K - 1``.
    Block (i, j) with rows [r0, r1] and keys [k0, k1] holds exactly the diagonals ``t`` in
    ``[r0 - k1 + K - 1, r1 - k0 + K - 1]``: one prefix-sum difference per block. Verticals are
    marked in every row block (the caller cuts to causal blocks).
    """
    b, h, k_len = verticals.shape
    nq, nk = math.ceil(q_len / block), math.ceil(k_len / block)
    device = verticals.device
    col = verticals.reshape(b, h, -1)
    pad = nk * block - k_len
    col = torch.nn.functional.pad(col, (0, pad)).reshape(b, h, nk, block).any(-1)  # (B, H, nk)
    cs = torch.nn.functional.pad(diagonals.to(torch.int32).cumsum(-1, dtype=torch.int32), (1, 0))
    k0 = torch.arange(nk, device=device) * block
    k1 = torch.clamp(k0 + block, max=k_len) - 1
    out = torch.empty(b, h, nq, nk, dtype=torch.bool, device=device)
    rows = max(1, budget_bytes // max(1, (16 * b * h + 32) * nk))  # gathers + indices
    for i0 in range(0, nq, rows):
        r0 = torch.arange(i0, min(nq, i0 + rows), device=device) * block
        r1 = torch.clamp(r0 + block, max=q_len) - 1
        lo = (r0[:, None] - k1[None, :] + k_len - 1).reshape(-1)  # (rows * nk,)
        hi = (r1[:, None] - k0[None, :] + k_len - 1).reshape(-1)
        count = cs[..., hi + 1] - cs[..., lo]  # (B, H, rows * nk)
        n_rows = r0.shape[0]
        out[:, :, i0 : i0 + n_rows] = count.reshape(b, h, n_rows, nk) > 0
    return out | col[:, :, None, :]


def pooled_block_scores(queries: torch.Tensor, keys: torch.Tensor, block: int) -> torch.Tensor:
    """(B, H, nq, nk) fp32: MInference's ``_build_block_index`` scores, mean-pooled queries and
    keys per block of ``block`` (zero-padded: a partial block's sum is divided by ``block``)
    dotted without the softmax scale.

    Args:
        queries: (B, H, Q, D); keys: (B, H, K, D) (repeated to the query heads).
    """
    b, h, q_len, d = queries.shape
    k_len = keys.shape[2]
    nq, nk = math.ceil(q_len / block), math.ceil(k_len / block)
    qp = torch.nn.functional.pad(queries.float(), (0, 0, 0, nq * block - q_len))
    kp = torch.nn.functional.pad(keys.float(), (0, 0, 0, nk * block - k_len))
    qm = qp.reshape(b, h, nq, block, d).sum(-2) / block  # (B, H, nq, D)
    km = kp.reshape(b, h, nk, block, d).sum(-2) / block  # (B, H, nk, D)
    return torch.matmul(qm, km.transpose(-1, -2))  # (B, H, nq, nk)


def diagonal_prefix(diagonals: torch.Tensor) -> torch.Tensor:
    """(B, H, Q + K) bool -> (B, H, Q + K + 1) int32: ``cs[x]`` = selected diagonals ``t < x``."""
    return torch.nn.functional.pad(diagonals.to(torch.int32).cumsum(-1, dtype=torch.int32), (1, 0))


def count_offsets(
    prefix: torch.Tensor,
    b: torch.Tensor | slice,
    h: torch.Tensor | slice,
    lo: torch.Tensor,
    hi: torch.Tensor,
    shift: int | torch.Tensor,
) -> torch.Tensor:
    """How many selected offsets ``d`` lie in ``[lo, hi]`` (elementwise; > 0 iff any; <= 0 when
    ``lo > hi``), read from ``prefix`` (:func:`diagonal_prefix`) at ``t = d - shift``."""
    top = prefix.shape[-1] - 1
    upper = prefix[b, h, (hi - shift + 1).clamp(0, top)]
    lower = prefix[b, h, (lo - shift).clamp(0, top)]
    return upper - lower


def range_cover(
    prefix: torch.Tensor,
    b: torch.Tensor | slice,
    h: torch.Tensor | slice,
    ends: torch.Tensor,
    k_lo: torch.Tensor,
    k_hi: torch.Tensor,
    shift: int | torch.Tensor,
) -> torch.Tensor:
    """Whether the kernel's slash ranges of a row block cover some key in ``[k_lo, k_hi]``.

    ``convert_vertical_slash_indexes`` gives slash ``d`` in the row block that ends (exclusive,
    in key indices) at ``E = ends`` the keys ``[E - d - 64, E - d)`` when ``E - d >= 64``, else
    ``[0, 64)``, and skips ``d >= E``. So keys ``[k_lo, k_hi]`` are covered iff some ``d`` lies in
    ``[E - k_hi - 64, min(E - k_lo - 1, E - 64)]``, or ``k_lo < 64`` and some ``d`` in
    ``[E - 63, E - 1]``. All arguments broadcast elementwise.
    """
    band = count_offsets(
        prefix,
        b,
        h,
        ends - k_hi - VS_BLOCK,
        torch.minimum(ends - k_lo - 1, ends - VS_BLOCK),
        shift,
    )
    clamped = count_offsets(prefix, b, h, ends - (VS_BLOCK - 1), ends - 1, shift)
    return (band > 0) | ((k_lo < VS_BLOCK) & (clamped > 0))


def range_blocks(
    diagonals: torch.Tensor, q_len: int, ends_offset: int, shift: int, budget_bytes: int
) -> torch.Tensor:
    """(B, H, nq, nk) bool: the blocks the kernel's slash ranges touch (64-row blocks whose end
    in key indices is ``ends_offset + (i + 1) * 64``; see :func:`range_cover`).

    Args:
        diagonals: (B, H, Q + K) bool, index ``t = d - shift``.
    """
    b, h, n_t = diagonals.shape
    k_len = n_t - q_len
    nq, nk = math.ceil(q_len / VS_BLOCK), math.ceil(k_len / VS_BLOCK)
    device = diagonals.device
    prefix = diagonal_prefix(diagonals)
    k0 = torch.arange(nk, device=device) * VS_BLOCK
    k1 = torch.clamp(k0 + VS_BLOCK, max=k_len) - 1
    out = torch.empty(b, h, nq, nk, dtype=torch.bool, device=device)
    rows = max(1, budget_bytes // max(1, (32 * b * h + 64) * nk))  # gathers + indices
    for i0 in range(0, nq, rows):
        ends = ends_offset + (torch.arange(i0, min(nq, i0 + rows), device=device) + 1) * VS_BLOCK
        grid_e, grid_k0 = torch.broadcast_tensors(ends[:, None], k0[None, :])  # (rows, nk)
        grid_k1 = k1[None, :].expand_as(grid_e)
        cover = range_cover(
            prefix,
            slice(None),
            slice(None),
            grid_e.reshape(-1),
            grid_k0.reshape(-1),
            grid_k1.reshape(-1),
            shift,
        )  # (B, H, rows*nk)
        out[:, :, i0 : i0 + ends.shape[0]] = cover.reshape(b, h, ends.shape[0], nk)
    return out
