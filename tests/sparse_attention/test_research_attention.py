"""ResearchAttention: the control path, shapes, layer index, and gated metrics."""

import pytest
import torch
import torch.nn.functional as F

import sparse_attention_hub.sparse_attention.research_attention as ra
from sparse_attention_hub.metric_logging import MicroMetricLogger, load_micro_metrics
from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.attention import masked_attention
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    OracleTopKConfig,
    SinkMaskerConfig,
    create_masker,
)

METRICS = [ra.DENSITY_METRIC, ra.OUTPUT_ERROR_METRIC]


def qkv(b=1, h=4, h_kv=2, q=2, k=16, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, h, q, d, generator=g),
        torch.randn(b, h_kv, k, d, generator=g),
        torch.randn(b, h_kv, k, d, generator=g),
    )


def sparse_attention():
    return ResearchAttention.create_from_config(
        ResearchAttentionConfig([SinkMaskerConfig(2), LocalMaskerConfig(3), OracleTopKConfig(2)])
    )


@pytest.fixture
def metric_logger(tmp_path):
    logger = MicroMetricLogger()
    registry = MicroMetricLogger.get_registered_metrics()
    for name in METRICS:
        MicroMetricLogger.register_metric(name, float)
    yield logger
    MicroMetricLogger._reset_for_tests(registry={**registry, **{m: float for m in METRICS}})


def test_empty_masker_list_is_dense_attention_through_the_same_path():
    q, k, v = qkv(b=2, q=3)
    bias = torch.zeros(2, 1, 3, 16)
    bias[1, ..., :4] = float("-inf")
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([]))
    out, weights = attn.custom_attention(None, q, k, v, bias, None, 0.0)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=True)
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-5, rtol=0)
    assert weights is None


def test_output_shape_dtype_weights_and_layer_idx_from_module():
    q, k, v = qkv()
    module = torch.nn.Module()
    module.layer_idx = 3  # type: ignore[assignment]
    out, weights = sparse_attention().custom_attention(
        module, q.half(), k.half(), v.half(), None, 0.5, 0.0, output_attentions=True
    )
    assert out.shape == (1, 2, 4, 8) and out.dtype == torch.float16
    assert weights is not None and weights.shape == (1, 4, 2, 16)
    torch.testing.assert_close(weights.float().sum(-1), torch.ones(1, 4, 2), atol=1e-3, rtol=0)
    assert int((weights > 0).sum(-1).max()) <= 2 + 3 + 2


def test_s_aux_sinks_are_used():
    q, k, v = qkv()
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([]))
    plain, _ = attn.custom_attention(None, q, k, v, None, None, 0.0)
    sunk, _ = attn.custom_attention(None, q, k, v, None, None, 0.0, s_aux=torch.full((4,), 3.0))
    assert sunk.norm() < plain.norm()


def test_metrics_are_logged_with_layer_idx(metric_logger, tmp_path):
    metric_logger.configure_logging(tmp_path, enabled_metrics=METRICS)
    q, k, v = qkv()
    out, _ = sparse_attention().custom_attention(None, q, k, v, None, None, 0.0, layer_idx=5)
    metric_logger.flush()
    frame = load_micro_metrics(tmp_path)
    values = dict(zip(frame["metric"], frame["value"], strict=True))
    assert set(values) == set(METRICS) and list(frame["layer_idx"]) == [5, 5]
    assert values[ra.DENSITY_METRIC] == pytest.approx(7 / 16)
    dense, _ = ResearchAttention([]).custom_attention(None, q, k, v, None, None, 0.0)
    expected = float((out - dense).norm() / dense.norm())
    assert values[ra.OUTPUT_ERROR_METRIC] == pytest.approx(expected, rel=1e-4)
    assert 0 < expected < 1


def count_calls(monkeypatch, name):
    calls = []
    original = getattr(ra, name)

    def counting(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(ra, name, counting)
    return calls


def test_no_dense_pass_and_no_metric_work_when_metrics_are_disabled(
    metric_logger, monkeypatch, tmp_path
):
    metric_logger.configure_logging(tmp_path, enabled_metrics=[ra.DENSITY_METRIC])
    dense_calls = count_calls(monkeypatch, "dense_reference_output")
    attention_calls = count_calls(monkeypatch, "masked_attention")
    q, k, v = qkv()
    attn = sparse_attention()
    attn.custom_attention(None, q, k, v, None, None, 0.0, layer_idx=0)
    assert dense_calls == [] and len(attention_calls) == 1
    metric_logger.enable_metrics(None)
    attn.custom_attention(None, q, k, v, None, None, 0.0, layer_idx=0)
    assert dense_calls == [] and len(attention_calls) == 2
    metric_logger.enable_metrics(METRICS)
    attn.custom_attention(None, q, k, v, None, None, 0.0, layer_idx=0)
    assert len(dense_calls) == 1
    metric_logger.flush()
    assert list(load_micro_metrics(tmp_path)["metric"]).count(ra.DENSITY_METRIC) == 2


def test_scores_are_computed_once_per_call(monkeypatch):
    import sparse_attention_hub.sparse_attention.attention as attention_module

    calls = []
    original = attention_module.attention_scores

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(attention_module, "attention_scores", counting)
    q, k, v = qkv()
    sparse_attention().custom_attention(None, q, k, v, None, None, 0.0)
    assert len(calls) == 1


@pytest.mark.parametrize("h, h_kv", [(4, 4), (4, 2)])
def test_sink_local_attention_equals_sdpa_with_the_same_boolean_mask(h, h_kv):
    """End to end with a causal mask and Q > 1: sparse attention is SDPA restricted to the
    hand-built sink + window pattern (intersected with the causal mask)."""
    b, q_len, k_len, sink, window = 2, 4, 12, 2, 3
    q, k, v = qkv(b=b, h=h, h_kv=h_kv, q=q_len, k=k_len)
    pos = torch.arange(k_len - q_len, k_len).unsqueeze(-1)
    key = torch.arange(k_len)
    causal = key <= pos  # (Q, K)
    pattern = (key < sink) | ((key <= pos) & (key > pos - window))
    attn = ResearchAttention.create_from_config(
        ResearchAttentionConfig([SinkMaskerConfig(sink), LocalMaskerConfig(window)])
    )
    out, _ = attn.custom_attention(None, q, k, v, causal[None, None], None, 0.0, layer_idx=0)
    expected = F.scaled_dot_product_attention(
        q, k, v, attn_mask=(pattern & causal)[None, None], enable_gqa=h != h_kv
    )
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-5, rtol=0)


def test_score_cache_recomputes_for_other_inputs():
    from sparse_attention_hub.sparse_attention import ScoreCache, attention_scores

    q, k, _ = qkv()
    cache = ScoreCache()
    first = cache.get(q, k, None, None)
    assert cache.get(q, k, None, None) is first
    other = cache.get(q, k, 0.5, None)
    assert other is not first
    torch.testing.assert_close(other, attention_scores(q, k, 0.5))


def test_unknown_attention_argument_is_an_error_naming_it_and_the_module():
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)

    class Gemma9Attention(torch.nn.Module):
        layer_idx = 0

    attn = ResearchAttention([])
    with pytest.raises(ValueError, match=r"Gemma9Attention.*'cu_seq_lens_q'"):
        attn.custom_attention(Gemma9Attention(), q, k, v, None, cu_seq_lens_q=torch.tensor([0, 3]))
    # None (not used by this model) and the known pass-through arguments are fine
    attn.custom_attention(None, q, k, v, None, cu_seq_lens_q=None, use_cache=True, softcap=None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_query_blocks_and_kv_chunks_change_nothing(dtype):
    """Blocks of queries (a tiny score budget) give the same outputs and weights, also with
    the keys of a sliding layer starting past position 0."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 4, 7, 8, generator=g).to(dtype)
    k = torch.randn(1, 2, 20, 8, generator=g).to(dtype)
    v = torch.randn(1, 2, 20, 8, generator=g).to(dtype)
    causal = torch.ones(7, 20, dtype=torch.bool).tril(13)[None, None]  # (1, 1, Q, K)
    cfg = ResearchAttentionConfig(
        [SinkMaskerConfig(sink_size=2), LocalMaskerConfig(window_size=3), OracleTopKConfig(4)]
    )
    whole = ResearchAttention.create_from_config(cfg)
    budget = 2 * (2 * 4 * 20 * ra.BLOCK_BYTES_PER_ENTRY)  # 2 rows
    blocked = ResearchAttention(whole.maskers, score_budget_bytes=budget)
    assert blocked.query_block_size(AttentionInputs(q, k, v)) == 2
    args = (None, q, k, v, causal, None, 0.0)
    ref, ref_w = whole.custom_attention(*args, query_start=30, output_attentions=True)
    with blocked.record_masks() as masks:
        out, w = blocked.custom_attention(*args, query_start=30, output_attentions=True)
    assert [m.shape[2] for _, m in masks] == [2, 2, 2, 1]
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, ref_w)
    with pytest.raises(ValueError, match="score_budget_bytes"):
        ResearchAttention([], score_budget_bytes=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kv_chunks_change_nothing(dtype):
    q, k, v = (t.to(dtype) for t in qkv(q=3, k=21))
    ref, _ = masked_attention(q, k, v)
    for chunk_bytes in (1, 2 * 8 * 4 * 5, 2**20):  # 1, 5 and all keys per chunk
        out, _ = masked_attention(q, k, v, chunk_bytes=chunk_bytes)
        torch.testing.assert_close(out, ref)


def test_kv_upcast_is_one_op_group_when_k_fits_the_budget():
    """bf16 K/V that fit the chunk budget are upcast at once: the ops of a call do not grow
    with K (a GPU would launch one group of kernels per chunk)."""
    from tests.support.op_count import count_ops

    counts = []
    for k_len in (2048, 32768):
        q, k, v = (t.to(torch.bfloat16) for t in qkv(q=1, k=k_len))
        counts.append(count_ops(lambda: masked_attention(q, k, v)).total)  # noqa: B023
    assert counts[0] == counts[1]


def test_a_stateful_chain_runs_in_query_blocks_with_the_state_of_the_call():
    """A chain with a stateful masker runs its queries in blocks like any other (its memory
    is block x K, not Q x K): the state advances once per call, on the call's keys, and every
    block reads it; outputs equal one whole block."""
    from tests.support.maskers import KeyMaxTopK, KeyMaxTopKConfig

    q, k, v = qkv(q=7, k=20)
    maskers = [SinkMaskerConfig(2), LocalMaskerConfig(3)]
    whole = ResearchAttention([*map(create_masker, maskers), KeyMaxTopK(KeyMaxTopKConfig(4))])
    budget = 2 * (2 * 4 * 20 * ra.BLOCK_BYTES_PER_ENTRY)  # 2 query rows per block
    blocked = ResearchAttention(whole.maskers, score_budget_bytes=budget)
    builds = []
    original = KeyMaxTopK.build_state
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            KeyMaxTopK, "build_state", lambda self, i: builds.append(1) or original(self, i)
        )
        ref, _ = whole.custom_attention(None, q, k, v, None, layer_idx=0)
        with blocked.record_masks() as masks:
            out, _ = blocked.custom_attention(None, q, k, v, None, layer_idx=0)
    assert [m.shape[2] for _, m in masks] == [2, 2, 2, 1]
    assert len(builds) == 2  # one per call, not one per block
    torch.testing.assert_close(out, ref)


def test_the_score_budget_bounds_the_block_not_only_its_scores():
    """At the default budget a block's rows leave room for the masks, a temporary the size
    of the scores and the K/V chunk: rows x H x K x 4 bytes is at most a fifth of the budget."""
    q, k, v = qkv(b=1, h=32, h_kv=8, q=256, k=32768, d=2)
    attn = sparse_attention()
    rows = attn.query_block_size(AttentionInputs(q, k, v))
    assert rows * 32 * 32768 * 4 <= attn.score_budget_bytes / 5
    assert rows >= 1


def test_dense_layers_get_full_attention_through_the_same_path_and_others_stay_sparse():
    q, k, v = qkv(q=1, k=32)
    config = ResearchAttentionConfig(
        [SinkMaskerConfig(2), LocalMaskerConfig(3), OracleTopKConfig(2)], dense_layers=[0, 2]
    )
    attn = ResearchAttention.create_from_config(config)
    dense = ResearchAttention.create_from_config(ResearchAttentionConfig([]))
    with attn.record_masks() as masks:
        outs = {i: attn.custom_attention(None, q, k, v, None, layer_idx=i)[0] for i in range(3)}
    reference, _ = dense.custom_attention(None, q, k, v, None, layer_idx=0)
    assert [mask.is_full() for _, mask in masks] == [True, False, True]
    assert torch.equal(outs[0], reference) and torch.equal(outs[2], reference)
    assert not torch.allclose(outs[1], reference, atol=1e-3)
