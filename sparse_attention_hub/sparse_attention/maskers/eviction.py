"""``EvictionMasker``: KV-cache eviction decided from the context prefill (kvpress's presses).

An eviction masker *observes* the context prefill: the research attention hands it each
layer's context queries, keys and values (:meth:`EvictionMasker.observe_prefill`) while the
model's own attention computes the prefill, unchanged. From them it scores the context keys
and keeps, per (batch, KV head), the ``n_kept = max(1, int(L * (1 - compression_ratio)))``
best of the L context keys (kvpress's count): ``compression_ratio`` is the fraction of the
context's KV pairs removed. The decision is its state (:class:`EvictionState`), so it follows
the KV cache like every other masker state (the rollback law).

An eviction is permanent for the request: a context key dropped is in no later mask of that
layer and gets no weight in any later softmax. The research attention applies it to the
whole call (:func:`survivors`): the evicted keys are forbidden in the attention mask every
masker of the chain and the softmax read, so ``[snapkv, quest]`` is Quest over SnapKV's
survivors. An eviction masker adds no entry itself; a chain of eviction maskers only is dense
attention over the survivors. Keys after the context (question, generated) are kept, unless
the masker evicts while decoding too (``h2o``'s ``decode_eviction``, :mod:`.h2o_decode`).

``query_aware``:

- False (default, kvpress's query-agnostic setting): decided at the end of the context
  prefill, before any question is known, and reused by every question of the request;
- True: the question's tokens join the observation (decided when the question's tokens run,
  which attend densely); a rollback to the context undoes the decision, so each question
  decides again.

Called without an observed prefill (a direct ``add_mask``, or after a rollback into the
context) the state is decided from the call itself: its keys are the context, its queries the
observation, and its own queries already see only the survivors.

``head_budget: adaptive`` (Ada-KV, see :mod:`.adakv`) spreads a layer's budget over its KV
heads: one top-k across the heads, each head keeping at least ``alpha_safeguard`` of its share.

The realized ratio (evicted context keys / context keys, averaged over batch and heads) is
logged per layer as the micro metric ``eviction_compression_ratio`` when a decision is made.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import ClassVar

import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.adakv import HEAD_BUDGETS, adaptive_keep
from sparse_attention_hub.sparse_attention.maskers.base import MaskerConfig
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker
from sparse_attention_hub.sparse_attention.maskers.topk import top_k_earliest

RATIO_METRIC = "eviction_compression_ratio"
MicroMetricLogger.register_metric(RATIO_METRIC, float)


@dataclasses.dataclass(frozen=True)
class EvictionConfig(MaskerConfig):
    """``compression_ratio`` in [0, 1): fraction of the context's KV pairs removed, per layer
    and KV head; ``query_aware``: the question joins the observation (see module);
    ``head_budget``: ``uniform`` (the same count per KV head) or ``adaptive`` (Ada-KV, with
    ``alpha_safeguard`` of each head's share kept in every head)."""

    compression_ratio: float = 0.5
    query_aware: bool = False
    head_budget: str = "uniform"
    alpha_safeguard: float = 0.2

    def __post_init__(self) -> None:
        ratio = self.compression_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float):
            raise TypeError(
                f"{type(self).__name__}.compression_ratio must be a number in [0, 1), got "
                f"{ratio!r} of type {type(ratio).__name__}"
            )
        if not 0.0 <= float(ratio) < 1.0:
            raise ValueError(
                f"{type(self).__name__}.compression_ratio is the fraction of the context's KV "
                f"pairs removed and must lie in [0, 1), got {ratio}"
            )
        if not isinstance(self.query_aware, bool):
            raise TypeError(
                f"{type(self).__name__}.query_aware must be a bool, got {self.query_aware!r}"
            )
        if self.head_budget not in HEAD_BUDGETS:
            raise ValueError(
                f"{type(self).__name__}.head_budget must be one of {list(HEAD_BUDGETS)}, got "
                f"{self.head_budget!r}"
            )
        alpha = self.alpha_safeguard
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
            raise ValueError(
                f"{type(self).__name__}.alpha_safeguard is the fraction of a head's share every "
                f"head keeps and must lie in [0, 1], got {alpha!r}"
            )


@dataclasses.dataclass(frozen=True)
class EvictionState:
    """One layer's eviction decision.

    Attributes:
        keep: (B, Hkv, n) bool over the keys at absolute positions ``first .. first + n - 1``
            (True = kept); None while a query-aware decision waits for its question.
        first: absolute position of the state's first key.
        context_end: absolute position just after the observed context; None when a
            rollback cut into the context (the next call decides again).
        active_from: absolute query position from which the eviction applies.
        window: (B, H, w, D) the last observed context queries (query-aware only), at
            positions ``context_end - w .. context_end - 1``.
    """

    keep: torch.Tensor | None
    first: int
    context_end: int | None
    active_from: int
    window: torch.Tensor | None = None


def n_kept(context_keys: int, compression_ratio: float) -> int:
    """Keys kept of ``context_keys``: kvpress's ``int(L * (1 - ratio))``, at least 1."""
    if context_keys <= 0:
        return 0
    return max(1, int(context_keys * (1.0 - compression_ratio)))


class EvictionMasker(StatefulMasker[EvictionState]):
    """Base of eviction maskers: subclasses write :meth:`context_scores`."""

    config_class: ClassVar[type[MaskerConfig]] = EvictionConfig
    config: EvictionConfig
    #: The research attention hands the context prefill to maskers with this flag.
    observes_prefill: ClassVar[bool] = True
    #: The research attention forbids the keys this masker's state evicts, for the whole chain.
    restricts_keys: ClassVar[bool] = True
    #: A decision cannot be rebuilt from the keys: a sliding window never cuts its front.
    state_keeps_front: ClassVar[bool] = True

    @abstractmethod
    def context_scores(
        self, inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_context: int
    ) -> torch.Tensor:
        """(B, Hkv, n_context) scores of the first ``n_context`` keys of ``inputs`` (the
        context), higher = keep, from the observed ``queries`` (B, H, W, D) at absolute
        positions ``query_start ..``, which attend causally to the keys of ``inputs``."""

    def kept_keys(
        self, n_context: int, layer_idx: int | None, num_layers: int | None = None
    ) -> int:
        """Keys kept per KV head of ``n_context`` in layer ``layer_idx`` of a model of
        ``num_layers`` layers (PyramidKV varies it by layer)."""
        return n_kept(n_context, float(self.config.compression_ratio))

    def observed_queries(self) -> int:
        """Query rows a query-aware state keeps from the context (SnapKV's window)."""
        return 1

    # ------------------------------------------------------------------ decisions

    def decide(
        self,
        inputs: AttentionInputs,
        queries: torch.Tensor,
        query_start: int,
        context_end: int,
        scores: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, Hkv, n) bool: the context keys of ``inputs`` (absolute positions up to
        ``context_end``) to keep, then True for the keys after the context; ``scores``: the
        :meth:`context_scores` when the caller computed them already."""
        b, kv_heads, k = inputs.keys.shape[:3]
        n_context = max(0, min(k, context_end - inputs.key_offset))
        keep = torch.ones(b, kv_heads, k, dtype=torch.bool, device=inputs.keys.device)
        kept = self.kept_keys(n_context, inputs.layer_idx, inputs.num_layers)
        if 0 < kept < n_context:
            if scores is None:
                scores = self.context_scores(inputs, queries, query_start, n_context)
            scores = scores.float()
            if self.config.head_budget == "adaptive":
                alpha = float(self.config.alpha_safeguard)
                keep[:, :, :n_context] = adaptive_keep(scores, kept, alpha)
            else:
                keep[:, :, :n_context] = top_k_earliest(scores, kept)
        _log_ratio(keep[:, :, :n_context], inputs.layer_idx)
        return keep

    def observe_prefill(self, inputs: AttentionInputs) -> EvictionState:
        """The state after the context prefill call ``inputs`` (its keys end the context)."""
        end = inputs.sequence_length
        assert inputs.query_start is not None  # set in __post_init__
        if self.config.query_aware and self.config.compression_ratio > 0:
            w = min(self.observed_queries(), inputs.queries.shape[2])
            window = inputs.queries[:, :, inputs.queries.shape[2] - w :].clone()
            return EvictionState(None, inputs.key_offset, end, end, window)
        keep = self.decide(inputs, inputs.queries, inputs.query_start, end)
        return EvictionState(keep, inputs.key_offset, end, end)

    # ------------------------------------------------------------------ state rules

    def build_state(self, inputs: AttentionInputs) -> EvictionState:
        """No observed prefill: the call is the context and its queries the observation."""
        assert inputs.query_start is not None
        end = inputs.sequence_length
        keep = self.decide(inputs, inputs.queries, inputs.query_start, end)
        return EvictionState(keep, inputs.key_offset, end, inputs.query_start)

    def extend_state(
        self, state: EvictionState, inputs: AttentionInputs, new_keys: int
    ) -> EvictionState:
        """New keys are kept; a query-aware state decides now, on its window + this call."""
        if state.context_end is None:  # a rollback cut into the context: decide again
            built = self.build_state(inputs)
            return dataclasses.replace(
                built,
                keep=_pad_front(built.keep, inputs.key_offset - state.first),
                first=state.first,
            )
        if state.keep is None:  # query-aware: the question's tokens join the observation
            assert state.window is not None and inputs.query_start is not None
            w = self.observed_queries()
            queries = torch.cat([state.window, inputs.queries], dim=2)  # (B, H, W, D)
            queries = queries[:, :, max(0, queries.shape[2] - w) :]  # the last w
            start = inputs.query_start + inputs.queries.shape[2] - queries.shape[2]
            keep = self.decide(inputs, queries, start, state.context_end)
            return dataclasses.replace(
                state,
                keep=_pad_front(keep, inputs.key_offset - state.first),
                active_from=inputs.sequence_length,
            )
        new = torch.ones(
            *state.keep.shape[:2], new_keys, dtype=torch.bool, device=state.keep.device
        )
        return dataclasses.replace(state, keep=torch.cat([state.keep, new], dim=2))

    def truncate_state(self, state: EvictionState, start: int, stop: int) -> EvictionState:
        """Keys ``[start, stop)``; a cut to the context end undoes a query-aware decision, a
        cut into the context drops the decision (the next call decides again)."""
        first, end = state.first + start, state.first + stop
        if state.context_end is None or end < state.context_end:
            return EvictionState(None, first, None, end)
        if self.config.query_aware and state.window is not None and end == state.context_end:
            return dataclasses.replace(state, keep=None, first=first, active_from=end)
        keep = None if state.keep is None else state.keep[:, :, start:stop]
        return dataclasses.replace(state, keep=keep, first=first)

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` unchanged (a copy): the research attention removes the evicted
        keys from the whole chain (:func:`survivors`); an eviction adds no entry."""
        return previous_mask.merge(
            Mask.create_empty(previous_mask.shape, device=inputs.keys.device)
        )


def _pad_front(keep: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """(B, Hkv, n + K): ``n`` kept keys (the state's keys a sliding window dropped from this
    call) before ``keep`` (B, Hkv, K), so the state starts where its entry does."""
    if keep is None or n <= 0:
        return keep
    front = torch.ones(*keep.shape[:2], n, dtype=torch.bool, device=keep.device)
    return torch.cat([front, keep], dim=2)


def _log_ratio(kept: torch.Tensor, layer_idx: int | None) -> None:
    """Log the realized ratio of a (B, Hkv, n) context decision (only when enabled)."""
    logger = MicroMetricLogger()
    if logger.is_metric_enabled(RATIO_METRIC) and kept.numel():
        logger.log(RATIO_METRIC, 1.0 - kept.float().mean(), {"layer_idx": layer_idx})


def survivors(inputs: AttentionInputs, states: list[EvictionState]) -> torch.Tensor | None:
    """Bool, broadcastable to (B, H, Q, K): the keys the eviction ``states`` (each covering
    the call's keys, and maybe keys before them that a sliding window dropped) leave to each query; None when nothing is evicted for this call.

    A state evicts for the queries at or after its ``active_from`` only (a query-aware
    question attends densely). No device read: the choice depends on host ints only."""
    assert inputs.query_start is not None
    q_len = inputs.queries.shape[2]
    allowed: torch.Tensor | None = None
    for state in states:
        if state.keep is None or inputs.query_start + q_len <= state.active_from:
            continue
        own = state.keep[:, :, inputs.key_offset - state.first :]  # (B, Hkv, K)
        keep = inputs.per_query_head(own)[:, :, None, :]  # (B, H, 1, K)
        if inputs.query_start < state.active_from:  # the rows before active_from keep all
            early = inputs.query_positions() < state.active_from  # (Q,)
            keep = keep | early[None, None, :, None]  # (B, H, Q, K)
        allowed = keep if allowed is None else allowed & keep
    return allowed


def restrict_attention_mask(
    attention_mask: torch.Tensor | None, allowed: torch.Tensor, n_keys: int
) -> torch.Tensor:
    """``attention_mask`` (None, bool or additive, cut to ``n_keys``) with the keys outside
    ``allowed`` forbidden: bool when it was bool or None, additive (-inf) otherwise."""
    if attention_mask is None:
        return allowed
    mask = attention_mask[..., :n_keys]
    if mask.dtype == torch.bool:
        return mask & allowed
    return mask.masked_fill(~allowed, float("-inf"))
