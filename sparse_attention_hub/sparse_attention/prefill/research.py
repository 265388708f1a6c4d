"""``ResearchAttention.prefill_attention``: the sparse context prefill of a research attention
(a mixin, so that ``research_attention.py`` stays small)."""

from __future__ import annotations

from typing import Any

import torch

from sparse_attention_hub.sparse_attention.attention_arguments import check_attention_kwargs
from sparse_attention_hub.sparse_attention.prefill.attention import SparsePrefill


class PrefillAttentionMixin:
    """Adds :meth:`prefill_attention` to a research attention that has ``prefill`` (a
    :class:`SparsePrefill`), ``dense_layers``, ``observes_prefill`` and ``observe_prefill``."""

    prefill: SparsePrefill
    dense_layers: frozenset[int]

    @property
    def sparse_prefill(self) -> bool:
        """Whether the config has prefill maskers (else the model's own prefill runs)."""
        return bool(self.prefill.maskers)

    def prefill_attention(
        self,
        module: torch.nn.Module | None,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None = None,
        dropout: float = 0.0,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, None]:
        """The context prefill of one layer with transformers' attention-interface signature:
        query (B, H, Q, D), key, value (B, Hkv, K, D) -> (output (B, Q, H, Dv), None).

        Maskers that observe the prefill (eviction) observe the call first. The attention
        runs on the pairs the prefill maskers select (every causal pair on a dense layer),
        through FlexAttention (``prefill.engine``); ``attention_mask`` is not read (causality
        and the window come from ``query_start`` and ``sliding_window``)."""
        kwargs.pop("output_attentions", None)
        check_attention_kwargs(kwargs, module)
        if kwargs.get("layer_idx") is None:
            kwargs["layer_idx"] = getattr(module, "layer_idx", None)
        if self.observes_prefill:  # type: ignore[attr-defined]
            self.observe_prefill(  # type: ignore[attr-defined]
                module, query, key, value, attention_mask, scaling, dropout, **dict(kwargs)
            )
        dense = kwargs["layer_idx"] in self.dense_layers
        out = self.prefill.attention(query, key, value, scaling, kwargs, dense=dense)
        return out, None
