"""The LSH code index keeps its key order in int16 at every length (the low 16 bits, the
block of 65536 keys in the bucket offsets) and sorts per chunk of tables (issue 24): the same
order as one int64 stable sort, and exact collision counts."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention.maskers import lsh_index
from sparse_attention_hub.sparse_attention.maskers.magicpig_hashing import collision_counts


@pytest.mark.parametrize("chunk", [1, 60 * 7, 1 << 22])
def test_sorting_per_chunk_of_tables_equals_one_stable_sort(monkeypatch, chunk):
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 9, (2, 3, 11, 60), generator=g, dtype=torch.int16)
    values, order = torch.sort(codes, dim=-1, stable=True)
    monkeypatch.setattr(lsh_index, "SORT_ELEMENTS", chunk)
    got_order, got_offsets = lsh_index.sort_index(codes, 4)
    assert got_order.dtype == torch.int16 and torch.equal(got_order.long(), order)
    # bucket c of each table: [offsets[c], offsets[c + 1]) in the sorted order
    bounds = torch.arange(17, dtype=torch.int16).expand(2, 3, 11, 17).contiguous()
    assert got_offsets.dtype == torch.int32
    assert torch.equal(got_offsets.long(), torch.searchsorted(values, bounds))


@pytest.mark.parametrize("n", [2**15 + 3, 2**16 + 5])
def test_the_key_order_is_int16_past_2_15_and_2_16_keys_and_counts_exactly(n):
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 64, (1, 1, 3, n), generator=g, dtype=torch.int16)  # (B,Hkv,L,n)
    queries = torch.randint(0, 64, (1, 1, 2, 3), generator=g, dtype=torch.int16)  # (B,Hkv,R,L)
    index = lsh_index.index_codes(codes, 6)
    assert index.order.dtype == torch.int16
    assert index.offsets.shape[-1] == 64 * lsh_index.block_count(n) + 1
    assert torch.equal(lsh_index.count_collisions(index, queries), collision_counts(queries, codes))
    assert torch.equal(lsh_index.all_codes(index), codes)
    cut = lsh_index.cut_codes(index, 5, n - 2)
    expected = collision_counts(queries, codes[..., 5 : n - 2])
    assert torch.equal(lsh_index.count_collisions(cut, queries), expected)


def test_an_index_built_in_place_equals_a_copy_and_keeps_no_codes():
    g = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 9, (1, 2, 5, 70), generator=g, dtype=torch.int16)
    copy = lsh_index.index_codes(codes, 4)
    assert copy.tail.untyped_storage().data_ptr() != codes.untyped_storage().data_ptr()
    assert torch.equal(lsh_index.all_codes(copy), codes)  # only read
    owned = codes.clone()
    in_place = lsh_index.index_codes(owned, 4, in_place=True)
    assert in_place.order.data_ptr() == owned.data_ptr()  # no second (B,Hkv,L,n) tensor
    assert torch.equal(in_place.order, copy.order) and torch.equal(in_place.offsets, copy.offsets)
    assert in_place.width == copy.width
