"""StreamingLLM's eviction form (``streaming_eviction``, recipe ``streaming_llm_eviction``):
sink + the last context keys, fixed at the context end, permanent."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.cli import main
from sparse_attention_hub.sparse_attention import ResearchAttention
from sparse_attention_hub.sparse_attention.maskers import StreamingEvictionConfig
from sparse_attention_hub.sparse_attention.maskers.eviction import n_kept
from sparse_attention_hub.sparse_attention.research_config import ResearchAttentionConfig

from .test_eviction import evicted_keys, prefill, qkv


def _attn(config: StreamingEvictionConfig) -> ResearchAttention:
    return ResearchAttention.create_from_config(ResearchAttentionConfig([config]))


@pytest.mark.parametrize(("length", "ratio", "n_sink"), [(9, 0.5, 4), (37, 0.3, 4), (100, 0.75, 2)])
def test_the_first_n_sink_and_the_last_context_keys_are_kept(length, ratio, n_sink):
    attn = _attn(StreamingEvictionConfig(ratio, n_sink=n_sink))
    prefill(attn, *qkv(4, 2, length, length, seed=length))
    budget = n_kept(length, ratio)
    expected = torch.zeros(length, dtype=torch.bool)
    expected[:n_sink] = True
    expected[length - (budget - n_sink) :] = True
    kept = ~evicted_keys(attn)  # (B, Hkv, L)
    assert torch.equal(kept, expected.expand_as(kept))


def test_a_budget_below_n_sink_keeps_the_first_keys():
    attn = _attn(StreamingEvictionConfig(0.9, n_sink=4))
    prefill(attn, *qkv(2, 2, 20, 20, seed=3))
    kept = ~evicted_keys(attn)
    assert n_kept(20, 0.9) < 4
    assert torch.equal(kept[0, 0], torch.arange(20) < n_kept(20, 0.9))


def test_the_window_stays_at_the_context_end_and_evicted_keys_never_reappear():
    attn = _attn(StreamingEvictionConfig(0.5, n_sink=4))
    q, k, v = qkv(4, 2, 30, 30, seed=11)
    prefill(attn, q, k, v)
    evicted = evicted_keys(attn).repeat_interleave(2, dim=1)[:, :, None, :]  # (B, H, 1, 30)
    keys, values, position = k, v, 30
    for n in (5, 1, 1, 1):  # the question, then decoding: the window does not slide
        q2, k_new, v_new = qkv(4, 2, n, n, seed=position)
        keys, values = torch.cat([keys, k_new], dim=2), torch.cat([values, v_new], dim=2)
        _, weights = attn.custom_attention(
            None, q2, keys, values, None, layer_idx=0, query_start=position, output_attentions=True
        )
        assert not torch.any((weights[..., :30] != 0) & evicted)  # type: ignore[index]
        assert torch.all(weights[..., 30:].sum(-1) > 0)  # type: ignore[index]  # new keys kept
        position += n
    kept = ~evicted_keys(attn)
    assert kept.shape[-1] == 38 and torch.all(kept[..., 30:])  # new keys kept, none evicted
    assert torch.equal(kept[0, 0, :30], (torch.arange(30) < 4) | (torch.arange(30) >= 19))


def test_a_bad_n_sink_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"StreamingEvictionConfig.n_sink .* >= 0, got -1"):
        StreamingEvictionConfig(0.5, n_sink=-1)


def test_the_recipe_builds_the_masker_and_is_listed(capsys):
    config = ResearchAttentionConfig.from_recipe("streaming_llm_eviction", compression_ratio=0.25)
    (built,) = config.masker_configs
    assert isinstance(built, StreamingEvictionConfig)
    assert built.compression_ratio == 0.25 and built.n_sink == 4
    assert main(["list", "recipes"]) == 0
    out = capsys.readouterr().out
    assert "streaming_llm_eviction" in out and "StreamingLLMPress" in out
