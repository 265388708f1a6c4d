"""The sparse prefill of one layer's call: the prefill maskers' selections -> one BlockMask ->
``flex_attention`` (``engine``), and the prefill metrics.

:class:`SparsePrefill` is what ``ResearchAttention.prefill_attention`` runs. A call's
``attention_mask`` is not read: causality and the sliding window come from the positions
(``query_start``, the key offset) and the ``sliding_window`` argument, so no (Q, K) mask is
needed (batch rows without padding: the adapter's attention name refuses a padded batch). On a dense layer every causal block is computed (the
model's dense attention, through the same engine).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger
from sparse_attention_hub.sparse_attention.prefill.base import (
    PrefillInputs,
    PrefillMasker,
    PrefillSelection,
)
from sparse_attention_hub.sparse_attention.prefill.block_mask import (
    build_block_mask,
    geometry_of,
)
from sparse_attention_hub.sparse_attention.prefill.engine import (
    bucket_length,
    flex_prefill,
    use_compiled,
)
from sparse_attention_hub.sparse_attention.prefill.metrics import (
    PREFILL_DENSITY_METRIC,
    PREFILL_OUTPUT_ERROR_METRIC,
    computed_pairs,
    log_prefill_metrics,
    output_error,
)


def prefill_inputs(
    query: torch.Tensor,
    key: torch.Tensor,
    scaling: float | None,
    kwargs: dict[str, Any],
    block_size: int,
    budget_bytes: int,
) -> PrefillInputs:
    """The :class:`PrefillInputs` of a call: query (B, H, Q, D), key (B, Hkv, K, D) and the
    attention-interface kwargs (``query_start``, ``layer_idx``, ``sliding_window``,
    ``softcap``). The keys end at the last query (a causal cache)."""
    q_len, k_len = int(query.shape[2]), int(key.shape[2])
    query_start = kwargs.get("query_start")
    if query_start is None:
        query_start = k_len - q_len
    window = kwargs.get("sliding_window")
    softcap = kwargs.get("softcap")
    return PrefillInputs(
        queries=query,
        keys=key,
        scaling=float(query.shape[-1] ** -0.5 if scaling is None else scaling),
        query_start=int(query_start),
        key_offset=max(0, int(query_start) + q_len - k_len),
        layer_idx=kwargs.get("layer_idx"),
        sliding_window=None if window is None else int(window),
        budget_bytes=budget_bytes,
        block_size=block_size,
        softcap=None if softcap is None else float(softcap),
    )


def all_blocks(inputs: PrefillInputs) -> PrefillSelection:
    """Every (query block, key block) pair at the engine block size: dense attention."""
    nq, nk = inputs.num_blocks(inputs.block_size)
    blocks = torch.ones(1, 1, nq, nk, dtype=torch.bool, device=inputs.queries.device)
    b, h = int(inputs.queries.shape[0]), inputs.num_heads
    return PrefillSelection(blocks.expand(b, h, nq, nk), inputs.block_size)


class SparsePrefill:
    """The sparse prefill of a config's prefill maskers at one engine block size."""

    def __init__(
        self, maskers: Sequence[PrefillMasker], block_size: int, budget_bytes: int
    ) -> None:
        self.maskers = list(maskers)
        self.block_size = block_size
        self.budget_bytes = budget_bytes
        self.pad_eager = False  # pad eager calls to the shape buckets too (tests)

    def attention(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        scaling: float | None,
        kwargs: dict[str, Any],
        dense: bool = False,
    ) -> torch.Tensor:
        """(B, Q, H, Dv): the call's attention on the selected pairs (all causal pairs when
        ``dense`` or without maskers). ``kwargs``: query_start, layer_idx, sliding_window,
        softcap, s_aux / sinks (per-head sink logits)."""
        sinks = kwargs.get("s_aux")
        sinks = kwargs.get("sinks") if sinks is None else sinks
        compiled = use_compiled(query.device, sinks is not None)
        inputs = prefill_inputs(query, key, scaling, kwargs, self.block_size, self.budget_bytes)
        if compiled or self.pad_eager:  # a few kernel shapes across lengths
            bs = self.block_size
            padded = (bucket_length(inputs.query_length, bs), bucket_length(inputs.key_length, bs))
            inputs = dataclasses.replace(inputs, padded_lengths=padded)
        if dense or not self.maskers:
            selections = [all_blocks(inputs)]
        else:
            selections = [masker.select(inputs) for masker in self.maskers]
        geometry = geometry_of(inputs)
        block_mask, full, partial = build_block_mask(
            selections, geometry, query.device, inputs.padded_lengths
        )
        out = flex_prefill(
            query, key, value, block_mask, inputs.scaling, inputs.softcap, sinks, compiled
        )
        logger = MicroMetricLogger()
        density = error = None
        if logger.is_metric_enabled(PREFILL_DENSITY_METRIC):
            assert block_mask.mask_mod is not None
            density = computed_pairs(
                geometry, full, partial, block_mask.mask_mod, self.budget_bytes
            )
        if logger.is_metric_enabled(PREFILL_OUTPUT_ERROR_METRIC):
            error = output_error(
                out, query, key, value, geometry, inputs.scaling, inputs.softcap, sinks
            )
        if density is not None or error is not None:
            log_prefill_metrics(inputs.layer_idx, density, error)
        return out
