"""The logits ``s - log p`` of a float mask: one fp32 (B, H, Q, K) tensor, made in place
(issue 24), equal bit for bit to the out-of-place formula."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparse_attention_hub.sparse_attention import Mask
from sparse_attention_hub.sparse_attention.attention import _logits

SHAPE = (2, 3, 5, 7)  # (B, H, Q, K)


def _scores_and_probabilities() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(SHAPE, generator=g) * 4
    scores[0, 0, 0, :3] = float("-inf")  # keys the attention mask forbids
    p = torch.rand(SHAPE, generator=g)
    p[p < 0.3] = 0.0
    p[0, 0, 0, 1] = 0.0  # p == 0 where s == -inf
    p[0, 0, 0, 4] = 1e-30  # tiny but kept
    return scores, p


def _reference(scores: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    logits = torch.sub(scores, torch.log(p.to(torch.float32)))
    return logits.masked_fill_(p == 0, float("-inf"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_float_mask_logits_equal_the_out_of_place_formula(dtype):
    scores, p = _scores_and_probabilities()
    mask = Mask.from_dense(p.to(dtype))
    got = _logits(scores, mask)
    assert torch.equal(got, _reference(scores, mask.dense_view()))
    assert got.dtype == torch.float32 and not torch.equal(scores, got)


class _NewFullTensors(TorchDispatchMode):
    """Counts ops that return a new (not in-place) tensor of the scores' size."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        mutable = func._schema.is_mutable or func.__name__.endswith("_")
        if not mutable and isinstance(out, torch.Tensor) and out.numel() == scores_numel():
            self.ops.append(str(func))
        return out


def scores_numel() -> int:
    return SHAPE[0] * SHAPE[1] * SHAPE[2] * SHAPE[3]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_float_mask_logits_make_one_scores_sized_tensor(dtype):
    scores, p = _scores_and_probabilities()
    mask = Mask.from_dense(p.to(dtype))
    with _NewFullTensors() as mode:
        _logits(scores, mask)
    assert len(mode.ops) == 1, mode.ops
