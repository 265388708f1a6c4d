"""The LSH code index keeps its key order in int16 / int32 (not int64) and sorts per chunk of
tables (issue 24): the same sorted codes, order and collision counts as one int64 sort."""

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
    got_values, got_order = lsh_index.sort_codes(codes)
    assert got_order.dtype == torch.int16
    assert torch.equal(got_values, values) and torch.equal(got_order.long(), order)


@pytest.mark.parametrize("n, dtype", [(2**15, torch.int16), (2**15 + 3, torch.int32)])
def test_the_key_order_is_int16_up_to_2_15_keys_and_int32_past_and_counts_exactly(n, dtype):
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 64, (1, 1, 3, n), generator=g, dtype=torch.int16)  # (B,Hkv,L,n)
    queries = torch.randint(0, 64, (1, 1, 2, 3), generator=g, dtype=torch.int16)  # (B,Hkv,R,L)
    index = lsh_index.index_codes(codes)
    assert index.order.dtype == dtype
    assert torch.equal(lsh_index.count_collisions(index, queries), collision_counts(queries, codes))
    assert torch.equal(lsh_index.all_codes(index), codes)
    cut = lsh_index.cut_codes(index, 5, n - 2)
    expected = collision_counts(queries, codes[..., 5 : n - 2])
    assert torch.equal(lsh_index.count_collisions(cut, queries), expected)


def test_an_index_sorted_in_place_equals_a_sorted_copy_and_keeps_no_unsorted_codes():
    g = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 9, (1, 2, 5, 70), generator=g, dtype=torch.int16)
    copy = lsh_index.index_codes(codes)
    assert copy.tail.untyped_storage().data_ptr() != codes.untyped_storage().data_ptr()
    owned = codes.clone()
    in_place = lsh_index.index_codes(owned, in_place=True)
    assert in_place.sorted_codes.data_ptr() == owned.data_ptr()  # no second (B,Hkv,L,n) tensor
    assert torch.equal(in_place.sorted_codes, copy.sorted_codes)
    assert torch.equal(in_place.order, copy.order) and in_place.width == copy.width
