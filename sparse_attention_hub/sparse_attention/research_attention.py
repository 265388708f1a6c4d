"""``ResearchAttention``: apply a chain of maskers, then masked attention.

    cfg = ResearchAttentionConfig([SinkMaskerConfig(128), LocalMaskerConfig(512),
                                   OracleTopKConfig(0.1)])
    attn = ResearchAttention.create_from_config(cfg)
    out, _ = attn.custom_attention(None, q, k, v, None, scaling=None, dropout=0.0, layer_idx=0)

``custom_attention`` has transformers' attention-interface signature; it packs its arguments
into one :class:`~.inputs.AttentionInputs` that every masker receives. The research attention
owns the per-layer state of stateful maskers for the current request (:attr:`states`); the
adapter starts a new one per request (:meth:`new_request`) and truncates it together with the
KV cache. With no stateful masker nothing of this runs.

An empty masker list is dense attention computed through this same path: the control arm of
a study. Metrics (through the MicroMetricLogger, ``layer_idx`` in the metadata), computed only
when enabled:

- ``research_attention_density``: active mask entries / all entries (0-dim tensor);
- ``research_attention_output_error``: ||out - dense|| / ||dense|| (relative L2); this costs a
  second, dense attention pass and is never computed otherwise.

Eviction (``maskers.eviction``): maskers with ``observes_prefill`` get each layer's context
prefill (:meth:`ResearchAttention.observe_prefill`, called by the adapter while the model's
own attention computes it) and keep their decision as state; on every later call the keys a
``restricts_keys`` masker's state evicted are forbidden in the attention mask all maskers and
the softmax read, and are in no mask (:meth:`ResearchAttention.build_mask`).

To see the masks a call used (to compare with another implementation without building them a
second time, which would draw new random numbers for sampling maskers), register a hook:
``with attn.record_masks() as masks: ...`` collects ``(layer_idx, Mask)`` pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger
from sparse_attention_hub.sparse_attention.attention import ScoreCache, masked_attention
from sparse_attention_hub.sparse_attention.attention_arguments import (
    check_attention_kwargs,
    dense_reference_output,
    relative_l2_error,
)
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs, model_layers
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.masker_state import MaskerStates
from sparse_attention_hub.sparse_attention.maskers import (
    Masker,
    check_one_sampling,
    create_masker,
)
from sparse_attention_hub.sparse_attention.maskers.eviction import (
    restrict_attention_mask,
    survivors,
)
from sparse_attention_hub.sparse_attention.prefill.attention import SparsePrefill
from sparse_attention_hub.sparse_attention.prefill.registry import create_prefill_masker
from sparse_attention_hub.sparse_attention.prefill.research import PrefillAttentionMixin
from sparse_attention_hub.sparse_attention.research_config import (
    DEFAULT_SCORE_BUDGET_BYTES,
    ResearchAttentionConfig,
    check_dense_layers,
    check_score_budget,
)

DENSITY_METRIC = "research_attention_density"
OUTPUT_ERROR_METRIC = "research_attention_output_error"
MicroMetricLogger.register_metric(DENSITY_METRIC, float)
MicroMetricLogger.register_metric(OUTPUT_ERROR_METRIC, float)

#: Bytes one block allocates per (B, H, block, K) entry at its peak on the shared path: the
#: fp32 scores (4), one fp32 temporary of their size (a top-k's masked copy of the scores, then
#: the logits: 4), the bool mask and a top-k's picks (about 2). Half the score budget goes to
#: these, the other half to the fp32 chunk of K or V (``kv_chunk_bytes``), so a block's peak
#: stays near the budget: at 128 MiB, 6 query rows at 32 heads and K = 32k, 1 at K = 128k.
BLOCK_BYTES_PER_ENTRY = 10

#: ``hook(inputs, mask)``, called with the mask of every ``custom_attention`` call.
MaskHook = Callable[[AttentionInputs, Mask], None]

__all__ = [
    "DENSITY_METRIC",
    "OUTPUT_ERROR_METRIC",
    "MaskHook",
    "ResearchAttention",
    "ResearchAttentionConfig",
    "dense_reference_output",
    "relative_l2_error",
]


@dataclasses.dataclass
class _HookHandle:
    """Removes a mask hook again (``handle.remove()``)."""

    hooks: list[MaskHook]
    hook: MaskHook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


class ResearchAttention(PrefillAttentionMixin):
    """Simulated sparse attention: maskers build a mask, masked attention applies it.

    Attributes:
        maskers: the masker chain, in order.
        dense_layers: layer indices that get the full mask (dense attention, same path).
        states: the per-layer masker states of the current request.
        score_budget_bytes: the memory one block of queries may allocate: half for its
            (B, H, block, K) tensors (:data:`BLOCK_BYTES_PER_ENTRY` bytes per entry), half for
            the fp32 chunk of bf16/fp16 K or V. The queries of a call run in blocks that fit
            it; the state of a stateful masker advances once per call, on the call's keys,
            before the first block, and every block reads it.
        prefill: the sparse context prefill (``prefill_attention``; no maskers: dense).
    """

    def __init__(
        self,
        maskers: Sequence[Masker],
        score_budget_bytes: int = DEFAULT_SCORE_BUDGET_BYTES,
        dense_layers: Sequence[int] = (),
        prefill: SparsePrefill | None = None,
    ) -> None:
        check_score_budget(score_budget_bytes)
        check_one_sampling([type(m) for m in maskers])
        self.score_budget_bytes = score_budget_bytes
        self.maskers = list(maskers)
        self.dense_layers = frozenset(check_dense_layers(list(dense_layers)))
        self.states = MaskerStates()
        self._stateful = any(m.is_stateful for m in self.maskers)
        self._observers = [m for m in self.maskers if m.observes_prefill]
        self._mask_hooks: list[MaskHook] = []
        self.prefill = prefill or SparsePrefill([], 128, score_budget_bytes)

    @classmethod
    def create_from_config(cls, config: ResearchAttentionConfig) -> ResearchAttention:
        """Build the maskers of ``config`` (TypeError for anything but a ResearchAttentionConfig
        holding registered masker configs)."""
        if not isinstance(config, ResearchAttentionConfig):
            raise TypeError(
                f"create_from_config needs a ResearchAttentionConfig, got {type(config).__name__}"
            )
        return cls(
            [create_masker(c) for c in config.masker_configs],
            score_budget_bytes=config.score_budget_bytes,
            dense_layers=config.dense_layers,
            prefill=SparsePrefill(
                [create_prefill_masker(c) for c in config.prefill_masker_configs],
                config.prefill_block_size,
                config.score_budget_bytes,
            ),
        )

    def new_request(self) -> MaskerStates:
        """Fresh masker states for a new request (a new KV cache); returns them."""
        self.states = MaskerStates()
        return self.states

    def register_mask_hook(self, hook: MaskHook) -> _HookHandle:
        """Call ``hook(inputs, mask)`` with the mask of every later call; ``.remove()`` it."""
        self._mask_hooks.append(hook)
        return _HookHandle(self._mask_hooks, hook)

    @contextmanager
    def record_masks(self) -> Iterator[list[tuple[int | None, Mask]]]:
        """Collect ``(layer_idx, mask)`` of every call inside the ``with`` block."""
        masks: list[tuple[int | None, Mask]] = []
        handle = self.register_mask_hook(
            lambda inputs, mask: masks.append((inputs.layer_idx, mask))
        )
        try:
            yield masks
        finally:
            handle.remove()

    def build_mask(self, inputs: AttentionInputs, states: dict[int, Any] | None = None) -> Mask:
        """The (B, H, Q, K) mask of the masker chain, starting from an empty mask.

        With no maskers, and on a layer in ``dense_layers``, it is the full mask (dense
        attention). Stateful maskers get their state for this layer in ``inputs.state``: from
        ``states`` (:meth:`advance_states` of the whole call, for a block of its queries), or
        advanced on ``inputs`` here when None. Keys an eviction removed are in no mask.
        """
        return self._build(inputs, states)[1]

    def _build(
        self, inputs: AttentionInputs, states: dict[int, Any] | None
    ) -> tuple[AttentionInputs, Mask]:
        """(the inputs the chain and the softmax read, the mask): see :meth:`build_mask`."""
        shape = inputs.mask_shape
        if not self.maskers or inputs.layer_idx in self.dense_layers:
            return inputs, Mask.create_full(shape, device=inputs.queries.device)
        if states is None:
            states = self.advance_states(inputs)
        inputs, allowed = self._evicted(inputs, states)
        mask = Mask.create_empty(shape, device=inputs.queries.device)
        if all(m.restricts_keys for m in self.maskers):  # eviction only: dense over survivors
            mask = Mask.create_full(shape, device=inputs.queries.device)
        for i, masker in enumerate(self.maskers):
            masker_inputs = inputs
            if i in states:
                masker_inputs = dataclasses.replace(inputs, state=states[i])
            mask = masker.add_mask(masker_inputs, mask)
        return inputs, mask if allowed is None else mask.restricted(allowed)

    # ------------------------------------------------------------------ eviction
    @property
    def observes_prefill(self) -> bool:
        """Whether a masker observes the context prefill (:meth:`observe_prefill`)."""
        return bool(self._observers)

    def _evicted(
        self, inputs: AttentionInputs, states: dict[int, Any]
    ) -> tuple[AttentionInputs, torch.Tensor | None]:
        """``inputs`` with the keys the eviction states remove forbidden in their attention
        mask (a new score cache), and those survivors (B, H, Q|1, K) bool; None: no eviction."""
        evicting = [states[i] for i, m in enumerate(self.maskers) if m.restricts_keys]
        allowed = survivors(inputs, evicting) if evicting else None
        if allowed is None:
            return inputs, None
        restricted = restrict_attention_mask(inputs.attention_mask, allowed, inputs.keys.shape[2])
        return dataclasses.replace(
            inputs, attention_mask=restricted, score_cache=ScoreCache()
        ), allowed

    def observe_prefill(
        self,
        module: torch.nn.Module | None,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        """Hand one layer's context-prefill call (the attention-interface arguments: query
        (B, H, Q, D), key, value (B, Hkv, K, D), ...) to the observing maskers; each one's
        returned state becomes its state for the keys of the call. Computes no attention."""
        kwargs.pop("output_attentions", None)
        inputs = self._inputs(module, query, key, value, attention_mask, scaling, dropout, kwargs)
        layer_idx = inputs.layer_idx
        if not self._observers or layer_idx in self.dense_layers:
            return
        for masker in self._observers:
            state = masker.observe_prefill(inputs)  # type: ignore[attr-defined]
            self.states.put(
                masker,  # type: ignore[arg-type]
                layer_idx,
                state,
                inputs.key_offset,
                inputs.sequence_length,
            )

    def _inputs(
        self,
        module: torch.nn.Module | None,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None,
        dropout: float,
        kwargs: dict[str, Any],
    ) -> AttentionInputs:
        """One call's :class:`AttentionInputs`; pops ``layer_idx`` (else ``module.layer_idx``)
        and ``query_start`` from ``kwargs``, whose rest become the extras."""
        layer_idx = kwargs.pop("layer_idx", None)
        if layer_idx is None:
            layer_idx = getattr(module, "layer_idx", None)
        query_start = kwargs.pop("query_start", None)
        return AttentionInputs(
            query,
            key,
            value,
            attention_mask,
            scaling,
            dropout,
            layer_idx,
            query_start=query_start,
            extras=kwargs,
            num_layers=model_layers(module),
            kv_chunk_bytes=self.score_budget_bytes // 2,
        )

    def advance_states(self, inputs: AttentionInputs) -> dict[int, Any]:
        """The state of every stateful masker (by its index in the chain) for this call: built,
        extended or cut once, on the call's keys and first query (none on a dense layer)."""
        if not self._stateful or inputs.layer_idx in self.dense_layers:
            return {}
        return {
            i: self.states.read(masker, inputs)  # type: ignore[arg-type]
            for i, masker in enumerate(self.maskers)
            if masker.is_stateful
        }

    def custom_attention(
        self,
        module: torch.nn.Module | None,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sparse attention with transformers' attention-interface signature.

        Args:
            module: the attention module or None.
            query: (B, H, Q, D); key, value: (B, Hkv, K, D).
            attention_mask: None, bool (True = may attend) or additive, broadcastable to
                (B, H, Q, K).
            scaling: score scale (None = 1 / sqrt(D)).
            dropout: attention dropout probability (0 in evaluation).
            kwargs: ``layer_idx`` (else ``module.layer_idx``), ``query_start`` (absolute
                position of the first query; else the first of ``position_ids``, which waits
                for the device, so the adapter passes it), ``output_attentions`` (return the
                weights), ``s_aux`` / ``sinks`` (per-head sink logits) and other model extras,
                kept in ``AttentionInputs.extras``.

        Returns:
            (output (B, Q, H, D) in the query dtype, weights (B, H, Q, K) or None).
        """
        return_weights = bool(kwargs.pop("output_attentions", False))
        check_attention_kwargs(kwargs, module)  # layer_idx and query_start are handled
        positions = kwargs.get("position_ids")
        if kwargs.get("query_start") is None and isinstance(positions, torch.Tensor):
            # reading the first position waits for the device: callers pass query_start
            kwargs["query_start"] = int(positions.reshape(-1)[0]) if positions.numel() else None
        inputs = self._inputs(module, query, key, value, attention_mask, scaling, dropout, kwargs)
        states = self.advance_states(inputs)  # once per call: every block sees the same keys
        q_len = query.shape[2]
        block = self.query_block_size(inputs)
        if block >= q_len:
            return self._attend(inputs, return_weights, states)
        outs: list[torch.Tensor] = []
        all_weights: list[torch.Tensor] = []
        for start in range(0, q_len, block):
            out, weights = self._attend(
                inputs.query_block(start, min(start + block, q_len)), return_weights, states
            )
            outs.append(out)  # (B, block, H, Dv)
            if weights is not None:
                all_weights.append(weights)  # (B, H, block, K)
        out = torch.cat(outs, dim=1)  # (B, Q, H, Dv)
        return out, torch.cat(all_weights, dim=2) if return_weights else None

    def query_block_size(self, inputs: AttentionInputs) -> int:
        """Query rows per block: the block's (B, H, rows, K) tensors, at
        :data:`BLOCK_BYTES_PER_ENTRY` bytes per entry, fit half the score budget (at least 1)."""
        b, h, _, k = inputs.mask_shape
        per_row = max(1, b * h * k * BLOCK_BYTES_PER_ENTRY)
        return max(1, (self.score_budget_bytes // 2) // per_row)

    def _attend(
        self, inputs: AttentionInputs, return_weights: bool, states: dict[int, Any]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mask and attention of one block of queries: (B, Q, H, Dv), weights or None."""
        inputs, mask = self._build(inputs, states)
        for hook in self._mask_hooks:
            hook(inputs, mask)
        out, weights = masked_attention(
            inputs.queries,
            inputs.keys,
            inputs.values,
            mask,
            sinks=inputs.sinks,
            dropout=inputs.dropout,
            return_weights=return_weights,
            scores=inputs.exact_scores(),
            chunk_bytes=inputs.kv_chunk_bytes,
        )
        self._log_metrics(mask, out, inputs)
        return out, weights

    @staticmethod
    def _log_metrics(mask: Mask, out: torch.Tensor, inputs: AttentionInputs) -> None:
        """Log density and output error, each only when enabled (the error costs a dense pass)."""
        logger = MicroMetricLogger()
        metadata = {"layer_idx": inputs.layer_idx}
        if logger.is_metric_enabled(DENSITY_METRIC):
            logger.log(DENSITY_METRIC, mask.density(), metadata)
        if logger.is_metric_enabled(OUTPUT_ERROR_METRIC):
            dense = dense_reference_output(
                inputs.queries, inputs.keys, inputs.values, inputs.exact_scores(), inputs.sinks
            )
            logger.log(OUTPUT_ERROR_METRIC, relative_l2_error(out, dense), dict(metadata))

    def __repr__(self) -> str:
        return f"ResearchAttention({self.maskers})"
