"""``xattention``: XAttention (Xu et al., 2025), official code ``xattn/src/Xattention.py``
(``xattn_estimate``, ``select_mode="inverse"``) and ``xattn/src/utils.py``
(``find_blocks_chunked``).

Each ``block_size`` x ``block_size`` block is scored by antidiagonals of stride ``S``: the query
rows and keys are cut into groups of ``S``; group ``i`` of queries and group ``j`` of keys score
``sum_t q[i*S + S-1-t] . k[j*S + t] * scaling / S`` (one antidiagonal of the S x S tile). Per
query group the scores are soft-maxed (fp32) over the key groups it sees (``j <= i``: the first
key of the group is at or before the group's last query), and summed per (query block, key
block). Per query block, the first key block and the diagonal block (the key block of its last
row) are kept, then the other causal blocks in decreasing sum while the kept sum before adding
one is below ``threshold`` x the row's total (``find_blocks_chunked``'s rule).

Drawn (Q = K = 16, S = 4, one tile): the tile (query group 1, key group 0) is scored by the
antidiagonal ``q4.k3 + q5.k2 + q6.k1 + q7.k0``::

    keys  0123
    q4    ...x
    q5    ..x.
    q6    .x..
    q7    x...

The estimate runs in chunks of query blocks whose strided scores ((Q/S) x (K/S) per chunk,
fp32) fit ``inputs.budget_bytes``; no (Q, K) tensor exists. The selection has ``block_size``
= ``block_size`` and no ``mask_mod``.

Deviations from the official code:

- Scores are computed from fp32 queries and keys with ``inputs.scaling`` (official: the model
  dtype, ``1 / sqrt(D)``; its torch path also rounds the softmax back to the model dtype before
  the block sums). ``norm``, ``kdb``, ``keep_sink`` / ``keep_recent`` and per-layer thresholds
  are not offered (official defaults: 1, 1, off).
- Calls with Q < K: queries sit at their positions (official: aligned to the end of the keys in
  units of its chunk); a group sees a key group when the key group's first position is at or
  before the query group's last one; key groups wholly past K are hidden. On a sliding-window
  layer the estimate ignores the window (the official has none) and the blocks wholly outside
  it are dropped after the selection. The official torch
  path's hiding of every column when K is a multiple of its chunk size (``[-0:]``) is not
  reproduced (its triton path does not have it).
- When the first block is the diagonal block, the official cumulative sum is shifted by one
  entry (it assumes two forced blocks); such a row has no other causal block, so the result is
  the same after the causal cut.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from sparse_attention_hub.sparse_attention.prefill.base import (
    PrefillInputs,
    PrefillMasker,
    PrefillMaskerConfig,
    PrefillSelection,
)
from sparse_attention_hub.sparse_attention.prefill.registry import register_prefill_masker
from sparse_attention_hub.sparse_attention.prefill.vs_select import causal_any_blocks


@dataclasses.dataclass(frozen=True)
class XAttentionConfig(PrefillMaskerConfig):
    """XAttention. Defaults: stride 8 (the paper's LongBench runs; RULER uses 8 and 16),
    block 128 (the official kernel's only size), threshold 0.9 (the paper's tau)."""

    stride: int = 8
    block_size: int = 128
    threshold: float = 0.9

    def __post_init__(self) -> None:
        for name in ("stride", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.block_size % self.stride:
            raise ValueError(
                f"block_size must be a multiple of stride ({self.stride}), got {self.block_size}"
            )
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.0 < t <= 1.0:
            raise ValueError(f"threshold must be a number in (0, 1], got {t!r}")


def query_groups(queries: torch.Tensor, stride: int, block: int) -> torch.Tensor:
    """(B, H, Q, D) -> (B, H, nq * block / S, S * D) fp32, zero-padded to whole blocks: group
    ``i`` = ``[q[iS + S-1], ..., q[iS]]`` (reversed: the antidiagonal)."""
    b, h, q_len, d = queries.shape
    pad = math.ceil(q_len / block) * block - q_len
    qp = torch.nn.functional.pad(queries.float(), (0, 0, 0, pad))
    rq = qp.reshape(b, h, -1, stride, d).flip(3)  # (B, H, Qr, S, D)
    return rq.reshape(b, h, -1, stride * d)


def key_groups(keys: torch.Tensor, stride: int, block: int) -> torch.Tensor:
    """(B, Hkv, K, D) -> (B, Hkv, nk * block / S, S * D) fp32, zero-padded to whole blocks:
    group ``j`` = ``[k[jS], ..., k[jS + S-1]]``."""
    b, hkv, k_len, d = keys.shape
    pad = math.ceil(k_len / block) * block - k_len
    kp = torch.nn.functional.pad(keys.float(), (0, 0, 0, pad))
    return kp.reshape(b, hkv, -1, stride * d)  # (B, Hkv, Kr, S * D)


def antidiagonal_block_sums(
    inputs: PrefillInputs, rk: torch.Tensor, stride: int, block: int, rows: slice
) -> torch.Tensor:
    """(B, H, n, nk) fp32: the softmax-ed antidiagonal scores of query blocks ``rows`` (n of
    them) summed per key block; the strided scores exist for these query blocks only.

    Args:
        rk: (B, Hkv, nk * block / S, S * D), the key groups of :func:`key_groups`.
    """
    b, h, q_len, _ = inputs.queries.shape
    hkv, k_len, g = inputs.keys.shape[1], inputs.key_length, inputs.group_size
    per = block // stride  # groups per block
    r0, r1 = rows.start * block, rows.stop * block
    rq = query_groups(inputs.queries[:, :, r0:r1], stride, block)
    n_rows, n_cols = rq.shape[2], rk.shape[2]
    q_grp = rq.reshape(b, hkv, g * n_rows, -1)  # (B, Hkv, G * rows, S * D)
    s = torch.matmul(q_grp, rk.transpose(-1, -2)).reshape(b, h, n_rows, n_cols)
    s = s * (inputs.scaling / stride)  # (B, H, rows, Kr)
    first_q = r0 + torch.arange(n_rows, device=s.device) * stride  # call row of group start
    first_k = torch.arange(n_cols, device=s.device) * stride
    visible = (first_k[None, :] + inputs.key_offset) <= (
        first_q[:, None] + stride - 1 + inputs.query_start
    )
    visible = visible & (first_k[None, :] < k_len) & (first_q[:, None] < q_len)
    p = torch.softmax(s.masked_fill(~visible, float("-inf")), dim=-1).nan_to_num(0.0)
    n_blocks, nk = n_rows // per, n_cols // per
    return p.reshape(b, h, n_blocks, per, nk, per).sum(dim=(3, 5))  # (B, H, n, nk)


def threshold_blocks(
    sums: torch.Tensor, forced: torch.Tensor, causal: torch.Tensor, threshold: float
) -> torch.Tensor:
    """(B, H, n, nk) bool: per row, the ``forced`` blocks, then the other causal blocks in
    decreasing ``sums`` while the kept sum before each is < ``threshold`` x the row total
    (``find_blocks_chunked``, float64 as the official).

    Args:
        sums: (B, H, n, nk); forced, causal: (n, nk) bool.
    """
    x = sums.double()
    total = x.sum(dim=-1, keepdim=True)
    kept_sum = (x * forced).sum(dim=-1, keepdim=True)
    others = x.masked_fill(forced | ~causal, float("-inf"))
    values, order = torch.sort(others, dim=-1, descending=True)
    finite = torch.isfinite(values)
    vals = torch.where(finite, values, 0.0)
    before = kept_sum + torch.cumsum(vals, dim=-1) - vals
    keep_sorted = finite & (before < threshold * total)
    kept = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return (kept | forced) & causal


def xattention_selection(
    inputs: PrefillInputs, stride: int, block: int, threshold: float
) -> PrefillSelection:
    """The blocks XAttention computes on ``inputs``' call: (B, H, ceil(Q / block), ceil(K /
    block)), query blocks estimated in chunks that fit ``inputs.budget_bytes``."""
    b, h, q_len, _ = inputs.queries.shape
    k_len = inputs.key_length
    nq, nk = inputs.num_blocks(block)
    device = inputs.queries.device
    causal = causal_any_blocks(
        q_len, k_len, inputs.query_start, inputs.key_offset, block, device
    )  # (nq, nk)
    last_row = torch.clamp(torch.arange(1, nq + 1, device=device) * block, max=q_len) - 1
    diag = torch.div(
        last_row + inputs.query_start - inputs.key_offset, block, rounding_mode="floor"
    )
    forced = torch.zeros(nq, nk, dtype=torch.bool, device=device)
    forced[:, 0] = True
    forced[torch.arange(nq, device=device), diag.clamp(0, nk - 1)] = True
    per_block = 4 * b * h * (block // stride) * nk * (block // stride) * 4
    chunk = max(1, inputs.budget_bytes // max(per_block, 1))
    blocks = torch.empty(b, h, nq, nk, dtype=torch.bool, device=device)
    rk = key_groups(inputs.keys, stride, block)
    for i0 in range(0, nq, chunk):
        rows = slice(i0, min(nq, i0 + chunk))
        sums = antidiagonal_block_sums(inputs, rk, stride, block, rows)
        blocks[:, :, rows] = threshold_blocks(sums, forced[rows], causal[rows], threshold)
    if inputs.sliding_window is not None:
        blocks &= causal_any_blocks(
            q_len,
            k_len,
            inputs.query_start,
            inputs.key_offset,
            block,
            device,
            inputs.sliding_window,
        )
    return PrefillSelection(blocks=blocks, block_size=block)


@register_prefill_masker(
    "xattention",
    "XAttention: antidiagonal block scores of stride S, blocks kept to a cumulative threshold",
)
class XAttention(PrefillMasker):
    """XAttention's prefill block selection (see the module doc for deviations)."""

    config_class = XAttentionConfig

    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        """The blocks XAttention computes for ``inputs``' call."""
        cfg = self.config
        assert isinstance(cfg, XAttentionConfig)
        return xattention_selection(inputs, cfg.stride, cfg.block_size, cfg.threshold)
