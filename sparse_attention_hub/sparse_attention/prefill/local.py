"""``local`` prefill masker: each row computes the ``window_size`` keys behind it, itself
included (positions ``p - window_size + 1 .. p``). Token level: the engine blocks the band
touches are selected and a ``mask_mod`` cuts the band exactly (the band's diagonal edges run
through blocks, so whole blocks would overshoot by up to a block).

Q=K=8, block 4, window_size 3 (``#`` computed)::

    #.......
    ##......
    ###.....
    .###....
    ..###...
    ...###..
    ....###.
    .....###
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.prefill.base import (
    PrefillInputs,
    PrefillMasker,
    PrefillMaskerConfig,
    PrefillSelection,
)
from sparse_attention_hub.sparse_attention.prefill.block_mask import block_bounds, geometry_of
from sparse_attention_hub.sparse_attention.prefill.checks import check_tokens
from sparse_attention_hub.sparse_attention.prefill.registry import register_prefill_masker


@dataclass(frozen=True)
class LocalPrefillConfig(PrefillMaskerConfig):
    """``window_size``: the keys behind each row (itself included), an int >= 1 (tokens)."""

    window_size: int

    def __post_init__(self) -> None:
        check_tokens(self, "window_size", self.window_size)


@register_prefill_masker("local", "A band of the window_size keys behind each row.")
class LocalPrefill(PrefillMasker):
    """Selects the band of ``window_size`` keys behind each row (see the module doc)."""

    config_class = LocalPrefillConfig
    config: LocalPrefillConfig

    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        window = self.config.window_size
        geometry = dataclasses.replace(geometry_of(inputs), sliding_window=window)
        touched, _ = block_bounds(geometry, inputs.queries.device)  # (nq, nk)
        b, h = int(inputs.queries.shape[0]), inputs.num_heads
        blocks = touched.expand(b, h, *touched.shape)  # (B, H, nq, nk)
        offset = torch.tensor(inputs.query_start - inputs.key_offset, device=touched.device)
        width = torch.tensor(window, device=touched.device)

        def mask_mod(
            b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
        ) -> torch.Tensor:
            return q_idx + offset - kv_idx < width

        return PrefillSelection(blocks, inputs.block_size, mask_mod)
