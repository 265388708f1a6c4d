"""Sliding window: each query attends to the ``window_size`` most recent keys, itself included.

The query at row i sits at absolute position ``query_start + i`` and gets the keys at
positions (query_start + i - window_size, query_start + i] (key index = position -
``key_offset``, so a sliding-window layer gets the same band). window_size=3, Q=3, K=8::

    ...###..
    ....###.
    .....###
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

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus the window band; entries set earlier stay."""
        shape, device = inputs.mask_shape, inputs.keys.device
        n_q, n_k = shape[2], shape[3]
        window = resolve_size(self.config.window_size, inputs.sequence_length)
        if window == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=device))
        assert inputs.query_start is not None  # set by AttentionInputs
        first = inputs.query_start - inputs.key_offset  # key index of the first query
        if n_q == 1 and window >= n_k and first == n_k - 1:
            return previous_mask.merge(Mask.create_full(shape, device=device))
        position = torch.arange(first, first + n_q, device=device).unsqueeze(-1)  # (Q, 1)
        key = torch.arange(n_k, device=device)  # (K,)
        where = (key <= position) & (key > position - window)  # (Q, K)
        return previous_mask.with_active(where)
