"""MagicPIG's bounded-memory paths give the results of the whole-tensor ones: the state built
in key chunks (1, 7 or all keys per chunk), the probabilities evaluated at every entry (the
accelerator path, no host wait) or at the hits only (the CPU path), q . k under a soft cap
over key chunks, and the bucket-slot collision count (no host wait) on skewed buckets."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import create_masker, lsh_index
from sparse_attention_hub.sparse_attention.maskers.magicpig import (
    MagicPigConfig,
    collision_counts,
)
from sparse_attention_hub.sparse_attention.maskers.magicpig_hashing import (
    grouped_dots,
    sampled_probabilities,
)

H, HKV, D = 4, 2, 8


def keys_and_query(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, HKV, n, D, generator=g), torch.randn(2, H, 3, D, generator=g)


@pytest.mark.parametrize("mips", [False, True])
@pytest.mark.parametrize("chunk_keys", [1, 7])
def test_state_built_in_key_chunks_equals_the_whole_build(chunk_keys, mips):
    config = MagicPigConfig(lsh_k=3, lsh_l=20, sink_size=2, window_size=4, mips_transform=mips)
    keys, q = keys_and_query(37)
    inputs = AttentionInputs(q, keys, keys, layer_idx=1)
    whole = create_masker(config).build_state(inputs)
    masker = create_masker(config)
    masker.build_chunk_bytes = 1  # one key per chunk
    if chunk_keys == 7:  # the widest per-key temporary is the projection, L * K floats
        masker.build_chunk_bytes = 7 * 4 * 2 * HKV * (20 * 3 + 1)
        assert masker.key_chunk(2 * HKV * (20 * 3 + 1)) == 7
    chunked = masker.build_state(inputs)
    assert torch.allclose(chunked.centre, whole.centre, rtol=0, atol=1e-7)
    assert torch.equal(lsh_index.all_codes(chunked.index), lsh_index.all_codes(whole.index))
    assert torch.allclose(chunked.norms, whole.norms, rtol=1e-6)
    if mips:
        assert torch.equal(chunked.mips_norm, whole.mips_norm)


def test_the_centre_is_the_mean_of_the_middle_keys():
    config = MagicPigConfig(lsh_k=3, lsh_l=20, sink_size=2, window_size=4)
    keys, q = keys_and_query(37)
    state = create_masker(config).build_state(AttentionInputs(q, keys, keys))
    expected = keys[:, :, 2:33].double().mean(2).float()
    assert torch.allclose(state.centre, expected, rtol=0, atol=1e-7)


def test_probabilities_at_every_entry_equal_those_at_the_hits():
    g = torch.Generator().manual_seed(4)
    dots = torch.randn(2, H, 5, 30, generator=g)
    query_norms = torch.rand(2, H, 5, 1, generator=g) + 0.5
    key_norms = torch.rand(2, H, 1, 30, generator=g) + 0.5
    hit = torch.rand(2, H, 5, 30, generator=g) < 0.3
    lsh = (4, 30, 2)
    dense = sampled_probabilities(dots, query_norms, key_norms, hit, lsh, 1e-4, compact=False)
    sparse = sampled_probabilities(dots, query_norms, key_norms, hit, lsh, 1e-4, compact=True)
    assert torch.equal(dense > 0, hit)
    assert torch.allclose(dense, sparse, rtol=1e-6, atol=0)


def test_dots_over_key_chunks_equal_the_repeated_keys_product():
    keys, q = keys_and_query(23)
    keys = keys.bfloat16()  # upcast chunk by chunk
    repeated = keys.float().repeat_interleave(H // HKV, dim=1)  # (B, H, K, D)
    expected = q @ repeated.transpose(-1, -2)  # (B, H, Q, K)
    for step in (1, 7, 23):
        assert torch.allclose(grouped_dots(q, keys, step), expected, atol=1e-5)


def test_skewed_buckets_count_exactly_and_an_appended_merge_keeps_counting():
    g = torch.Generator().manual_seed(6)
    codes = torch.randint(0, 3, (1, 2, 4, 50), generator=g, dtype=torch.int16)
    codes[..., :30] = 1  # one bucket holds most keys
    queries = torch.randint(0, 3, (1, 2, 5, 4), generator=g, dtype=torch.int16)
    index = lsh_index.index_codes(codes[..., :20], 2)
    assert index.width == 20
    index = lsh_index.append_codes(index, codes[..., 20:])
    more = torch.randint(0, 3, (1, 2, 4, 1100), generator=g, dtype=torch.int16)
    merged = lsh_index.append_codes(index, more)
    assert merged.tail.shape[-1] == 0 and merged.width >= 30
    everything = torch.cat([codes, more], -1)
    for got, keys in ((index, codes), (merged, everything)):
        counts = lsh_index.count_collisions(got, queries)
        assert counts.dtype == torch.uint8
        assert torch.equal(counts, collision_counts(queries, keys))
