"""Random sampling builds its mask in place over a binary previous mask (issue 24): the same
mask as merging the draw into the previous mask, for every kind of previous mask."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparse_attention_hub.sparse_attention import AttentionInputs, Mask
from sparse_attention_hub.sparse_attention.maskers import (
    RandomSamplingMaskerConfig,
    create_masker,
)
from tests.support.tensors import random_qkv

SHAPE = (1, 4, 3, 20)  # (B, H, Q, K)


def _previous(kind: str) -> Mask:
    g = torch.Generator().manual_seed(5)
    if kind == "empty":
        return Mask.create_empty(SHAPE)
    if kind == "bool":
        return Mask.from_dense(torch.rand(SHAPE, generator=g) < 0.3)
    if kind == "broadcast bool":  # sink + local style: (1, 1, Q, K)
        return Mask.create_empty(SHAPE).with_active(torch.rand(1, 1, 3, 20, generator=g) < 0.3)
    probabilities = torch.rand(SHAPE, generator=g)
    return Mask.from_dense(torch.where(probabilities < 0.5, 0.0, probabilities))


def _merged_reference(inputs: AttentionInputs, previous: Mask, rate: float) -> Mask:
    """The draw merged into ``previous`` (the masker's rule before the in-place path)."""
    drawn = torch.rand(inputs.mask_shape) < rate
    allowed = inputs.allowed_keys()
    if allowed is not None:
        drawn &= allowed
    active = previous.active()
    if active is not None:
        drawn &= ~active
    sampled = drawn.to(previous.dtype).mul_(rate)
    return previous.merge(Mask.from_dense(sampled, copy=False))


@pytest.mark.parametrize("kind", ["empty", "bool", "broadcast bool", "float"])
@pytest.mark.parametrize("with_attention_mask", [False, True])
def test_in_place_sampling_equals_the_merge(kind, with_attention_mask):
    q, k, v = random_qkv(4, 2, 3, 20)
    causal = torch.ones(3, 20, dtype=torch.bool).tril(17)[None, None]
    inputs = AttentionInputs(q, k, v, attention_mask=causal if with_attention_mask else None)
    masker = create_masker(RandomSamplingMaskerConfig(sampling_rate=0.25))
    previous = _previous(kind)
    torch.manual_seed(11)
    expected = _merged_reference(inputs, previous, 0.25)
    torch.manual_seed(11)
    got = masker.add_mask(inputs, previous)
    assert torch.equal(got.to_dense(), expected.to_dense())
    assert got.dtype == expected.dtype


class _NewFloatTensors(TorchDispatchMode):
    """Names the ops that return a new (not in-place) float tensor of the mask's size."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        mutable = func._schema.is_mutable or func.__name__.endswith("_")
        full = isinstance(out, torch.Tensor) and out.numel() == SHAPE[1] * SHAPE[2] * SHAPE[3]
        if not mutable and full and out.is_floating_point():
            self.ops.append(str(func))
        return out


def test_sampling_over_a_bool_mask_makes_two_float_tensors_of_the_mask_size():
    """The uniform draw and the sampled probabilities; not a float copy of the previous mask
    and a sum."""
    q, k, v = random_qkv(4, 2, 3, 20)
    inputs = AttentionInputs(q, k, v)
    masker = create_masker(RandomSamplingMaskerConfig(sampling_rate=0.25))
    previous = _previous("bool")
    with _NewFloatTensors() as mode:
        masker.add_mask(inputs, previous)
    assert len(mode.ops) == 2, mode.ops
