"""Random sampling: each inactive key is included with probability ``sampling_rate``.

Keys the attention mask forbids (False, -inf or the dtype's minimum) are never drawn.

Sampled keys carry p = sampling_rate, so masked attention weighs them by 1 / sampling_rate and
the sums over those keys are unbiased estimates of the dense sums. Draws use torch's global
generator (seed it with ``torch.manual_seed`` for reproducible runs).

    previous   draws (rate 0.5)   result
    ##....#    ..+..+.            ##+..+#
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    Masker,
    MaskerConfig,
    check_probability,
)
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker


@dataclass(frozen=True)
class RandomSamplingMaskerConfig(MaskerConfig):
    """``sampling_rate``: inclusion probability of each inactive key, in (0, 1]."""

    sampling_rate: float

    def __post_init__(self) -> None:
        check_probability(self, "sampling_rate", self.sampling_rate, low_open=True)


@register_masker(
    "random_sampling",
    "Each inactive key with probability sampling_rate, weighted 1/sampling_rate (unbiased).",
)
class RandomSamplingMasker(Masker):
    """Adds independent Bernoulli(sampling_rate) draws over the inactive keys."""

    config_class = RandomSamplingMaskerConfig
    config: RandomSamplingMaskerConfig
    is_sampling = True

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus sampled keys at p = sampling_rate; active entries stay."""
        shape = inputs.mask_shape
        rate = float(self.config.sampling_rate)
        if previous_mask.is_full_flag:
            return previous_mask.merge(Mask.create_empty(shape, device=inputs.keys.device))
        drawn = torch.rand(shape, device=inputs.keys.device) < rate  # (B, H, Q, K)
        allowed = inputs.allowed_keys()
        if allowed is not None:  # keys the attention mask forbids are never sampled
            drawn &= allowed
        active = previous_mask.active()
        if active is not None:
            drawn &= ~active
        sampled = drawn.to(previous_mask.dtype).mul_(rate)
        del drawn
        if previous_mask.is_binary:
            # No draw at an active key: the merge's p is 1 there and the draw elsewhere, so it
            # is made in place (not two more (B, H, Q, K) float tensors for the sum).
            if active is not None:
                sampled.masked_fill_(active, 1.0)
            return Mask.from_dense(sampled, copy=False)
        return previous_mask.merge(Mask.from_dense(sampled, copy=False))
