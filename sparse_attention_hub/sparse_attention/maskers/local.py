"""Sliding window: each query attends to the ``window_size`` most recent keys, itself included.

The query at row i sits at absolute position K - Q + i (the queries are the last Q tokens),
so it gets keys (K - Q + i - window_size, K - Q + i]. window_size=3, Q=3, K=8::

    ...###..
    ....###.
    .....###
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    Masker,
    MaskerConfig,
    Size,
    check_size,
    resolve_size,
)
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker


@dataclass(frozen=True)
class LocalMaskerConfig(MaskerConfig):
    """``window_size``: int tokens or float fraction of K."""

    window_size: Size

    def __post_init__(self) -> None:
        check_size(self, "window_size", self.window_size)


@register_masker("local", "The window_size most recent keys up to each query (sliding window).")
class LocalMasker(Masker):
    """Adds a causal band of ``window_size`` keys ending at each query's own position."""

    config_class = LocalMaskerConfig
    config: LocalMaskerConfig

    def add_mask(
        self,
        keys: torch.Tensor,
        queries: torch.Tensor,
        values: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None,
        dropout: float,
        sparse_meta_data: dict[Any, Any],
        previous_mask: Mask,
        **kwargs: Any,
    ) -> Mask:
        """``previous_mask`` plus the window band; entries set earlier stay."""
        shape = self.mask_shape(queries, keys)
        n_q, n_k = shape[2], shape[3]
        window = resolve_size(self.config.window_size, n_k)
        if window == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=keys.device))
        if n_q == 1 and window >= n_k:
            return previous_mask.merge(Mask.create_full(shape, device=keys.device))
        position = torch.arange(n_k - n_q, n_k, device=keys.device).unsqueeze(-1)  # (Q, 1)
        key = torch.arange(n_k, device=keys.device)  # (K,)
        where = (key <= position) & (key > position - window)  # (Q, K)
        return previous_mask.with_active(where)
