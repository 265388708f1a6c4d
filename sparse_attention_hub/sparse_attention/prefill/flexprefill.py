"""FlexPrefill: per head, a query-aware or a vertical-slash block pattern, chosen by a
Jensen-Shannon test and kept to a cumulative attention ``gamma``.

Lai et al., 2025, "FlexPrefill: A Context-Aware Sparse Attention Mechanism for Efficient
Long-Sequence Inference" (ICLR 2025; official code bytedance/FlexPrefill,
``flex_prefill/ops/flex_prefill_attention.py``: ``get_active_blocks``). Per head, with r the
last ``block_size`` query rows (the last block of queries) and blocks of ``block_size`` keys:

1. The attention of the r rows over all keys (causal, softmax): its mean over the rows per key
   (vertical) and per diagonal (slash, the diagonal at distance ``K - 1 - j`` in entry j).
2. The cover counts: the number of keys (diagonals) whose largest attention sums to ``gamma``,
   ``// block_size + 1`` blocks, clamped to [``min_budget``, ``max_budget``] (in blocks:
   ``ceil(budget / block_size)``; ``max_budget`` at most the key blocks).
3. The Jensen-Shannon test: the estimate ``softmax(mean(r rows) . mean-pooled key blocks)``
   against the true block distribution (the vertical summed per key block). A head whose
   square-root JS divergence is below ``tau`` is *query-aware*: its vertical and slash counts
   drop to ``min_budget``, and it adds the blocks of a block-level attention (the mean query of
   each query block against the mean key of each key block, causal, softmax per row), the
   largest kept while their cumulative sum stays <= ``gamma`` x (query blocks) (all rows of
   the head sorted together). Other heads keep the *vertical-slash* pattern alone.
4. Vertical-slash blocks: the top-count key blocks of the block-summed vertical (the first key
   block always) as columns, every query block at or after them; the top-count block diagonals
   of the block-summed slash (the diagonal block always).

Calls whose keys fit ``max(2 * block_size, ceil(min_budget / block_size) * block_size)``
tokens (or with one query) are dense, as the official code falls back to flash attention.

Q = K = 8 tokens, block_size 2, one vertical-slash head keeping column 1 and diagonals 0, 2
(the first column and the diagonal always)::

    blocks      1 . . .
                1 1 . .
                1 1 1 .
                1 1 1 1   <- column 0 (first), column 1, diagonal 0, diagonal 2 (row 2: col 0)

Differences from the official code, all written down here:

- Scores use the layer's ``scaling`` (the official scores use ``1 / sqrt(D)`` even where the
  model's softmax scale differs), in fp32 (the official ``q . k`` is in the model's bf16 before
  an fp32 softmax); a soft cap or attention sinks are not applied to the estimate (as there).
- The token-to-block count is ``tokens // block_size + 1`` at every block size (the official
  code divides by 128 whatever the block size; the same at its default 128).
- Chunked prefill (Q < K, ``query_start > 0``), which the official code does not run: the last
  r rows of the call estimate the pattern (r = Q when Q < block_size); key blocks are aligned
  at key 0 and every key-grid row (of ``block_size`` positions from key 0) gets the official
  vertical-slash blocks; a call query block (call rows from 0) gets the union of the key-grid
  rows it overlaps (one row when ``query_start - key_offset`` is a multiple of ``block_size``,
  else two: a superset). The query-aware blocks are computed on the call's query blocks, the
  cover being ``gamma`` x (the call's query blocks). The dense fallback reads K.
- Sliding-window layers: the estimate ignores the window; the engine cuts the selection to it.
- The selection is cut to block-causal pairs (the official pads with block 0, always kept).
- Scores are computed in bounded pieces (``PrefillInputs.budget_bytes``); the query-aware
  block scores are (query blocks, key blocks) per head, one head at a time at least.
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
from sparse_attention_hub.sparse_attention.prefill.flexprefill_estimate import (
    block_means,
    cover_count,
    estimated_block_attention,
    js_distance,
    last_rows_attention,
    sum_pool,
)
from sparse_attention_hub.sparse_attention.prefill.registry import register_prefill_masker


def _check_number(field: str, value: object, low: float, high: float | None, kind: type) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise TypeError(f"FlexPrefillConfig.{field} must be {kind.__name__}, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"FlexPrefillConfig.{field} must be {allowed}, got {value}")


@dataclasses.dataclass(frozen=True)
class FlexPrefillConfig(PrefillMaskerConfig):
    """``gamma``: cumulative attention kept, in (0, 1] (paper 0.9; 0.95 for its Llama and GLM
    RULER runs); ``tau``: the JS threshold of a query-aware head, in [0, 1] (0.1; 0 makes
    every head vertical-slash); ``min_budget`` / ``max_budget``: tokens, rounded up to blocks
    (1024 / None, the official ``patch_model`` defaults; None: 1 block / no cap);
    ``block_size``: tokens per block (128)."""

    gamma: float = 0.9
    tau: float = 0.1
    min_budget: int | None = 1024
    max_budget: int | None = None
    block_size: int = 128

    def __post_init__(self) -> None:
        _check_number("gamma", self.gamma, 0.0, 1.0, float)
        if self.gamma == 0:
            raise ValueError(f"FlexPrefillConfig.gamma must be in (0, 1], got {self.gamma}")
        _check_number("tau", self.tau, 0.0, 1.0, float)
        _check_number("block_size", self.block_size, 1, None, int)
        for field in ("min_budget", "max_budget"):
            if getattr(self, field) is not None:
                _check_number(field, getattr(self, field), 1, None, int)
        if (
            self.min_budget is not None
            and self.max_budget is not None
            and self.max_budget < self.min_budget
        ):
            raise ValueError(
                f"FlexPrefillConfig.max_budget must be >= min_budget ({self.min_budget}) "
                f"or None, got {self.max_budget}"
            )


def block_causal(inputs: PrefillInputs, block_size: int) -> torch.Tensor:
    """(Qb, Kb) bool: query block i (call rows) and key block j hold a causal pair."""
    qb, kb = inputs.num_blocks(block_size)
    device = inputs.keys.device
    rows_end = torch.clamp(
        (torch.arange(qb, device=device) + 1) * block_size, max=inputs.query_length
    )
    last_position = inputs.query_start - inputs.key_offset + rows_end - 1  # (Qb,) key index
    first_key = torch.arange(kb, device=device) * block_size  # (Kb,)
    return first_key[None, :] <= last_position[:, None]


def key_grid_rows(inputs: PrefillInputs, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Qb,), (Qb,) int64: the first and last key-grid row (``position // block_size``, key
    indices from key 0) that call query block i overlaps (equal when aligned)."""
    qb, kb = inputs.num_blocks(block_size)
    device = inputs.keys.device
    offset = inputs.query_start - inputs.key_offset
    first_row = torch.arange(qb, device=device) * block_size  # (Qb,) call rows
    last_row = torch.clamp(first_row + block_size, max=inputs.query_length) - 1
    low = (offset + first_row) // block_size
    high = torch.clamp((offset + last_row) // block_size, max=kb - 1)
    return low, high


def top_entries(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """scores (B, H, n), counts (B, H) -> (B, H, n) bool: each row's ``counts`` largest entries
    (``torch.topk`` order, as the official code)."""
    n = scores.shape[-1]
    largest = min(int(counts.max()), n)
    index = scores.topk(largest, dim=-1).indices  # (B, H, c)
    keep = torch.arange(largest, device=scores.device) < counts[..., None]  # (B, H, c)
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, index, keep)


def vertical_slash_blocks(
    vertical: torch.Tensor,
    slash: torch.Tensor,
    num_vertical: torch.Tensor,
    num_slash: torch.Tensor,
    causal: torch.Tensor,
    rows: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """The vertical-slash blocks of each head.

    Args:
        vertical: (B, H, Kb) the block-summed vertical; key block 0 is always kept.
        slash: (B, H, Kb) the block-summed slash (entry Kb - 1 - o: block diagonal o); the
            diagonal (o = 0) is always kept.
        num_vertical, num_slash: (B, H) int64 blocks to keep.
        causal: (Qb, Kb) bool, :func:`block_causal`.
        rows: :func:`key_grid_rows`, the key-grid rows of each call query block.

    Returns:
        (B, H, Qb, Kb) bool: the kept columns on their causal blocks, and the kept block
        diagonals of every key-grid row a query block overlaps.
    """
    vertical = vertical.clone()
    vertical[..., 0] = torch.inf
    slash = slash.clone()
    slash[..., -1] = torch.inf
    columns = top_entries(vertical, num_vertical)  # (B, H, Kb)
    diagonals = top_entries(slash, num_slash).flip(-1)  # (B, H, Kb): by block offset o
    kb = causal.shape[1]
    blocks = columns[:, :, None, :] & causal  # (B, H, Qb, Kb)
    key_block = torch.arange(kb, device=causal.device)
    for row in rows:
        offset = row[:, None] - key_block[None, :]  # (Qb, Kb): block diagonal of (row, key)
        valid = offset >= 0
        blocks |= diagonals[:, :, offset.clamp(min=0)] & valid  # (B, H, Qb, Kb)
    return blocks


def query_aware_blocks(
    query_means: torch.Tensor,
    key_means: torch.Tensor,
    causal: torch.Tensor,
    scaling: float,
    gamma: float,
) -> torch.Tensor:
    """query_means (n, Qb, D), key_means (n, Kb, D) fp32 of n heads, causal (Qb, Kb) ->
    (n, Qb, Kb) bool: the block attention (causal softmax per query block) of each head, its
    largest blocks kept while their cumulative sum (all rows together) stays <= gamma x Qb,
    and block (0, 0) (the official ``score_cover_idx``, whose padding index is 0)."""
    n, qb, _ = query_means.shape
    kb = key_means.shape[1]
    scores = torch.einsum("nqd,nkd->nqk", query_means * scaling, key_means)  # (n, Qb, Kb)
    probs = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
    ordered, index = torch.sort(probs.reshape(n, qb * kb), dim=-1, descending=True)
    keep = torch.cumsum(ordered, dim=-1) <= gamma * qb  # (n, Qb * Kb)
    keep[:, 0] = True  # index 0 replaces the dropped ones: block (0, 0)
    flat = torch.zeros(n, qb * kb, dtype=torch.bool, device=scores.device)
    flat.scatter_(-1, index, keep)
    flat[:, 0] = True
    return flat.reshape(n, qb, kb) & causal


def _add_query_aware(
    blocks: torch.Tensor,
    query_aware: torch.Tensor,
    inputs: PrefillInputs,
    key_means: torch.Tensor,
    causal: torch.Tensor,
    config: FlexPrefillConfig,
) -> None:
    """OR the query-aware blocks of the heads ``query_aware`` (B, H) into ``blocks``
    (B, H, Qb, Kb), heads in chunks that fit the budget."""
    qb, kb = causal.shape
    heads = query_aware.reshape(-1).nonzero().reshape(-1).tolist()
    step = max(1, inputs.budget_bytes // (32 * qb * kb))
    h = inputs.num_heads
    g = inputs.group_size
    for i0 in range(0, len(heads), step):
        chunk = heads[i0 : i0 + step]
        q_means = torch.stack(
            [
                block_means(inputs.queries[b : b + 1, x : x + 1], config.block_size)[0, 0]
                for b, x in (divmod(f, h) for f in chunk)
            ]
        )  # (n, Qb, D)
        k_means = torch.stack([key_means[f // h, (f % h) // g] for f in chunk])  # (n, Kb, D)
        selected = query_aware_blocks(q_means, k_means, causal, inputs.scaling, config.gamma)
        for j, f in enumerate(chunk):
            blocks[f // h, f % h] |= selected[j]


def flexprefill_blocks(
    inputs: PrefillInputs, config: FlexPrefillConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The FlexPrefill selection of one call (see the module doc).

    Returns:
        blocks (B, H, Qb, Kb) bool at ``config.block_size``; query_aware (B, H) bool, the
        heads the JS test made query-aware (all False on a dense call).
    """
    bs = config.block_size
    b, h, q, _ = inputs.queries.shape
    k = inputs.key_length
    causal = block_causal(inputs, bs)  # (Qb, Kb)
    min_blocks = 1 if config.min_budget is None else math.ceil(config.min_budget / bs)
    query_aware = torch.zeros(b, h, dtype=torch.bool, device=inputs.keys.device)
    if q == 1 or k <= max(2 * bs, min_blocks * bs):
        return causal.expand(b, h, -1, -1).clone(), query_aware
    kb = math.ceil(k / bs)
    max_blocks = kb if config.max_budget is None else min(math.ceil(config.max_budget / bs), kb)
    rows = min(q, bs)
    vertical, slash = last_rows_attention(
        inputs.queries,
        inputs.keys,
        inputs.scaling,
        inputs.query_start,
        inputs.key_offset,
        rows,
        inputs.budget_bytes,
    )  # (B, H, K) each
    counts = [
        (cover_count(x, config.gamma, inputs.budget_bytes) // bs + 1)
        .clamp(min=min_blocks)
        .clamp(max=max_blocks)
        for x in (vertical, slash)
    ]  # (B, H) each: vertical, slash
    vertical_blocks, slash_blocks = sum_pool(vertical, bs), sum_pool(slash, bs)  # (B, H, Kb)
    key_means = block_means(inputs.keys, bs)  # (B, Hkv, Kb, D)
    last_mean = inputs.queries[:, :, q - rows :].float().mean(dim=2)  # (B, H, D)
    estimate = estimated_block_attention(last_mean, key_means, inputs.scaling)  # (B, H, Kb)
    query_aware = js_distance(estimate, vertical_blocks) < config.tau
    num_vertical, num_slash = (torch.where(query_aware, min_blocks, c) for c in counts)
    rows_of_blocks = key_grid_rows(inputs, bs)
    blocks = vertical_slash_blocks(
        vertical_blocks, slash_blocks, num_vertical, num_slash, causal, rows_of_blocks
    )
    if bool(query_aware.any()):
        _add_query_aware(blocks, query_aware, inputs, key_means, causal, config)
    return blocks, query_aware


@register_prefill_masker(
    "flexprefill",
    "FlexPrefill (Lai et al., 2025): per head, query-aware or vertical-slash blocks by a JS "
    "test, kept to cumulative attention gamma",
)
class FlexPrefill(PrefillMasker):
    """FlexPrefill's block selection (see the module doc)."""

    config_class = FlexPrefillConfig

    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        """The blocks of ``inputs``' call at ``block_size``."""
        config = self.config
        assert isinstance(config, FlexPrefillConfig)
        check_inputs(inputs)
        blocks, _ = flexprefill_blocks(inputs, config)
        return PrefillSelection(blocks=blocks, block_size=config.block_size)


def check_inputs(inputs: PrefillInputs) -> None:
    """ValueError for a call FlexPrefill cannot select on: queries and keys of different
    batch or head size, heads not a multiple of key heads, queries before the first key."""
    qs, ks = tuple(inputs.queries.shape), tuple(inputs.keys.shape)
    if len(qs) != 4 or len(ks) != 4 or qs[0] != ks[0] or qs[3] != ks[3]:
        raise ValueError(
            f"flexprefill needs queries (B, H, Q, D) and keys (B, Hkv, K, D), got {qs} and {ks}"
        )
    if ks[1] == 0 or qs[1] % ks[1]:
        raise ValueError(f"flexprefill needs H a multiple of Hkv, got H={qs[1]}, Hkv={ks[1]}")
    if qs[2] == 0 or ks[2] == 0:
        raise ValueError(f"flexprefill needs Q >= 1 and K >= 1, got Q={qs[2]}, K={ks[2]}")
    if inputs.query_start < inputs.key_offset:
        raise ValueError(
            "flexprefill needs query_start >= key_offset (the queries' keys are in the call), "
            f"got query_start={inputs.query_start}, key_offset={inputs.key_offset}"
        )
