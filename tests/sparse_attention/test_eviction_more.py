"""h2o, pyramidkv and Ada-KV (``head_budget: adaptive``): ratios, ratio 0 = dense, permanence."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention import ResearchAttention
from sparse_attention_hub.sparse_attention.maskers import (
    H2OConfig,
    KNormConfig,
    PyramidKVConfig,
    SnapKVConfig,
)
from sparse_attention_hub.sparse_attention.maskers.eviction import n_kept
from sparse_attention_hub.sparse_attention.maskers.pyramidkv import pyramid_budget
from sparse_attention_hub.sparse_attention.research_config import ResearchAttentionConfig

from .test_eviction import evicted_keys, prefill, qkv


def _attn(config) -> ResearchAttention:
    return ResearchAttention.create_from_config(ResearchAttentionConfig([config]))


@pytest.mark.parametrize("length", [9, 37, 100])
def test_h2o_keeps_n_kept_per_head_with_the_recent_window(length):
    config = H2OConfig(0.5, recent_ratio=0.5)
    attn = _attn(config)
    prefill(attn, *qkv(4, 2, length, length, seed=length))
    kept = ~evicted_keys(attn)  # (B, Hkv, L)
    assert torch.all(kept.sum(-1) == n_kept(length, 0.5))
    recent = int(n_kept(length, 0.5) * 0.5)
    assert torch.all(kept[:, :, length - recent :])


def test_h2o_scores_are_the_column_sums_of_the_causal_attention():
    q, k, v = qkv(2, 2, 12, 12, seed=3)
    attn = _attn(H2OConfig(0.5, recent_ratio=0.0))
    prefill(attn, q, k, v)
    causal = torch.ones(12, 12).tril().bool()
    scores = (q @ k.transpose(-1, -2)) / 8**0.5
    weights = torch.softmax(scores.masked_fill(~causal, float("-inf")), -1).sum(2)  # (B, H, L)
    expected = torch.zeros_like(weights, dtype=torch.bool)
    expected.scatter_(-1, weights.topk(6, -1).indices, True)
    assert torch.equal(~evicted_keys(attn), expected)


def test_pyramidkv_budgets_shrink_with_depth_and_keep_the_total():
    config = PyramidKVConfig(0.5, window_size=2, kernel_size=3, num_layers=4, beta=2)
    attn = _attn(config)
    length = 40
    kept = []
    for layer in range(4):
        prefill(attn, *qkv(4, 2, length, length, seed=layer), layer=layer)
        kept.append(int((~evicted_keys(attn, layer))[0, 0].sum()))
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]
    assert abs(sum(kept) - 4 * n_kept(length, 0.5)) <= 4  # one key per layer
    assert kept == [pyramid_budget(length, 0.5, 2, 2, 4, layer) for layer in range(4)]


def test_pyramidkv_refuses_a_layer_past_num_layers():
    attn = _attn(PyramidKVConfig(0.5, num_layers=2))
    with pytest.raises(ValueError, match=r"PyramidKVConfig.num_layers=2 but layer 2"):
        prefill(attn, *qkv(2, 2, 20, 20, seed=0), layer=2)


@pytest.mark.parametrize(
    "config",
    [
        SnapKVConfig(0.5, window_size=4, head_budget="adaptive"),
        KNormConfig(0.75, head_budget="adaptive", alpha_safeguard=0.5),
        H2OConfig(0.6, head_budget="adaptive"),
    ],
    ids=repr,
)
@pytest.mark.parametrize("length", [9, 37, 100])
def test_adaptive_head_budget_holds_the_ratio_per_layer_and_the_safeguard(config, length):
    attn = _attn(config)
    prefill(attn, *qkv(4, 4, length, length, seed=length))
    kept = (~evicted_keys(attn)).sum(-1)  # (B, Hkv)
    budget = n_kept(length, config.compression_ratio)
    assert int(kept.sum()) == 4 * budget
    assert torch.all(kept >= int(budget * config.alpha_safeguard))


def test_adaptive_heads_differ_when_their_scores_differ():
    q, k, v = qkv(2, 2, 40, 40, seed=5)
    k[:, 0] *= 0.1  # head 0's keys all have small norms: KNorm keeps them first
    attn = _attn(KNormConfig(0.5, head_budget="adaptive", alpha_safeguard=0.2))
    prefill(attn, q, k, v)
    kept = (~evicted_keys(attn)).sum(-1)[0]
    assert int(kept[0]) > int(kept[1]) and int(kept[1]) >= int(20 * 0.2)


@pytest.mark.parametrize(
    "config",
    [
        H2OConfig(0.0),
        PyramidKVConfig(0.0, num_layers=2),
        SnapKVConfig(0.0, head_budget="adaptive"),
    ],
    ids=repr,
)
def test_compression_ratio_zero_equals_dense_exactly(config):
    q, k, v = qkv(4, 2, 12, 12, seed=1)
    q2, k2, v2 = qkv(4, 2, 3, 15, seed=2)
    k2[:, :, :12], v2[:, :, :12] = k, v
    evicting = _attn(config)
    prefill(evicting, q, k, v)
    out = evicting.custom_attention(None, q2, k2, v2, None, layer_idx=0, query_start=12)[0]
    dense = ResearchAttention([]).custom_attention(None, q2, k2, v2, None, layer_idx=0)[0]
    assert torch.equal(out, dense)


@pytest.mark.parametrize(
    "config",
    [H2OConfig(0.5), PyramidKVConfig(0.6, num_layers=2), SnapKVConfig(0.5, head_budget="adaptive")],
    ids=repr,
)
def test_an_evicted_key_never_reappears_later(config):
    attn = _attn(config)
    q, k, v = qkv(4, 2, 30, 30, seed=11)
    prefill(attn, q, k, v)
    evicted = evicted_keys(attn).repeat_interleave(2, dim=1)[:, :, None, :]
    keys, values, position = k, v, 30
    for n in (4, 1, 1):
        q2, k_new, v_new = qkv(4, 2, n, n, seed=position)
        keys, values = torch.cat([keys, k_new], dim=2), torch.cat([values, v_new], dim=2)
        _, weights = attn.custom_attention(
            None, q2, keys, values, None, layer_idx=0, query_start=position, output_attentions=True
        )
        assert not torch.any((weights[..., :30] != 0) & evicted)  # type: ignore[index]
        position += n


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: H2OConfig(0.5, recent_ratio=1.5), r"H2OConfig.recent_ratio .* \[0, 1\]"),
        (lambda: PyramidKVConfig(0.5, num_layers=0), r"PyramidKVConfig.num_layers must be"),
        (lambda: PyramidKVConfig(0.5, beta=0), r"PyramidKVConfig.beta must be"),
        (lambda: SnapKVConfig(0.5, head_budget="ada"), r"SnapKVConfig.head_budget must be one"),
        (lambda: KNormConfig(0.5, alpha_safeguard=2), r"KNormConfig.alpha_safeguard"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("name", "masker", "fields"),
    [
        ("h2o", "h2o", {"recent_ratio": 0.5}),
        ("pyramidkv", "pyramidkv", {"beta": 20, "num_layers": None, "window_size": 64}),
        ("adakv", "snapkv", {"head_budget": "adaptive", "alpha_safeguard": 0.2}),
    ],
)
def test_recipes_build_their_masker_with_the_papers_defaults(name, masker, fields):
    config = ResearchAttentionConfig.from_recipe(name, compression_ratio=0.25)
    (built,) = config.masker_configs
    assert built.compression_ratio == 0.25
    assert all(getattr(built, key) == value for key, value in fields.items())


def test_pyramidkv_spans_the_models_layers_by_default(tiny_model_dir: str) -> None:
    """Without num_layers the schedule spans the model's num_hidden_layers (as kvpress reads
    it); outside a model that count is unknown: a clear error."""
    from sparse_attention_hub.adapters import ModelAdapterHF

    config = PyramidKVConfig(0.5, window_size=2, kernel_size=3, beta=2)
    adapter = ModelAdapterHF(tiny_model_dir, ResearchAttentionConfig([config]), device="cpu")
    layers = adapter.model.config.num_hidden_layers
    ids = list(range(10, 70))
    with torch.inference_mode():
        adapter.prefill_context(adapter.new_context(), ids)
    attn = adapter.research_attention
    kept = [int((~evicted_keys(attn, layer))[0, 0].sum()) for layer in range(layers)]
    assert kept == [pyramid_budget(len(ids), 0.5, 2, 2, layers, i) for i in range(layers)]
    assert kept[0] > kept[-1]
    with pytest.raises(ValueError, match=r"num_layers is None .* no model config"):
        prefill(_attn(config), *qkv(2, 2, 20, 20, seed=0))
