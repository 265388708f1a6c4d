"""Oracle top-p: the smallest set of keys whose exact softmax mass reaches ``top_p``.

Keys already active count towards the mass; then inactive keys are added from the most to the
least probable until the mass reaches ``top_p``. ``top_p=0`` adds nothing, ``top_p=1`` adds
every key with non-zero probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.attention import guarded_softmax
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    Masker,
    MaskerConfig,
    check_probability,
)
from sparse_attention_hub.sparse_attention.maskers.device_paths import host_reads_free
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker


@dataclass(frozen=True)
class OracleTopPMaskerConfig(MaskerConfig):
    """``top_p``: the softmax mass to reach, in [0, 1]."""

    top_p: float

    def __post_init__(self) -> None:
        check_probability(self, "top_p", self.top_p, low_open=False)


@register_masker("oracle_top_p", "The fewest keys whose exact softmax mass reaches top_p.")
class OracleTopPMasker(Masker):
    """Adds, per row, the most probable inactive keys until the row's mass reaches top_p."""

    config_class = OracleTopPMaskerConfig
    config: OracleTopPMaskerConfig

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus the minimal set of keys reaching ``top_p`` mass per row."""
        shape = inputs.mask_shape
        top_p = float(self.config.top_p)
        if previous_mask.is_full_flag or top_p == 0.0 or shape[3] == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=inputs.keys.device))
        probs = guarded_softmax(inputs.exact_scores(), None, in_place=False)  # (B, H, Q, K)
        active = previous_mask.active()
        if active is None:
            reached = torch.zeros((*shape[:3], 1), dtype=probs.dtype, device=probs.device)
        else:
            # Mass of the active keys without a (B, H, Q, K) temporary: total minus the rest.
            total = probs.sum(dim=-1, keepdim=True)  # (B, H, Q, 1)
            probs = probs.masked_fill_(active, 0.0)
            del active
            reached = total.sub_(probs.sum(dim=-1, keepdim=True)).clamp_(min=0.0)
        order, take = _smallest_set(probs, reached, top_p)
        del probs
        return previous_mask.with_active_indices(order, take)


def _smallest_set(
    probs: torch.Tensor, reached: torch.Tensor, top_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of (B, H, Q, K) ``probs``, the most probable keys until ``reached`` plus their
    mass reaches ``top_p``: (indices (B, H, Q, k), take (B, H, Q, k) bool).

    A decode step (one query row per head) on an accelerator sorts each row's keys once: no
    value is read to the host. A call with several query rows, and a decode step on a CPU
    (where a host read waits for nothing, ``device_paths``), makes a partial selection instead:
    ``topk`` of a growing k (K / 32 first, then x4) until every row has reached ``top_p`` or
    has nothing left with non-zero probability, so the int64 indices cover k keys per row, not
    K, unless the rows are flat; whether to grow k is read to the host once per round.
    """
    n_keys = probs.shape[-1]
    one_pass = probs.shape[-2] == 1 and not host_reads_free(probs)
    k = n_keys if one_pass else min(n_keys, max(64, -(-n_keys // 32)))
    while True:
        ranked, order = torch.topk(probs, k, dim=-1, sorted=True)  # (B, H, Q, k)
        before = torch.cumsum(ranked, dim=-1).sub_(ranked).add_(reached)  # mass before each
        take = (before < top_p) & (ranked > 0)
        last = ranked[..., -1:]
        done = (before[..., -1:] + last >= top_p) | (last <= 0)  # (B, H, Q, 1)
        if k == n_keys or bool(done.all()):  # a decode step never reads ``done``
            return order, take
        del ranked, order, before, take
        k = min(n_keys, 4 * k)
