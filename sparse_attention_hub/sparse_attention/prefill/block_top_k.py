"""``block_top_k`` prefill masker: the block oracle, the upper bound of block-sparse prefill.

Exact block scores: for each query row the softmax attention probabilities over its causal
(in-window) keys (scaled, soft-capped like the model), summed over the rows of a query block
and the keys of a key block: ``mass[i, j]`` is the attention mass query block ``i`` puts on key
block ``j``. Per query block the top ``block_budget`` key blocks are kept (an int: that many;
a float: that fraction of the row's causal key blocks, rounded up), always with the diagonal
block(s), those holding the keys at the block's own query positions (they count in the budget).
The scores are computed in query chunks whose (B, H, rows, K) fp32 temporaries fit
``inputs.budget_bytes``.

Q=K=16, block 4, block_budget 2 (numbers: the rank of a block's mass in its row; D =
diagonal, kept always; ``#`` kept, ``.`` dropped)::

    mass rank        kept
    D . . .          # . . .
    1 D . .          # # . .
    2 1 D .          . # # .      <- rows 8..11: diagonal + the best other block
    1 3 2 D          # . . #

Sliding-window layers: the blocks outside the window hold no causal pair and are never kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.prefill.base import (
    PrefillInputs,
    PrefillMasker,
    PrefillMaskerConfig,
    PrefillSelection,
)
from sparse_attention_hub.sparse_attention.prefill.block_mask import (
    CallGeometry,
    block_bounds,
    geometry_of,
)
from sparse_attention_hub.sparse_attention.prefill.checks import (
    check_block_budget,
    check_optional_block_size,
)
from sparse_attention_hub.sparse_attention.prefill.registry import register_prefill_masker
from sparse_attention_hub.sparse_attention.prefill.scores import row_scores

#: fp32 bytes of one (B, H, row, key) entry of a chunk at its peak (scores, probabilities).
BYTES_PER_ENTRY = 12


@dataclass(frozen=True)
class BlockTopKPrefillConfig(PrefillMaskerConfig):
    """``block_budget``: int >= 1 key blocks per query block, or a float in (0, 1] (fraction
    of its causal key blocks; 1.0 = every causal block, dense attention).
    ``block_size``: tokens per block (None: the engine's ``prefill_block_size``)."""

    block_budget: int | float
    block_size: int | None = None

    def __post_init__(self) -> None:
        check_block_budget(self, "block_budget", self.block_budget)
        check_optional_block_size(self, "block_size", self.block_size)


def block_mass(inputs: PrefillInputs, geometry: CallGeometry) -> torch.Tensor:
    """(B, H, nq, nk) fp32: the exact softmax attention mass of each (query block, key block)
    pair (see the module doc), computed in query chunks under ``inputs.budget_bytes``."""
    b, h, q_len, _ = inputs.queries.shape
    k_len, bs = inputs.key_length, geometry.block_size
    nq, nk = geometry.num_blocks
    rows = max(1, inputs.budget_bytes // max(1, b * h * k_len * BYTES_PER_ENTRY))
    device = inputs.queries.device
    mass = torch.zeros(b, h, nq, nk, dtype=torch.float32, device=device)
    keys = inputs.keys.float()  # (B, Hkv, K, D), upcast once
    kv_idx = torch.arange(k_len, device=device)
    for start in range(0, q_len, rows):
        stop = min(q_len, start + rows)
        rows_q = inputs.queries[:, :, start:stop]  # (B, H, r, D)
        scores = row_scores(rows_q, keys, inputs.scaling, inputs.softcap)  # (B, H, r, K)
        q_idx = torch.arange(start, stop, device=device)[:, None]
        scores = scores.masked_fill(~geometry.allowed(q_idx, kv_idx[None, :]), float("-inf"))
        probs = torch.softmax(scores, dim=-1).nan_to_num_(0.0)  # a row with no key: zeros
        per_block = nn_pad(probs, nk * bs).reshape(b, h, stop - start, nk, bs).sum(dim=-1)
        mass.index_add_(2, q_idx[:, 0] // bs, per_block)  # (B, H, r, nk) into query blocks
    return mass


def nn_pad(probs: torch.Tensor, length: int) -> torch.Tensor:
    """``probs`` (..., K) zero-padded to (..., length)."""
    return torch.nn.functional.pad(probs, (0, length - probs.shape[-1]))


def diagonal_blocks(geometry: CallGeometry, device: torch.device) -> torch.Tensor:
    """(nq, nk) bool: the key blocks holding the keys at each query block's own positions."""
    bs = geometry.block_size
    nq, nk = geometry.num_blocks
    shift = geometry.query_start - geometry.key_offset
    first = torch.arange(nq, device=device) * bs + shift  # key index of the first query
    last = torch.clamp(first - shift + bs, max=geometry.query_length) - 1 + shift
    k_first = torch.arange(nk, device=device) * bs  # (nk,)
    k_last = k_first + bs - 1
    inside = (k_last[None, :] >= first[:, None]) & (k_first[None, :] <= last[:, None])
    return inside & (k_first[None, :] < geometry.key_length)


@register_prefill_masker("block_top_k", "Oracle: the top block_budget key blocks by exact mass.")
class BlockTopKPrefill(PrefillMasker):
    """Per query block the ``block_budget`` key blocks of highest exact attention mass, the
    diagonal always (see the module doc)."""

    config_class = BlockTopKPrefillConfig
    config: BlockTopKPrefillConfig

    def budgets(self, causal_blocks: torch.Tensor) -> torch.Tensor:
        """(nq,) int64: key blocks kept per query block with ``causal_blocks`` (nq,) causal."""
        budget = self.config.block_budget
        if isinstance(budget, float):
            kept = torch.ceil(causal_blocks.double() * budget - 1e-9).long()
        else:
            kept = torch.full_like(causal_blocks, budget)
        return torch.minimum(kept.clamp_min(1), causal_blocks)

    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        geometry = geometry_of(inputs, self.config.block_size)
        device = inputs.queries.device
        causal, _ = block_bounds(geometry, device)  # (nq, nk)
        diagonal = diagonal_blocks(geometry, device) & causal
        mass = block_mass(inputs, geometry)  # (B, H, nq, nk)
        mass = mass.masked_fill(~causal, -1.0).masked_fill(diagonal, math.inf)
        budget = self.budgets(causal.sum(dim=-1))  # (nq,)
        order = torch.argsort(mass, dim=-1, descending=True, stable=True)  # (B, H, nq, nk)
        rank = torch.empty_like(order).scatter_(
            -1, order, torch.arange(order.shape[-1], device=device).expand_as(order)
        )
        blocks = (rank < budget[:, None]) & causal | diagonal  # (B, H, nq, nk)
        return PrefillSelection(blocks, geometry.block_size)
