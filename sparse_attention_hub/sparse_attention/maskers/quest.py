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
  partial page is scored from its valid tokens only and is not forced in (the official decode
  step pads it with the dtype's minimum, so only its valid keys count).
- A call with several query rows (the question tokens) scores each row as a decode step at
  the row's position would: a row that may attend no later key (a causal row) scores its own
  page, the one holding its position, from that page's keys up to and including its
  position only (the partial page of that decode step); the full pages before it are shared,
  and the pages after it hold no key the row may attend. A causal row whose keys up to its
  position fit the budget keeps all of them, as that decode step would (dense). So every
  question row selects what a decode step at its position selects, with no key after the row
  in its bounds.

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
  prefill is here; its LongBench script feeds the question one token at a time); a
  multi-token call (the question tokens) selects pages per query row, each as a decode step at
  its position (above), with two differences: a float ``token_budget`` is a
  fraction of the call's K (as for every masker), not of the row's; and on a sliding-window
  layer a row's first page is summarised from all of the call's keys of that page, some before
  the row's window, which a decode step's cache has dropped (the attention mask still keeps
  them out). A row that may attend a later key (no causal mask) scores whole pages.
- Pages are chosen from their bounds alone, not from ``previous_mask`` (as in the official
  code, where the budget covers every key): a page the sink or window already covers still
  counts toward the budget.
- ``label_bits`` < 16 fake-quantises each page's min and max vectors (min-max over the D
  channels of the page, ``2**label_bits`` levels) rounding m down and M up, so U_p stays an
  upper bound; 16 means no quantisation (the official accuracy path keeps fp16 summaries).
- The page bounds are computed from unscaled q . k (the softmax scale and a soft cap are
  monotone and do not change the ranking), summed in fp64 and rounded to fp32 (the official
  code sums in fp32), so a row's own page, summed on its own, ties with an equal page.

Ties: pages with equal bounds are ranked by page index, the earlier page first (a stable
sort), so the same inputs always give the same mask.

State (through the ``StatefulMasker`` contract): :class:`QuestState`, the page mins and maxes
of the keys seen so far. New keys extend it, recomputing only the last partial page; a
rollback or a sliding window cuts it to whole pages. A partial edge page whose keys were cut is
recomputed from the call's keys (at most two pages) before scoring. The rows' own pages are
summarised per call from the keys of the pages holding the queries (running min and max within
each page: (B, Hkv, Q + page_size, D) at most), never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
from sparse_attention_hub.sparse_attention.maskers.quest_pages import (
    fake_quantise,
    page_bounds,
    page_prefix_summaries,
    page_summaries,
    row_bounds,
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
    # 1: a question row is scored as a decode step at its position (no later key)
    revision: ClassVar[int] = 1

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


def causal_rows(inputs: AttentionInputs, allowed: torch.Tensor | None) -> torch.Tensor:
    """(B|1, H|1, Q) bool: the rows that may attend no key after their own position (every row
    of a model's causal call, and a decode step's single row)."""
    later = inputs.key_positions() > inputs.query_positions().unsqueeze(-1)  # (Q, K)
    if allowed is None:
        return ~later.any(-1)  # (Q,)
    return ~(later & allowed).any(-1)  # (B|1, H|1, Q)


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

    def _own_page_bounds(
        self, inputs: AttentionInputs, causal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H, Q, 1) bound of each row's own page (the page holding its position) and
        (B, H, Q, 1) that page's index. A causal row's own page is summarised from its keys up
        to the row's position, as a decode step there holds it; another row's from all of the
        call's keys of that page."""
        size, offset, n_k = self.config.page_size, inputs.key_offset, inputs.keys.shape[2]
        b, h, n_q, d = inputs.queries.shape
        h_kv = inputs.keys.shape[1]
        assert inputs.query_start is not None  # set in __post_init__
        first = min(max(inputs.query_start, offset), offset + n_k - 1)
        first = max(offset, first // size * size)  # the first row's page (or key 0) onward
        low, high = page_prefix_summaries(inputs.keys[:, :, first - offset :], first, size)
        positions = inputs.query_positions().clamp(offset, offset + n_k - 1)  # (Q,)
        page_last = ((positions // size + 1) * size).clamp(max=offset + n_k) - 1  # (Q,)
        last = torch.where(causal, positions, page_last) - first  # (B|1, H|1, Q)
        index = last.expand(b, h, n_q).reshape(b, h_kv, -1, 1).expand(-1, -1, -1, d)
        mins = low.gather(2, index).reshape(b, h, n_q, d)  # (B, H, Q, D)
        maxs = high.gather(2, index).reshape(b, h, n_q, d)
        mins, maxs = fake_quantise(mins, maxs, self.config.label_bits)
        bound = row_bounds(inputs.queries, mins, maxs).unsqueeze(-1)  # (B, H, Q, 1)
        own = (positions // size - offset // size).reshape(1, 1, n_q, 1).expand(b, h, n_q, 1)
        return bound, own  # (B, H, Q, 1) each

    def _scores(
        self, inputs: AttentionInputs, allowed: torch.Tensor | None, causal: torch.Tensor
    ) -> torch.Tensor:
        """(B, H, Q, P) page bounds of each row: -inf for a page with no key the row may see."""
        size, offset, n_k = self.config.page_size, inputs.key_offset, inputs.keys.shape[2]
        mins, maxs = self._summaries(inputs)
        scores = page_bounds(inputs.queries, mins, maxs)  # (B, H, Q, P)
        own_bound, own_page = self._own_page_bounds(inputs, causal)
        scores.scatter_(-1, own_page, own_bound)  # each row's own page, cut at the row
        n_pages = scores.shape[-1]
        if allowed is not None:
            lead = offset % size
            padded = F.pad(allowed, (lead, n_pages * size - lead - n_k), value=False)
            page_allowed = padded.reshape(*padded.shape[:-1], n_pages, size).any(-1)
            scores = scores.masked_fill(~page_allowed, float("-inf"))  # (B, H, Q, P)
        if self.config.keep_last_page:
            own = inputs.query_positions() // size - offset // size  # (Q,)
            is_own = own.unsqueeze(-1) == torch.arange(n_pages, device=scores.device)  # (Q, P)
            scores = torch.where(is_own & (scores > float("-inf")), float("inf"), scores)
        return scores

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus every allowed key of each row's selected pages; a causal row
        whose keys up to its position fit in the budget keeps them all (dense), as a decode
        step there would."""
        shape, device = inputs.mask_shape, inputs.keys.device
        tokens = resolve_size(self.config.token_budget, shape[3])
        if previous_mask.is_full_flag or tokens == 0 or shape[3] == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=device))
        if tokens >= shape[3]:
            return previous_mask.merge(Mask.create_full(shape, device=device))
        offset = inputs.key_offset
        allowed = inputs.allowed_keys()
        causal = causal_rows(inputs, allowed)  # (B|1, H|1, Q)
        scores = self._scores(inputs, allowed, causal)  # (B, H, Q, P)
        n_keep = self.pages_to_keep(tokens, scores.shape[-1])
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :n_keep]
        keep = torch.gather(scores, -1, order) > float("-inf")  # (B, H, Q, n_keep)
        selected = torch.zeros(scores.shape, dtype=torch.bool, device=device)
        selected.scatter_(-1, order, keep)  # (B, H, Q, P)
        own_keys = inputs.query_positions() - offset + 1  # (Q,) keys up to each row
        dense = tokens >= torch.where(causal, own_keys, shape[3])  # (B|1, H|1, Q)
        selected = selected | dense.unsqueeze(-1)
        page_of_key = (
            inputs.key_positions() // self.config.page_size - offset // self.config.page_size
        )
        active = selected[..., page_of_key]  # (B, H, Q, K)
        if allowed is not None:
            active = active & allowed
        return previous_mask.with_active(active)


__all__ = [
    "QuestConfig",
    "QuestMasker",
    "QuestState",
    "causal_rows",
    "fake_quantise",
    "page_bounds",
    "page_prefix_summaries",
    "page_summaries",
    "row_bounds",
]
