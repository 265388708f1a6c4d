"""Attention sinks (StreamingLLM): every query attends to the first ``sink_size`` keys.

sink_size=2, Q=3, K=8
##......
##......
##......
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
class SinkMaskerConfig(MaskerConfig):
    """``sink_size``: int tokens or float fraction of K."""

    sink_size: Size

    def __post_init__(self) -> None:
        check_size(self, "sink_size", self.sink_size)


@register_masker("sink", "The first sink_size keys (StreamingLLM attention sinks).")
class SinkMasker(Masker):
    """Adds the first ``sink_size`` keys of every row."""

    config_class = SinkMaskerConfig
    config: SinkMaskerConfig

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
        """``previous_mask`` with keys [0, sink_size) active in every (B, H, Q) row."""
        shape = self.mask_shape(queries, keys)
        size = resolve_size(self.config.sink_size, shape[3])
        if size >= shape[3]:
            return previous_mask.merge(Mask.create_full(shape, device=keys.device))
        if size == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=keys.device))
        where = torch.arange(shape[3], device=keys.device) < size  # (K,)
        return previous_mask.with_active(where)
