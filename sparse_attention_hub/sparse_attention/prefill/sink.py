"""``sink`` prefill masker: every row computes the first ``sink_size`` keys (StreamingLLM's
attention sinks), by absolute position (a sliding-window layer whose cache dropped them has
none). Token level: where ``sink_size`` does not end on a block boundary, a ``mask_mod`` cuts
the last sink block at the boundary.

Q=K=8, block 4, sink_size 2 (``#`` computed by the sink, ``.`` not; causal cut)::

    #.......
    ##......
    ##......
    ##......
    ##......
    ##......
    ##......
    ##......
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.prefill.base import (
    PrefillInputs,
    PrefillMasker,
    PrefillMaskerConfig,
    PrefillSelection,
)
from sparse_attention_hub.sparse_attention.prefill.checks import check_tokens
from sparse_attention_hub.sparse_attention.prefill.registry import register_prefill_masker


@dataclass(frozen=True)
class SinkPrefillConfig(PrefillMaskerConfig):
    """``sink_size``: the first keys every row computes, an int >= 1 (tokens)."""

    sink_size: int

    def __post_init__(self) -> None:
        check_tokens(self, "sink_size", self.sink_size)


@register_prefill_masker("sink", "The first sink_size keys for every row (attention sinks).")
class SinkPrefill(PrefillMasker):
    """Selects the key blocks holding the first ``sink_size`` positions (see the module doc)."""

    config_class = SinkPrefillConfig
    config: SinkPrefillConfig

    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        bs = inputs.block_size
        nq, nk = inputs.num_blocks(bs)
        n_keys = max(0, min(inputs.key_length, self.config.sink_size - inputs.key_offset))
        device = inputs.queries.device
        key_blocks = torch.arange(nk, device=device) * bs < n_keys  # (nk,)
        b, h = int(inputs.queries.shape[0]), inputs.num_heads
        blocks = key_blocks.expand(b, h, nq, nk)  # (B, H, nq, nk)
        if n_keys % bs == 0:
            return PrefillSelection(blocks, bs)
        limit = torch.tensor(n_keys, device=device)

        def mask_mod(
            b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
        ) -> torch.Tensor:
            return kv_idx < limit

        return PrefillSelection(blocks, bs, mask_mod)
