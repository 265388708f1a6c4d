"""Mask: constructors, conversions, merge, density, immutability."""

import pytest
import torch

from sparse_attention_hub.sparse_attention import Mask

SHAPE = (2, 3, 4, 7)


def random_probs(seed: int = 0, shape=SHAPE) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    choice = torch.randint(0, 3, shape, generator=g)
    return torch.tensor([0.0, 1.0, 0.25])[choice]


def test_empty_and_full_are_flags_with_dense_views():
    empty, full = Mask.create_empty(SHAPE), Mask.create_full(SHAPE)
    assert empty.dense_view() is None and full.dense_view() is None
    assert empty.is_empty() and not empty.is_full()
    assert full.is_full() and not full.is_empty()
    assert torch.equal(empty.to_dense(), torch.zeros(SHAPE))
    assert torch.equal(full.to_dense(), torch.ones(SHAPE))
    assert float(empty.density()) == 0.0 and float(full.density()) == 1.0


def test_from_dense_copies_and_checks_range():
    probs = random_probs()
    mask = Mask.from_dense(probs)
    probs.zero_()
    assert mask.to_dense().sum() > 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Mask.from_dense(torch.full(SHAPE, 1.5))
    with pytest.raises(ValueError, match="shape"):
        Mask.from_dense(torch.ones(3, 4))


def test_dense_full_and_empty_detection():
    assert Mask.from_dense(torch.ones(SHAPE)).is_full()
    assert Mask.from_dense(torch.zeros(SHAPE)).is_empty()
    partial = Mask.from_dense(random_probs())
    assert not partial.is_full() and not partial.is_empty()


def test_density_is_a_zero_dim_tensor():
    probs = random_probs(1)
    density = Mask.from_dense(probs).density()
    assert isinstance(density, torch.Tensor) and density.dim() == 0
    assert density.item() == pytest.approx((probs > 0).float().mean().item())


def test_row_indices_round_trip():
    probs = random_probs(2)
    mask = Mask.from_dense(probs)
    idx, p = mask.to_row_indices()
    assert idx.shape[:3] == SHAPE[:3] and p.shape == idx.shape
    assert torch.equal(Mask.from_row_indices(SHAPE, idx, p).to_dense(), probs)


def test_from_row_indices_scalar_probability_and_duplicates_clamp():
    idx = torch.tensor([0, 0, 3]).expand(1, 1, 1, 3)
    mask = Mask.from_row_indices((1, 1, 1, 5), idx, 0.75)
    assert mask.to_dense().flatten().tolist() == [1.0, 0.0, 0.0, 0.75, 0.0]
    with pytest.raises(ValueError, match="indices must have shape"):
        Mask.from_row_indices((1, 1, 2, 5), idx)


def test_flat_indices_round_trip():
    probs = random_probs(3)
    mask = Mask.from_dense(probs)
    indices, ptr, data = mask.to_flat_indices()
    assert ptr.numel() == 2 * 3 * 4 + 1 and int(ptr[-1]) == indices.numel() == data.numel()
    rows = indices // SHAPE[3]
    for r in range(ptr.numel() - 1):  # row r owns exactly indices[ptr[r]:ptr[r+1]]
        assert torch.all(rows[ptr[r] : ptr[r + 1]] == r)
    assert torch.equal(Mask.from_flat_indices(SHAPE, indices, ptr, data).to_dense(), probs)
    assert torch.equal(Mask.from_flat_indices(SHAPE, indices).to_dense(), (probs > 0).float())
    with pytest.raises(ValueError, match="flat indices"):
        Mask.from_flat_indices(SHAPE, torch.tensor([10_000]))


def test_merge_adds_and_clamps_without_touching_inputs():
    a, b = random_probs(4), random_probs(5)
    ma, mb = Mask.from_dense(a), Mask.from_dense(b)
    before = ma.dense_view().clone(), mb.dense_view().clone()
    merged = ma.merge(mb)
    assert torch.equal(merged.to_dense(), (a + b).clamp(max=1))
    assert torch.equal(ma.dense_view(), before[0]) and torch.equal(mb.dense_view(), before[1])
    assert merged.dense_view().data_ptr() not in {
        ma.dense_view().data_ptr(),
        mb.dense_view().data_ptr(),
    }
    assert ma.merge(Mask.create_full(SHAPE)).is_full_flag
    assert torch.equal(ma.merge(Mask.create_empty(SHAPE)).to_dense(), a)
    with pytest.raises(ValueError, match="cannot merge"):
        ma.merge(Mask.create_empty((1, 1, 1, 1)))


def test_with_active_operations_return_new_masks():
    probs = random_probs(6)
    mask = Mask.from_dense(probs)
    where = torch.zeros(SHAPE[3], dtype=torch.bool)
    where[2] = True
    added = mask.with_active(where)
    assert torch.all(added.to_dense()[..., 2] == 1)
    assert torch.equal(mask.to_dense(), probs)
    idx = torch.zeros(*SHAPE[:3], 1, dtype=torch.long)
    picked = mask.with_active_indices(idx, torch.zeros(*SHAPE[:3], 1))
    assert torch.equal(picked.to_dense(), probs)  # probability 0 adds nothing, removes nothing
    assert torch.all(Mask.create_empty(SHAPE).with_active_indices(idx).to_dense()[..., 0] == 1)


def test_to_dense_never_aliases():
    mask = Mask.from_dense(random_probs(7))
    dense = mask.to_dense()
    dense.fill_(0.5)
    assert not torch.equal(mask.to_dense(), dense)


def test_render_draws_the_grid():
    probs = torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 1.0]]).view(1, 1, 2, 3)
    assert Mask.from_dense(probs).render() == "#.+\n.##"


def test_binary_form_is_kept_until_a_probability_below_one_appears():
    where = torch.zeros(SHAPE[3], dtype=torch.bool)
    where[:2] = True
    binary = Mask.create_empty(SHAPE).with_active(where)
    assert binary.is_binary and binary.dense_view().dtype == torch.bool
    assert binary.to_dense().dtype == torch.float32 and float(binary.density()) == pytest.approx(
        2 / 7
    )
    idx = torch.full((*SHAPE[:3], 1), 5)
    assert binary.with_active_indices(idx).is_binary
    assert Mask.from_row_indices(SHAPE, idx).is_binary
    sampled = binary.merge(Mask.from_dense(torch.full(SHAPE, 0.5)))
    assert not sampled.is_binary
    expected = torch.full(SHAPE, 0.5)
    expected[..., :2] = 1.0
    assert torch.equal(sampled.to_dense(), expected)
    # bool flags on a probability mask: raise picked entries to 1, never lower any
    flags = torch.zeros(*SHAPE[:3], 2, dtype=torch.bool)
    flags[..., 0] = True
    picks = torch.tensor([3, 0]).expand(*SHAPE[:3], 2)
    raised = sampled.with_active_indices(picks, flags).to_dense()
    assert torch.all(raised[..., 3] == 1) and torch.all(raised[..., 0] == 1)
    assert torch.all(raised[..., 4] == 0.5)


def test_bool_dense_input_and_binary_is_full():
    mask = Mask.from_dense(torch.ones(SHAPE, dtype=torch.bool))
    assert mask.is_binary and mask.is_full() and not mask.is_empty()
    assert torch.equal(
        mask.merge(Mask.from_dense(torch.zeros(SHAPE, dtype=torch.bool))).to_dense(),
        torch.ones(SHAPE),
    )


def test_shared_patterns_stay_small_until_a_per_head_masker_needs_the_full_tensor():
    where = torch.arange(SHAPE[3]) < 2  # (K,)
    sink = Mask.create_empty(SHAPE).with_active(where)
    where[:] = True  # the mask copied it
    assert sink.dense_view().shape == (1, 1, 1, SHAPE[3])
    expected = torch.zeros(SHAPE)
    expected[..., :2] = 1
    assert torch.equal(sink.to_dense(), expected)
    assert float(sink.density()) == pytest.approx(2 / 7) and not sink.is_full()
    band = torch.eye(SHAPE[2], SHAPE[3], dtype=torch.bool)  # (Q, K)
    both = sink.with_active(band)
    assert both.dense_view().shape == (1, 1, SHAPE[2], SHAPE[3])
    picked = both.with_active_indices(torch.full((*SHAPE[:3], 1), 6))
    assert picked.dense_view().shape == SHAPE
    assert torch.equal(picked.to_dense(), (expected.bool() | band | (torch.arange(7) == 6)).float())
    sampled = both.merge(Mask.from_dense(torch.full(SHAPE, 0.25)))
    assert sampled.dense_view().shape == SHAPE and float(sampled.to_dense().min()) == 0.25
    with pytest.raises(ValueError, match="broadcast"):
        sink.with_active(torch.ones(3, 3, dtype=torch.bool))


@pytest.mark.parametrize("shape", [(1, 2, 3, 0), (2, 1, 0, 4), (1, 1, 3, 5)])
def test_conversions_round_trip_with_empty_rows_and_zero_sizes(shape):
    probs = torch.zeros(shape)
    if probs.numel():
        probs[0, 0, 1] = torch.tensor([0.5, 0.0, 1.0, 0.0, 0.25])  # rows 0 and 2 stay empty
    mask = Mask.from_dense(probs)
    idx, p = mask.to_row_indices()
    assert torch.equal(Mask.from_row_indices(shape, idx, p).to_dense(), probs)
    indices, ptr, data = mask.to_flat_indices()
    assert ptr.numel() == shape[0] * shape[1] * shape[2] + 1
    assert torch.equal(Mask.from_flat_indices(shape, indices, ptr, data).to_dense(), probs)


@pytest.mark.parametrize("bad", [float("nan"), -0.1, 1.5])
def test_every_constructor_rejects_probabilities_outside_the_unit_interval(bad):
    probs = torch.full((1, 1, 1, 2), 0.5)
    probs[0, 0, 0, 1] = bad
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Mask.from_dense(probs)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Mask.from_row_indices((1, 1, 1, 3), torch.tensor([[[[0, 2]]]]), probs)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Mask.from_flat_indices((1, 1, 1, 3), torch.tensor([0, 2]), data=probs.reshape(-1))
