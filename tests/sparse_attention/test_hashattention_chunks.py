"""HashAttention's bounded-memory paths give the results of the whole-tensor ones: the key
signatures built in key chunks (1, 7 or all keys per chunk), the Hamming distance counted
one word at a time with a bit-parallel popcount, the ranking composite built in place."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import HashAttentionConfig, create_masker
from sparse_attention_hub.sparse_attention.maskers.hashattention import (
    key_chunk,
    nearest_by_distance_then_position,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_mlp import popcount16
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    hamming_distance,
    key_logits,
    load_hat_weights,
    pack_signs,
    popcount_table,
    random_hat_weights,
    save_hat_weights,
)

H, HKV, D, HIDDEN = 4, 2, 8, 16


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    weights = random_hat_weights(1, H, D, hat_bits=40, hidden=HIDDEN, seed=3)
    return str(save_hat_weights(weights, tmp_path_factory.mktemp("hat") / "w.safetensors"))


def test_popcount16_counts_the_bits_of_every_16_bit_word():
    words = torch.arange(1 << 16, dtype=torch.int32)
    got = popcount16(words.to(torch.int16))  # the bit pattern, negative past 32767
    assert torch.equal(got.to(torch.uint8), popcount_table(torch.device("cpu")))


@pytest.mark.parametrize("bits", [5, 16, 40])
def test_hamming_distance_is_the_count_of_differing_bits(bits):
    g = torch.Generator().manual_seed(bits)
    q_logits = torch.randn(2, 3, 4, bits, generator=g)  # (B, H, Q, bits)
    k_logits = torch.randn(2, 3, 9, bits, generator=g)  # (B, H, K, bits)
    got = hamming_distance(pack_signs(q_logits), pack_signs(k_logits).transpose(-1, -2))
    expected = ((q_logits > 0).unsqueeze(3) != (k_logits > 0).unsqueeze(2)).sum(-1)
    assert got.dtype == torch.uint8 and torch.equal(got, expected)


def test_the_ranking_leaves_the_distances_untouched_and_keeps_the_tie_rule():
    distance = torch.tensor([[[[3, 1, 1, 4, 1, 1]]]], dtype=torch.int32)
    kept = distance.clone()
    ineligible = torch.tensor([False, True, False, False, False, False])
    indices, keep = nearest_by_distance_then_position(distance, ineligible, 3, bits=4)
    assert torch.equal(distance, kept)
    assert sorted(indices.flatten().tolist()) == [2, 4, 5] and bool(keep.all())


@pytest.mark.parametrize("chunk_keys", [1, 7, None])
def test_signatures_built_in_key_chunks_equal_the_whole_build(weights_file, chunk_keys):
    masker = create_masker(HashAttentionConfig(4, weights_file, hat_bits=40))
    g = torch.Generator().manual_seed(5)
    keys = torch.randn(2, HKV, 23, D, generator=g)
    q = torch.randn(2, H, 1, D, generator=g)
    inputs = AttentionInputs(q, keys, keys, layer_idx=0)
    if chunk_keys is not None:
        masker.build_chunk_bytes = chunk_keys * 4 * 2 * H * HIDDEN
        assert key_chunk(2 * H * HIDDEN, masker.build_chunk_bytes) == chunk_keys
    state = masker.build_state(inputs)
    whole = pack_signs(key_logits(keys, load_hat_weights(weights_file)[0].key))  # (B, H, K, W)
    assert state.dtype == torch.int32 and torch.equal(state, whole.transpose(-1, -2))
