"""Attention sinks (StreamingLLM): every query attends to the first ``sink_size`` tokens.

The sinks are the tokens at absolute positions 0 .. sink_size - 1; on a sliding-window layer
that no longer caches them (``inputs.key_offset >= sink_size``) the masker adds nothing.

sink_size=2, Q=3, K=8
##......
##......
##......
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
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

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` with the keys at absolute positions [0, sink_size) active in every
        (B, H, Q) row (on a sliding-window layer they may no longer be cached: then none)."""
        shape, offset, device = inputs.mask_shape, inputs.key_offset, inputs.keys.device
        size = resolve_size(self.config.sink_size, inputs.sequence_length)
        if offset == 0 and size >= shape[3]:
            return previous_mask.merge(Mask.create_full(shape, device=device))
        if size <= offset:
            return previous_mask.merge(Mask.create_empty(shape, device=device))
        where = torch.arange(shape[3], device=device) < size - offset  # (K,)
        return previous_mask.with_active(where)
