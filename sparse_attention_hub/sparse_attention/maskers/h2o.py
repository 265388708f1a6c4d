"""H2O (Zhang et al., 2023, arXiv:2306.14048): heavy hitters by accumulated attention + recent keys.

A context key's score is the attention it received, summed over every observed prefill query
(the causal softmax of the whole context, computed in blocks of query rows: never an (L, L)
tensor), averaged over the G query heads of each KV head. Of the ``n_kept`` keys of a KV head,
the last ``int(recent_ratio * n_kept)`` context keys are kept (H2O's recent window; the paper's
default splits the budget evenly) and the heavy hitters fill the rest.

``decode_eviction: true`` is H2O's decode-time form (:mod:`.h2o_decode`, the official
heavy-hitter cache): the scores keep accumulating the attention of every later query, and
before each call the cache is cut back to its budget, the kept context size ``n_kept``, by
evicting the lowest-scored keys outside the recent window (question and generated keys
included). Off (the default), the keys after the context are kept.

Deviations from the paper's code:

- the prefill decision is made once, at the end of the context (or of the question when
  ``query_aware``), as kvpress does; with ``decode_eviction`` a multi-token call (the question)
  attends over the cache plus all of its own keys and the cache is cut back after it, as the
  official cache does for a multi-token step;
- scores are plain sums (kvpress's ``ObservedAttentionPress`` divides each key's sum by the
  number of queries that see it; the paper does not), averaged over the G query heads of a KV
  head (the official cache is per query head, MHA only) and kept per batch row (the official
  one sums the batch); the sink logits of a model that has them (GPT-OSS) are not in the
  softmax of the scores;
- ``query_aware`` keeps every context query of the layer until the question runs (the
  observation is the whole context + question), so it holds (B, H, L, D) per layer meanwhile;
- ties keep the earliest keys;
- ``decode_eviction`` needs ``head_budget: uniform`` (the paper's; Ada-KV's budgets would let a
  head keep less than its recent window), and a KV-cache rollback to a point inside the decoded
  keys (the adapter rolls back to the context only) keeps the evictions made and the scores
  accumulated until then.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, ClassVar

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.eviction import (
    EvictionConfig,
    EvictionMasker,
    EvictionState,
)
from sparse_attention_hub.sparse_attention.maskers.h2o_decode import (
    H2ODecodeState,
    decode_step,
    pad_front,
    truncate_decoded,
)
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.snapkv import window_attention_mean


@dataclasses.dataclass(frozen=True)
class H2OConfig(EvictionConfig):
    """``recent_ratio``: the share of the kept keys that are the most recent context keys
    (H2O's recent window; 0.5 = the paper's even split of heavy and recent);
    ``decode_eviction``: keep evicting while decoding, the cache held at the kept context size
    (H2O's decode-time form; default off: the keys after the context are kept)."""

    default_omitted_fields: ClassVar[tuple[str, ...]] = ("decode_eviction",)

    recent_ratio: float = 0.5
    decode_eviction: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        ratio = self.recent_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise ValueError(
                f"H2OConfig.recent_ratio is the share of the kept keys given to the most recent "
                f"context keys and must lie in [0, 1], got {ratio!r}"
            )
        if not isinstance(self.decode_eviction, bool):
            raise TypeError(
                f"H2OConfig.decode_eviction must be a bool, got {self.decode_eviction!r}"
            )
        if self.decode_eviction and self.head_budget != "uniform":
            raise ValueError(
                f"H2OConfig.decode_eviction needs head_budget 'uniform' (H2O's cache keeps the "
                f"same budget in every head), got head_budget {self.head_budget!r}"
            )


@register_masker(
    "h2o",
    "H2O eviction: heavy hitters by the attention summed over every context query, plus the "
    "most recent keys (recent_ratio of the budget); compression_ratio of the context removed; "
    "decode_eviction: keep evicting while decoding (the cache stays at the kept size).",
)
class H2OMasker(EvictionMasker):
    """Scores context keys by accumulated attention; the recent window scores highest."""

    config_class = H2OConfig
    config: H2OConfig

    def observed_queries(self) -> int:
        """Every context query (a query-aware state keeps them all)."""
        return sys.maxsize

    def context_scores(
        self, inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_context: int
    ) -> torch.Tensor:
        """(B, Hkv, n_context): accumulated attention; the recent window above every key."""
        b, kv_heads = inputs.keys.shape[:2]
        mean = window_attention_mean(inputs, queries, query_start, n_context)  # (B, H, n)
        scores = mean.view(b, kv_heads, inputs.group_size, n_context).mean(2)  # (B, Hkv, n)
        return self._lift_recent(scores, inputs)

    def _lift_recent(self, scores: torch.Tensor, inputs: AttentionInputs) -> torch.Tensor:
        """``scores`` (B, Hkv, n_context) with the recent window above every key (in place)."""
        n_context = scores.shape[-1]
        kept = self.kept_keys(n_context, inputs.layer_idx, inputs.num_layers)
        recent = int(kept * self.config.recent_ratio)
        if recent:
            scores[:, :, n_context - recent :] = scores.amax() + 1
        return scores

    # ------------------------------------------------------------------ decode_eviction

    def _decided(
        self,
        inputs: AttentionInputs,
        queries: torch.Tensor,
        query_start: int,
        state: EvictionState,
    ) -> H2ODecodeState:
        """The decode state of the decision on ``inputs`` (context up to ``state.context_end``)
        observed by ``queries`` (B, H, W, D) from ``query_start``: its keep, and the sums of
        the observed attention of every key of ``inputs`` as the first scores."""
        assert state.context_end is not None
        b, kv_heads, k = inputs.keys.shape[:3]
        n_context = max(0, min(k, state.context_end - inputs.key_offset))
        mean = window_attention_mean(inputs, queries, query_start, k)  # (B, H, K)
        grouped = mean.view(b, kv_heads, inputs.group_size, k).mean(2)  # (B, Hkv, K)
        scores = self._lift_recent(grouped[:, :, :n_context].clone(), inputs)
        keep = self.decide(inputs, queries, query_start, state.context_end, scores=scores)
        sums = grouped * queries.shape[2]  # (B, Hkv, K): column sums
        budget = self.kept_keys(n_context, inputs.layer_idx, inputs.num_layers) if n_context else 0
        return H2ODecodeState(
            keep,
            inputs.key_offset,
            state.context_end,
            state.active_from,
            state.window,
            scores=sums,
            recent=int(budget * self.config.recent_ratio),
            evicted_to=state.context_end,
            decided_at=inputs.sequence_length,
            decided_keep=keep,
            decided_scores=sums,
        )

    def observe_prefill(self, inputs: AttentionInputs) -> EvictionState:
        """The state after the context prefill; with ``decode_eviction`` a decode state."""
        if self._waits(inputs):
            return super().observe_prefill(inputs)
        assert inputs.query_start is not None
        end = inputs.sequence_length
        return self._decided(
            inputs, inputs.queries, inputs.query_start, EvictionState(None, 0, end, end)
        )

    def _waits(self, inputs: AttentionInputs) -> bool:
        """Whether the prefill takes the base path (no decode eviction, or a query-aware
        decision that waits for its question)."""
        decide_now = not self.config.query_aware or self.config.compression_ratio == 0
        return not self.config.decode_eviction or not decide_now

    def build_state(self, inputs: AttentionInputs) -> EvictionState:
        """No observed prefill: the call is the context and its queries the observation."""
        if not self.config.decode_eviction:
            return super().build_state(inputs)
        assert inputs.query_start is not None
        end = inputs.sequence_length
        return self._decided(
            inputs,
            inputs.queries,
            inputs.query_start,
            EvictionState(None, 0, end, inputs.query_start),
        )

    def extend_state(self, state: Any, inputs: AttentionInputs, new_keys: int) -> EvictionState:
        """New keys are kept; with ``decode_eviction`` each call first evicts the keys added
        since the cache last held its budget, then adds its attention to the scores."""
        if not self.config.decode_eviction:
            return super().extend_state(state, inputs, new_keys)
        if state.context_end is None:  # a rollback cut into the context: decide again
            built = self.build_state(inputs)
            assert isinstance(built, H2ODecodeState)
            return pad_front(built, inputs.key_offset - state.first)
        if state.keep is None:  # query-aware: the question's tokens join the observation
            assert state.window is not None and inputs.query_start is not None
            queries = torch.cat([state.window, inputs.queries], dim=2)  # (B, H, W, D)
            start = inputs.query_start - state.window.shape[2]
            active = dataclasses.replace(state, active_from=inputs.sequence_length)
            decided = self._decided(inputs, queries, start, active)
            return pad_front(decided, inputs.key_offset - state.first)
        return decode_step(state, inputs, new_keys)

    def truncate_state(self, state: Any, start: int, stop: int) -> EvictionState:
        """As every eviction state; a decode state cut after the context keeps its decision
        (the decision point restores the decision's keep and scores)."""
        end = state.first + stop
        if (
            not isinstance(state, H2ODecodeState)
            or state.context_end is None
            or end < state.context_end
            or (end == state.context_end and state.window is not None)  # query-aware: redo
        ):
            return super().truncate_state(state, start, stop)
        return truncate_decoded(state, start, stop)
