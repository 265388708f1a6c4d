"""KV-cache eviction maskers on the research attention directly: ratio, permanence,
composition, ratio 0 = dense, query-aware states, configs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_attention_hub.metric_logging import MicroMetricLogger, load_micro_metrics
from sparse_attention_hub.sparse_attention import AttentionInputs, ResearchAttention
from sparse_attention_hub.sparse_attention.maskers import (
    KNormConfig,
    LocalMaskerConfig,
    OracleTopKConfig,
    QuestConfig,
    SinkMaskerConfig,
    SnapKVConfig,
    TOVAConfig,
    create_masker,
)
from sparse_attention_hub.sparse_attention.maskers.eviction import RATIO_METRIC, n_kept
from sparse_attention_hub.sparse_attention.research_config import ResearchAttentionConfig

EVICTIONS = [
    SnapKVConfig(0.5, window_size=4, kernel_size=3),
    SnapKVConfig(0.75, window_size=64),  # longer than the context: the window is what exists
    KNormConfig(0.3),
    TOVAConfig(0.6),
]


def qkv(h: int, h_kv: int, q: int, k: int, seed: int, d: int = 8) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(1, h, q, d, generator=g),
        torch.randn(1, h_kv, k, d, generator=g),
        torch.randn(1, h_kv, k, d, generator=g),
    )


def prefill(attn: ResearchAttention, q, k, v, layer: int = 0) -> None:
    """The context prefill of one layer: every context query over every context key."""
    attn.observe_prefill(None, q, k, v, None, layer_idx=layer, query_start=0)


def evicted_keys(attn: ResearchAttention, layer: int = 0) -> torch.Tensor:
    """(B, Hkv, L) bool: the context keys the first masker's state evicted."""
    entry = attn.states.entry(layer, attn.maskers[0])  # type: ignore[arg-type]
    assert entry is not None and entry.value.keep is not None
    return ~entry.value.keep


@pytest.mark.parametrize("config", EVICTIONS, ids=repr)
@pytest.mark.parametrize("length", [9, 37, 100])
def test_realized_ratio_equals_nominal_to_one_key_per_head(config, length):
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([config]))
    q, k, v = qkv(4, 2, length, length, seed=length)
    prefill(attn, q, k, v)
    removed = evicted_keys(attn).sum(-1)  # (B, Hkv)
    assert torch.all(removed == length - n_kept(length, config.compression_ratio))
    realized = removed.float() / length
    assert torch.all((realized - config.compression_ratio).abs() <= 1 / length)


def test_the_realized_ratio_is_logged_per_layer(tmp_path):
    logger = MicroMetricLogger()
    logger.configure_logging(tmp_path, [RATIO_METRIC])
    try:
        attn = ResearchAttention.create_from_config(ResearchAttentionConfig([KNormConfig(0.5)]))
        for layer in range(2):
            prefill(attn, *qkv(2, 2, 10, 10, seed=layer), layer=layer)
        logger.flush()
    finally:
        logger.enable_metrics(None)
    frame = load_micro_metrics(tmp_path)
    rows = frame[frame.metric == RATIO_METRIC]
    assert sorted(rows.layer_idx) == [0, 1]
    assert all(abs(value - 0.5) < 1e-6 for value in rows.value)


@pytest.mark.parametrize("config", [SnapKVConfig(0.0), KNormConfig(0.0), TOVAConfig(0.0)], ids=repr)
def test_compression_ratio_zero_equals_dense_exactly(config):
    q, k, v = qkv(4, 2, 12, 12, seed=1)
    q2, k2, v2 = qkv(4, 2, 3, 15, seed=2)
    k2[:, :, :12], v2[:, :, :12] = k, v
    evicting = ResearchAttention.create_from_config(ResearchAttentionConfig([config]))
    prefill(evicting, q, k, v)
    dense = ResearchAttention([])
    out = evicting.custom_attention(None, q2, k2, v2, None, layer_idx=0, query_start=12)[0]
    assert torch.equal(out, dense.custom_attention(None, q2, k2, v2, None, layer_idx=0)[0])


def test_an_eviction_alone_is_dense_attention_over_the_survivors():
    q, k, v = qkv(4, 2, 20, 20, seed=3)
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([KNormConfig(0.5)]))
    prefill(attn, q, k, v)
    evicted = torch.cat([evicted_keys(attn), torch.zeros(1, 2, 1, dtype=torch.bool)], dim=2)
    q2, k2, v2 = qkv(4, 2, 1, 21, seed=4)
    k2[:, :, :20], v2[:, :, :20] = k, v
    with attn.record_masks() as masks:
        out, weights = attn.custom_attention(
            None, q2, k2, v2, None, layer_idx=0, query_start=20, output_attentions=True
        )
    per_head = evicted.repeat_interleave(2, dim=1)[:, :, None, :]  # (B, H, 1, K)
    assert torch.equal(masks[0][1].to_dense() > 0, ~per_head)
    assert torch.all(weights[per_head] == 0)  # type: ignore[index]
    bias = torch.zeros(1, 4, 1, 21).masked_fill(per_head, float("-inf"))
    expected = ResearchAttention([]).custom_attention(None, q2, k2, v2, bias, layer_idx=0)[0]
    torch.testing.assert_close(out, expected)


def test_quest_after_snapkv_never_selects_an_evicted_key():
    """[snapkv, quest]: Quest's pages and picks are among SnapKV's survivors only."""
    q, k, v = qkv(4, 2, 64, 64, seed=5)
    chain = [SnapKVConfig(0.5, window_size=8), QuestConfig(token_budget=16, page_size=4)]
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig(chain))
    prefill(attn, q, k, v)
    evicted = evicted_keys(attn).repeat_interleave(2, dim=1)  # (B, H, 64)
    for step in range(4):
        q2, k2, v2 = qkv(4, 2, 1, 65 + step, seed=10 + step)
        k2[:, :, :64], v2[:, :, :64] = k, v
        with attn.record_masks() as masks:
            attn.custom_attention(None, q2, k2, v2, None, layer_idx=0, query_start=64 + step)
        active = masks[0][1].to_dense()[:, :, 0] > 0  # (B, H, K)
        assert not torch.any(active[:, :, :64] & evicted)
        assert 0 < int(active.sum()) < active.numel()  # Quest chose, and not everything
    # Without the eviction Quest does pick evicted keys here: the test can tell.
    quest = ResearchAttention.create_from_config(ResearchAttentionConfig(chain[1:]))
    with quest.record_masks() as masks:
        quest.custom_attention(None, q2, k2, v2, None, layer_idx=0, query_start=67)
    assert torch.any((masks[0][1].to_dense()[:, :, 0, :64] > 0) & evicted)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=st.sampled_from(EVICTIONS),
    after=st.lists(
        st.sampled_from([SinkMaskerConfig(3), LocalMaskerConfig(4), OracleTopKConfig(5)]),
        max_size=2,
    ),
    length=st.integers(4, 40),
    steps=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
)
def test_an_evicted_key_never_reappears_in_a_later_mask(config, after, length, steps, seed):
    """Permanence: over any later calls (question blocks, then tokens), whatever the maskers
    after the eviction, no mask and no softmax weight holds an evicted context key."""
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([config, *after]))
    q, k, v = qkv(4, 2, length, length, seed=seed)
    prefill(attn, q, k, v)
    evicted = evicted_keys(attn).repeat_interleave(2, dim=1)[:, :, None, :]  # (B, H, 1, L)
    keys, values, position = k, v, length
    for n in steps:
        q2, k_new, v_new = qkv(4, 2, n, n, seed=seed + position)
        keys, values = torch.cat([keys, k_new], dim=2), torch.cat([values, v_new], dim=2)
        with attn.record_masks() as masks:
            _, weights = attn.custom_attention(
                None,
                q2,
                keys,
                values,
                None,
                layer_idx=0,
                query_start=position,
                output_attentions=True,
            )
        mask = masks[0][1].to_dense()
        assert not torch.any((mask[..., :length] > 0) & evicted)
        assert not torch.any((weights[..., :length] != 0) & evicted)  # type: ignore[index]
        position += n


def test_query_aware_decides_on_the_question_and_a_rollback_undoes_it():
    config = SnapKVConfig(0.5, window_size=6, query_aware=True)
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([config]))
    q, k, v = qkv(2, 2, 30, 30, seed=7)
    prefill(attn, q, k, v)
    masker = attn.maskers[0]
    entry = attn.states.entry(0, masker)  # type: ignore[arg-type]
    assert entry is not None and entry.value.keep is None  # undecided before the question
    q2, k2, v2 = qkv(2, 2, 4, 34, seed=8)
    k2[:, :, :30], v2[:, :, :30] = k, v
    with attn.record_masks() as masks:
        attn.custom_attention(None, q2, k2, v2, None, layer_idx=0, query_start=30)
    assert masks[0][1].is_full()  # the question attends densely
    state = attn.states.entry(0, masker).value  # type: ignore[arg-type, union-attr]
    assert state.keep is not None and int((~state.keep).sum()) == 2 * 15
    # The decision equals one made on the window (last 2 context queries + the question).
    window = torch.cat([q[:, :, -2:], q2], dim=2)
    inputs = AttentionInputs(q2, k2, v2, layer_idx=0, query_start=30)
    assert torch.equal(state.keep, masker.decide(inputs, window, 28, 30))  # type: ignore[attr-defined]
    attn.states.truncate(30)  # rollback to the context: the next question decides again
    assert attn.states.entry(0, masker).value.keep is None  # type: ignore[union-attr, arg-type]


def test_an_eviction_masker_adds_no_entry_itself():
    q, k, v = qkv(2, 2, 3, 10, seed=9)
    masker = create_masker(KNormConfig(0.5))
    from sparse_attention_hub.sparse_attention import Mask

    out = masker.add_mask(AttentionInputs(q, k, v, layer_idx=0), Mask.create_empty((1, 2, 3, 10)))
    assert out.is_empty()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: KNormConfig(1.0), r"KNormConfig.compression_ratio .* \[0, 1\), got 1.0"),
        (lambda: TOVAConfig(-0.1), r"TOVAConfig.compression_ratio"),
        (lambda: SnapKVConfig(0.5, kernel_size=4), r"SnapKVConfig.kernel_size must be odd"),
        (lambda: SnapKVConfig(0.5, window_size=0), r"SnapKVConfig.window_size must be an int"),
        (lambda: KNormConfig(0.5, query_aware="yes"), r"KNormConfig.query_aware must be a bool"),  # type: ignore[arg-type]
    ],
)
def test_bad_configs_are_refused_naming_the_field(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("name", ["snapkv", "knorm", "tova"])
def test_eviction_recipes_build_their_masker_with_the_papers_defaults(name):
    config = ResearchAttentionConfig.from_recipe(name, compression_ratio=0.25, query_aware=True)
    (masker,) = config.masker_configs
    assert masker.compression_ratio == 0.25 and masker.query_aware is True
    if name == "snapkv":
        assert (masker.window_size, masker.kernel_size) == (64, 5)
