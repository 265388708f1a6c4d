"""AttentionInputs (defaults, positions, as custom_attention builds it), position-based maskers
on sliding-window layers, MaskerStates (build / extend / cut / rollback / stale state), and
mask hooks."""

import math

import pytest
import torch

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    Mask,
    MaskerStates,
    ResearchAttention,
    ResearchAttentionConfig,
    masked_attention,
)
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    RandomSamplingMaskerConfig,
    SinkMaskerConfig,
    create_masker,
)
from tests.support.maskers import KeyMaxTopK, KeyMaxTopKConfig


def qkv(h=4, h_kv=2, q=2, k=10, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(1, h, q, d, generator=g),
        torch.randn(1, h_kv, k, d, generator=g),
        torch.randn(1, h_kv, k, d, generator=g),
    )


def test_defaults_live_in_one_place():
    q, k, v = qkv(q=3, k=10, d=16)
    inputs = AttentionInputs(q, k, v)
    assert inputs.scaling == pytest.approx(1 / math.sqrt(16))
    assert inputs.query_start == 7 and inputs.key_offset == 0 and inputs.sequence_length == 10
    assert inputs.mask_shape == (1, 4, 3, 10) and inputs.group_size == 2
    assert inputs.key_positions().tolist() == list(range(10))
    assert inputs.query_positions().tolist() == [7, 8, 9]
    assert inputs.exact_scores() is inputs.exact_scores()  # computed once, shared
    assert inputs.per_query_head(k).shape == (1, 4, 10, 16)
    with pytest.raises(ValueError, match="4-D"):
        AttentionInputs(q[0], k, v)


def test_custom_attention_reads_module_layer_position_ids_and_keeps_model_extras():
    q, k, v = qkv(q=2, k=8)
    module = torch.nn.Module()
    module.layer_idx = 3  # type: ignore[assignment]
    sinks = torch.zeros(4)
    attn = ResearchAttention([])
    seen: list[AttentionInputs] = []
    attn.register_mask_hook(lambda inputs, mask: seen.append(inputs))
    positions = torch.tensor([[40, 41]])
    attn.custom_attention(
        module, q, k, v, None, position_ids=positions, sliding_window=8, s_aux=sinks
    )
    inputs = seen[-1]
    assert inputs.layer_idx == 3 and inputs.query_start == 40
    assert inputs.key_offset == 34 and inputs.key_positions().tolist() == list(range(34, 42))
    assert inputs.extras["sliding_window"] == 8 and inputs.sinks is sinks
    attn.custom_attention(None, q, k, v, None, 0.5, layer_idx=1, query_start=20, position_ids=None)
    assert (seen[-1].layer_idx, seen[-1].query_start, seen[-1].scaling) == (1, 20, 0.5)


def sliding(q_len, k_len, query_start):
    """Inputs of a sliding-window layer: the cache holds keys query_start + Q - K .. end."""
    q, k, v = qkv(q=q_len, k=k_len)
    return AttentionInputs(q, k, v, query_start=query_start)


def test_sink_is_by_absolute_position_on_sliding_layers():
    sink = create_masker(SinkMaskerConfig(4))
    empty = Mask.create_empty((1, 4, 1, 6))
    assert sink.add_mask(sliding(1, 6, 20), empty).is_empty()  # positions 15..20: no sink left
    partly = sink.add_mask(sliding(1, 6, 6), empty)  # positions 1..6: sinks 1, 2, 3
    assert partly.render() == "###..."
    full_layer = sink.add_mask(AttentionInputs(*qkv(q=1, k=6)), empty)
    assert full_layer.render() == "####.."


def test_local_band_follows_positions_on_sliding_layers():
    local = create_masker(LocalMaskerConfig(3))
    empty = Mask.create_empty((1, 4, 2, 6))
    on_sliding = local.add_mask(sliding(2, 6, 30), empty)  # keys 26..31, queries 30, 31
    on_full = local.add_mask(AttentionInputs(*qkv(q=2, k=6)), empty)
    assert on_sliding.render() == on_full.render() == "..###.\n...###"


def state_inputs(keys, query_start, layer=0):
    """Inputs of one decode step whose keys end at query_start + 1."""
    q = torch.randn(1, 4, 1, keys.shape[-1])
    return AttentionInputs(q, keys, keys, layer_idx=layer, query_start=query_start)


def test_states_build_extend_cut_and_roll_back():
    keys = torch.randn(1, 2, 20, 8)
    masker = KeyMaxTopK(KeyMaxTopKConfig(2))
    expected = keys.abs().amax(-1)  # (B, Hkv, 20): the state of all keys
    states = MaskerStates()
    assert torch.equal(states.read(masker, state_inputs(keys[:, :, :12], 11)), expected[..., :12])
    extended = states.read(masker, state_inputs(keys[:, :, :14], 13))
    assert torch.equal(extended, expected[..., :14])
    # A sliding window: the call holds keys 6..15 only; the state is cut to exactly those.
    slid = states.read(masker, state_inputs(keys[:, :, 6:16], 15))
    assert torch.equal(slid, expected[..., 6:16])
    entry = states.entry(0, masker)
    assert entry is not None and (entry.start, entry.end) == (6, 16)
    states.truncate(10)  # a rollback to 10 tokens
    assert (entry.start, entry.end) == (6, 10) and torch.equal(entry.value, expected[..., 6:10])
    # keys before the state's start are in the call again: rebuilt from all of them
    assert torch.equal(states.read(masker, state_inputs(keys[:, :, :11], 10)), expected[..., :11])
    states.truncate(0)
    assert len(states) == 0
    states.read(masker, state_inputs(keys[:, :, :3], 2))
    states.read(masker, state_inputs(keys[:, :, 10:18], 17))  # a gap it never saw: rebuilt
    assert torch.equal(
        states.read(masker, state_inputs(keys[:, :, 10:18], 17)), expected[..., 10:18]
    )
    states.clear()
    assert len(states) == 0


def test_a_state_longer_than_the_keys_raises_with_layer_and_both_lengths():
    keys = torch.randn(1, 2, 20, 8)
    masker = KeyMaxTopK(KeyMaxTopKConfig(2))
    states = MaskerStates()
    states.read(masker, state_inputs(keys[:, :, :15], 14, layer=5))
    with pytest.raises(
        ValueError, match=r"layer 5: the state of KeyMaxTopK.* covers 15 keys .* has 12"
    ):
        states.read(masker, state_inputs(keys[:, :, :12], 11, layer=5))
    states.read(masker, state_inputs(keys[:, :, :12], 11, layer=4))  # other layers are separate


def test_a_stateful_masker_works_without_a_state_store():
    q, k, v = qkv(q=1, k=10)
    direct = KeyMaxTopK(KeyMaxTopKConfig(3)).add_mask(
        AttentionInputs(q, k, v), Mask.create_empty((1, 4, 1, 10))
    )
    in_chain = ResearchAttention([KeyMaxTopK(KeyMaxTopKConfig(3))]).build_mask(
        AttentionInputs(q, k, v)
    )
    assert torch.equal(direct.to_dense(), in_chain.to_dense())
    assert int((direct.to_dense()[0, 0] > 0).sum()) == 3


def test_recorded_masks_are_the_masks_the_call_used():
    q, k, v = qkv(q=3, k=16)
    attn = ResearchAttention.create_from_config(
        ResearchAttentionConfig([SinkMaskerConfig(2), RandomSamplingMaskerConfig(0.3)])
    )
    with attn.record_masks() as masks:
        out, _ = attn.custom_attention(None, q, k, v, None, None, 0.0, layer_idx=7)
    ((layer, mask),) = masks
    assert layer == 7 and not mask.is_binary  # sampled entries carry p < 1
    again, _ = masked_attention(q, k, v, mask)
    assert torch.equal(out, again)
    attn.custom_attention(None, q, k, v, None, None, 0.0, layer_idx=7)
    assert len(masks) == 1  # the hook is gone after the block
