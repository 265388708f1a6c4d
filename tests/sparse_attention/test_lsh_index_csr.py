"""MagicPIG's code index as bucket offsets over a 16-bit key order (issue 24: state-build
memory): the collision counts equal a comparison of every code past 65536 keys (two blocks),
with a tail, after merges and after cuts; the codes round-trip; the index is 16-bit order plus
small offsets."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_attention_hub.sparse_attention.maskers import lsh_index
from sparse_attention_hub.sparse_attention.maskers.magicpig import MagicPigConfig
from sparse_attention_hub.sparse_attention.maskers.magicpig_hashing import collision_counts

BITS = 4  # 16 buckets: every bucket spans both blocks of 70k keys


@pytest.fixture(scope="module")
def monkeypatch_merge() -> object:
    """A merge after 8 tail keys (not 1024), so short sequences merge too."""
    patch = pytest.MonkeyPatch()
    patch.setattr(lsh_index, "MERGE_AT", 8)
    yield
    patch.undo()


def random_codes(n: int, seed: int, bits: int = BITS) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes (1, 1, 3, n), queries (1, 1, 4, 3)), values in [0, 2**bits)."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (1, 1, 3, n), generator=g, dtype=torch.int16)
    return codes, torch.randint(0, 2**bits, (1, 1, 4, 3), generator=g, dtype=torch.int16)


def assert_exact(index: lsh_index.CodeIndex, codes: torch.Tensor, queries: torch.Tensor) -> None:
    assert index.size == codes.shape[-1]
    assert torch.equal(lsh_index.all_codes(index), codes)
    expected = collision_counts(queries, codes)
    assert torch.equal(lsh_index.count_collisions(index, queries).to(expected.dtype), expected)


def test_counts_past_65536_keys_with_a_tail_and_after_a_merge_are_exact():
    codes, queries = random_codes(80_000, 0)
    index = lsh_index.index_codes(codes[..., :70_000], BITS)  # two blocks
    assert index.blocks == 2 and index.order.dtype == torch.int16
    assert_exact(index, codes[..., :70_000], queries)
    index = lsh_index.append_codes(index, codes[..., 70_000:72_000])  # a tail of 2000
    assert index.tail.shape[-1] == 2000
    assert_exact(index, codes[..., :72_000], queries)
    merged = lsh_index.append_codes(index, codes[..., 72_000:])  # past 70000 / 8: merged
    assert merged.tail.shape[-1] == 0 and merged.sorted_size == 80_000
    assert_exact(merged, codes, queries)


def test_a_merge_from_one_block_to_two_counts_exactly():
    codes, queries = random_codes(75_000, 1)
    index = lsh_index.index_codes(codes[..., :60_000], BITS)
    assert index.blocks == 1
    merged = lsh_index.append_codes(index, codes[..., 60_000:])  # a tail of 15000: merged
    assert merged.blocks == 2 and merged.tail.shape[-1] == 0
    assert merged.width >= lsh_index.index_codes(codes, BITS).width
    assert_exact(merged, codes, queries)


@pytest.mark.parametrize(
    "start, stop",
    [
        (0, 140_000),  # all of it
        (65_536, 140_000),  # from a block start, two blocks left, and the tail
        (131_072, 139_000),  # from the second block start, into the tail
        (1_000, 138_000),  # not a block start, two blocks left, tail cut
        (70_001, 136_000),  # not a block start, one block left
        (65_535, 65_537),  # across a block boundary
        (136_500, 139_500),  # into the tail only
    ],
)
def test_cuts_count_exactly(start, stop):
    codes, queries = random_codes(140_000, 2)
    index = lsh_index.index_codes(codes[..., :137_000], BITS)  # three blocks
    index = lsh_index.append_codes(index, codes[..., 137_000:])  # a tail of 3000
    assert index.blocks == 3 and index.tail.shape[-1] == 3000
    cut = lsh_index.cut_codes(index, start, stop)
    assert cut.blocks == lsh_index.block_count(max(0, min(stop, 137_000) - start))
    assert_exact(cut, codes[..., start:stop], queries)
    grown = lsh_index.append_codes(cut, codes[..., :20_000])  # a merge after the cut
    assert_exact(grown, torch.cat([codes[..., start:stop], codes[..., :20_000]], -1), queries)


def test_sixteen_bit_codes_count_exactly():
    codes, queries = random_codes(3_000, 3, bits=15)
    wide = codes.int() * 2 + 1  # int32 codes in [0, 2**16)
    index = lsh_index.index_codes(wide, 16, in_place=True)  # int32 codes: not overwritten
    assert index.offsets.shape[-1] == 2**16 + 1
    assert_exact(index, wide, queries.int() * 2 + 1)


def test_the_index_is_a_16_bit_order_and_small_offsets():
    codes, _ = random_codes(70_000, 4, bits=8)
    index = lsh_index.index_codes(codes, 8)
    tensors = (index.order, index.offsets, index.tail)
    per_key_and_table = sum(t.numel() * t.element_size() for t in tensors) / codes.numel()
    assert per_key_and_table < 2.1  # stored codes and an int32 order were 6 bytes


def test_bits_per_code_are_checked():
    with pytest.raises(ValueError, match=r"MagicPigConfig.lsh_k must be in \[1, 16\], got 17"):
        MagicPigConfig(lsh_k=17)
    assert MagicPigConfig(lsh_k=16).lsh_k == 16
    with pytest.raises(ValueError, match="bits per code"):
        lsh_index.index_codes(torch.zeros(1, 1, 1, 4, dtype=torch.int16), 17)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bits=st.sampled_from([2, 5, 10]),
    n=st.integers(0, 120),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 40), st.integers(0, 40)), max_size=6),
    seed=st.integers(0, 2**16),
)
def test_random_appends_and_cuts_keep_the_counts_exact(bits, n, steps, seed, monkeypatch_merge):
    """Any sequence of appends (merging past a small MERGE_AT) and cuts (rollbacks, sliding
    windows) keeps the codes and every count equal to comparing every code."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 2**bits, (1, 2, 3, n), generator=g, dtype=torch.int16)
    index = lsh_index.index_codes(codes.clone(), bits, in_place=True)
    for append, a, b in steps:
        if append:
            new = torch.randint(0, 2**bits, (1, 2, 3, a + 1), generator=g, dtype=torch.int16)
            index, codes = lsh_index.append_codes(index, new), torch.cat([codes, new], -1)
        else:
            start = min(a, codes.shape[-1])
            stop = min(codes.shape[-1], start + b)
            index, codes = lsh_index.cut_codes(index, start, stop), codes[..., start:stop]
        queries = torch.randint(0, 2**bits, (1, 2, 3, 3), generator=g, dtype=torch.int16)
        assert_exact(index, codes, queries)
