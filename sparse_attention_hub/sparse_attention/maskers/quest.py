"""Quest: query-aware page selection from per-page key bounds.

Tang et al., 2024, "Quest: Query-Aware Sparsity for Efficient Long-Context LLM Inference"
(ICML 2024; official code mit-han-lab/Quest). This follows the accuracy path the paper's
numbers came from, ``evaluation/quest_attention.py``:

- Keys are cut into pages of ``page_size`` tokens aligned at absolute position 0 (key
  positions come from ``AttentionInputs.key_positions``, so a sliding-window layer whose cache
  starts mid-page gets the same page grid; its first page is then partial).
- Each page keeps the elementwise min and max of its keys, m_p and M_p (D,). For a query q the
  page bound is U_p = sum_d max(q_d * M_p,d, q_d * m_p,d) >= q . k for every key k of the page
  (a true upper bound: each term bounds q_d * k_d).
- Each query head selects its own top ``min(max(3, budget // page_size), n_pages)`` pages (the
  official floor of 3 pages); every allowed key of a selected page becomes active. The last,
  partial page is scored from its valid tokens only and is not forced in.

Pages of 4, budget 8 (two pages; the official floor is 3, shown with 2 for the drawing),
K = 14, the last page partial::

    page bounds   [ 3.1 ][ 0.2 ][ 5.0 ][ 1.7 ]
    selected         #            #
    keys          ####........####..

Differences from the official code, all written down here:

- ``keep_last_page=True`` is the official *kernel* path instead: the page holding the query's
  own position is always kept and the top ``budget // page_size - 1`` of the others are added
  (no floor of 3; at least the own page).
- GQA: the official code is MHA only. Here every query head scores the page summaries of its
  KV head (h // G) and selects its own pages.
- A budget >= K keeps every key (dense attention); the official code would still round the
  budget down to whole pages.
- Forbidden keys stay forbidden: a page with no key the attention mask allows for a row scores
  -inf for that row and is never selected; a selected page adds only its allowed keys.
- The official code runs Quest on decode steps only (prefill is dense, as the adapter's context
  prefill is here); multi-token calls (question tokens) select pages per query row.
- Pages are chosen from their bounds alone, not from ``previous_mask`` (as in the official
  code, where the budget covers every key): a page the sink or window already covers still
  counts toward the budget.
- ``label_bits`` < 16 fake-quantises each page's min and max vectors (min-max over the D
  channels of the page, ``2**label_bits`` levels) rounding m down and M up, so U_p stays an
  upper bound; 16 means no quantisation (the official accuracy path keeps fp16 summaries).
- The page bounds are computed in fp32 from unscaled q . k (the softmax scale and a soft cap
  are monotone and do not change the ranking).

Ties: pages with equal bounds are ranked by page index, the earlier page first (a stable
sort), so the same inputs always give the same mask.

State (through the ``StatefulMasker`` contract): :class:`QuestState`, the page mins and maxes
of the keys seen so far. New keys extend it, recomputing only the last partial page; a
rollback or a sliding window cuts it to whole pages. A partial edge page whose keys were cut is
recomputed from the call's keys (at most two pages) before scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    MaskerConfig,
    Size,
    check_size,
    resolve_size,
)
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker

#: The official floor on the number of selected pages (accuracy path).
MIN_PAGES = 3


@dataclass(frozen=True)
class QuestConfig(MaskerConfig):
    """``token_budget``: int tokens or float fraction of K (the paper evaluates 512 to 4,096);
    ``page_size``: tokens per page (16); ``label_bits``: bits of the page summaries (16 =
    unquantised); ``keep_last_page``: the official kernel path (see the module)."""

    token_budget: Size = 1024
    page_size: int = 16
    label_bits: int = 16
    keep_last_page: bool = False

    def __post_init__(self) -> None:
        check_size(self, "token_budget", self.token_budget, minimum=1)
        for field, low, high in (("page_size", 1, None), ("label_bits", 1, 16)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"QuestConfig.{field} must be an int, got {value!r}")
            if value < low or (high is not None and value > high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"QuestConfig.{field} must be {allowed}, got {value}")
        if not isinstance(self.keep_last_page, bool):
            raise TypeError(
                f"QuestConfig.keep_last_page must be a bool, got {self.keep_last_page!r}"
            )


@dataclass(frozen=True)
class QuestState:
    """Page summaries of the keys at absolute positions [start, end): ``mins``, ``maxs``
    (B, Hkv, P, D) fp32 for the pages ``start // page_size .. (end - 1) // page_size``."""

    mins: torch.Tensor
    maxs: torch.Tensor
    start: int
    end: int


def page_summaries(
    keys: torch.Tensor, first_position: int, page_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-page elementwise (min, max) of ``keys`` (B, Hkv, n, D) at absolute positions
    ``first_position ..``, pages aligned at position 0: two (B, Hkv, P, D) fp32 tensors for the
    pages ``first_position // page_size .. (first_position + n - 1) // page_size``; a partial
    page is summarised from its keys only."""
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
    mins = low.reshape(b, h, pages, page_size, d).amin(3)  # (B, Hkv, P, D)
    maxs = high.reshape(b, h, pages, page_size, d).amax(3)  # (B, Hkv, P, D)
    return mins, maxs


def page_bounds(queries: torch.Tensor, mins: torch.Tensor, maxs: torch.Tensor) -> torch.Tensor:
    """U[b, h, q, p] = sum_d max(q_d * maxs_p,d, q_d * mins_p,d) for queries (B, H, Q, D) and
    page summaries (B, Hkv, P, D): (B, H, Q, P) fp32; query head h reads KV head h // G."""
    b, h, n_q, d = queries.shape
    h_kv = mins.shape[1]
    q = queries.float().reshape(b, h_kv, (h // h_kv) * n_q, d)  # (B, Hkv, G * Q, D)
    bound = q.clamp(min=0) @ maxs.transpose(-1, -2) + q.clamp(max=0) @ mins.transpose(-1, -2)
    return bound.reshape(b, h, n_q, -1)  # (B, H, Q, P)


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


@register_masker(
    "quest",
    "Tang et al., 2024, 'Quest: Query-Aware Sparsity for Efficient Long-Context LLM "
    "Inference' (mit-han-lab/Quest): each query head keeps the token_budget // page_size "
    "pages (at least 3) with the highest per-page min/max bound of q.k.",
)
class QuestMasker(StatefulMasker[QuestState]):
    """Query-aware page selection (see the module for the rule and every deviation)."""

    config_class = QuestConfig
    config: QuestConfig

    # ------------------------------------------------------------------ state contract

    def build_state(self, inputs: AttentionInputs) -> QuestState:
        mins, maxs = page_summaries(inputs.keys, inputs.key_offset, self.config.page_size)
        return QuestState(mins, maxs, inputs.key_offset, inputs.sequence_length)

    def extend_state(self, state: QuestState, inputs: AttentionInputs, new_keys: int) -> QuestState:
        """Recompute from the page holding the state's end (its last, partial page) onward."""
        size = self.config.page_size
        old_end = inputs.sequence_length - new_keys
        keep = old_end // size - state.start // size  # whole pages before the last one
        redo_from = max((old_end // size) * size, inputs.key_offset)
        mins, maxs = page_summaries(
            inputs.keys[:, :, redo_from - inputs.key_offset :], redo_from, size
        )
        return QuestState(
            torch.cat([state.mins[:, :, :keep], mins], dim=2),  # (B, Hkv, P', D)
            torch.cat([state.maxs[:, :, :keep], maxs], dim=2),
            state.start,
            inputs.sequence_length,
        )

    def truncate_state(self, state: QuestState, start: int, stop: int) -> QuestState:
        """Keep the pages touching keys [start, stop); a cut edge page is refreshed on use."""
        size = self.config.page_size
        new_start, new_end = state.start + start, state.start + stop
        first = new_start // size - state.start // size
        last = first if new_end <= new_start else (new_end - 1) // size - state.start // size + 1
        return QuestState(
            state.mins[:, :, first:last], state.maxs[:, :, first:last], new_start, new_end
        )

    def _summaries(self, inputs: AttentionInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Hkv, P, D) mins and maxs of the call's pages, partial edge pages recomputed
        from the call's keys (a truncated state may hold keys that are gone there)."""
        state = self.state(inputs)
        size, offset, n_k = self.config.page_size, inputs.key_offset, inputs.keys.shape[2]
        assert state.start == offset and state.end == inputs.sequence_length, (state, offset)
        mins, maxs = state.mins, state.maxs
        if offset % size:
            count = min(n_k, size - offset % size)
            low, high = page_summaries(inputs.keys[:, :, :count], offset, size)
            mins, maxs = torch.cat([low, mins[:, :, 1:]], 2), torch.cat([high, maxs[:, :, 1:]], 2)
        end = inputs.sequence_length
        if end % size and (end - 1) // size != offset // size:
            count = end % size
            low, high = page_summaries(inputs.keys[:, :, n_k - count :], end - count, size)
            mins, maxs = torch.cat([mins[:, :, :-1], low], 2), torch.cat([maxs[:, :, :-1], high], 2)
        return fake_quantise(mins, maxs, self.config.label_bits)

    # ------------------------------------------------------------------ selection

    def pages_to_keep(self, tokens: int, n_pages: int) -> int:
        """Pages per row for a budget of ``tokens``: the official floor of 3 (accuracy path),
        or the own page plus ``tokens // page_size - 1`` others (kernel path)."""
        pages = tokens // self.config.page_size
        pages = max(1, pages) if self.config.keep_last_page else max(MIN_PAGES, pages)
        return min(pages, n_pages)

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus every allowed key of each row's selected pages."""
        shape, device = inputs.mask_shape, inputs.keys.device
        tokens = resolve_size(self.config.token_budget, shape[3])
        if previous_mask.is_full_flag or tokens == 0 or shape[3] == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=device))
        if tokens >= shape[3]:
            return previous_mask.merge(Mask.create_full(shape, device=device))
        size, offset = self.config.page_size, inputs.key_offset
        mins, maxs = self._summaries(inputs)
        scores = page_bounds(inputs.queries, mins, maxs)  # (B, H, Q, P)
        n_pages = scores.shape[-1]
        lead = offset % size
        tail = n_pages * size - lead - shape[3]
        allowed = inputs.allowed_keys()
        if allowed is not None:
            padded = F.pad(allowed, (lead, tail), value=False)  # (.., Q|1, P * page)
            page_allowed = padded.reshape(*padded.shape[:-1], n_pages, size).any(-1)
            scores = scores.masked_fill(~page_allowed, float("-inf"))  # (B, H, Q, P)
        if self.config.keep_last_page:
            own = inputs.query_positions() // size - offset // size  # (Q,)
            is_own = own.unsqueeze(-1) == torch.arange(n_pages, device=device)  # (Q, P)
            scores = torch.where(is_own & (scores > float("-inf")), float("inf"), scores)
        n_keep = self.pages_to_keep(tokens, n_pages)
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :n_keep]
        keep = torch.gather(scores, -1, order) > float("-inf")  # (B, H, Q, n_keep)
        selected = torch.zeros(scores.shape, dtype=torch.bool, device=device)
        selected.scatter_(-1, order, keep)  # (B, H, Q, P)
        page_of_key = inputs.key_positions() // size - offset // size  # (K,)
        active = selected[..., page_of_key]  # (B, H, Q, K)
        if allowed is not None:
            active = active & allowed
        return previous_mask.with_active(active)


__all__ = [
    "QuestConfig",
    "QuestMasker",
    "QuestState",
    "fake_quantise",
    "page_bounds",
    "page_summaries",
]
