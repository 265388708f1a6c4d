"""The built-in maskers against hand-built expectations, and their shared properties."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    Mask,
    ResearchAttention,
    ResearchAttentionConfig,
    masked_attention,
)
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    OracleTopK,
    OracleTopKConfig,
    OracleTopPMasker,
    OracleTopPMaskerConfig,
    RandomSamplingMasker,
    RandomSamplingMaskerConfig,
    SinkMaskerConfig,
    available_maskers,
    create_masker,
    masker_class,
)
from sparse_attention_hub.sparse_attention.maskers.examples import (
    ARTEFACT_EXAMPLES,
    example_masker_configs,
)


def qkv(b, h, h_kv, q, k, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, h, q, d, generator=g),
        torch.randn(b, h_kv, k, d, generator=g),
        torch.randn(b, h_kv, k, d, generator=g),
    )


def add(config, q, k, v, previous, attention_mask=None):
    masker = create_masker(config)
    return masker.add_mask(AttentionInputs(q, k, v, attention_mask, layer_idx=0), previous)


def expected_sink_local(q_len, k_len, sink, window):
    """Hand-built (Q, K) 0/1 grid: keys < sink, and keys in (pos - window, pos]."""

    def tokens(size):
        return (
            min(k_len, max(1, int(size * k_len))) if isinstance(size, float) else min(size, k_len)
        )

    s, w = tokens(sink), tokens(window)
    grid = torch.zeros(q_len, k_len)
    for i in range(q_len):
        pos = k_len - q_len + i
        for j in range(k_len):
            if j < s or pos - w < j <= pos:
                grid[i, j] = 1.0
    return grid


@pytest.mark.parametrize(
    "q_len, k_len, sink, window",
    [
        (1, 10, 2, 3),
        (4, 10, 2, 3),
        (3, 8, 0, 2),
        (3, 8, 2, 0),
        (5, 12, 4, 4),  # sink and window overlap for the early rows
        (2, 6, 1, 6),  # window == K
        (3, 6, 1, 50),  # window > K, Q > 1: still causal
        (1, 6, 1, 50),  # window > K, Q == 1: full
        (3, 6, 9, 1),  # sink > K
        (4, 20, 0.1, 0.25),  # float sizes
        (2, 7, 0.01, 1.0),  # tiny fraction is at least one token
    ],
)
def test_sink_plus_local_equals_hand_built_mask(q_len, k_len, sink, window):
    q, k, v = qkv(2, 4, 2, q_len, k_len)
    attn = ResearchAttention.create_from_config(
        ResearchAttentionConfig([SinkMaskerConfig(sink), LocalMaskerConfig(window)])
    )
    mask = attn.build_mask(AttentionInputs(q, k, v))
    expected = expected_sink_local(q_len, k_len, sink, window).expand(2, 4, q_len, k_len)
    assert torch.equal(mask.to_dense(), expected), mask.render()


def test_local_keeps_entries_of_earlier_maskers():
    q, k, v = qkv(1, 1, 1, 2, 6)
    previous = Mask.from_dense(torch.tensor([0.5, 0, 0, 0, 0, 0]).expand(1, 1, 2, 6))
    out = add(LocalMaskerConfig(2), q, k, v, previous)
    assert out.render() == "+..##.\n+...##"


def test_oracle_top_k_at_least_k_is_dense_attention():
    q, k, v = qkv(2, 4, 2, 3, 9)
    dense, _ = masked_attention(q, k, v)
    for heavy in (9, 100, 1.0):
        attn = ResearchAttention.create_from_config(
            ResearchAttentionConfig([OracleTopKConfig(heavy)])
        )
        out, _ = attn.custom_attention(None, q, k, v, None, None, 0.0)
        torch.testing.assert_close(out, dense, atol=1e-6, rtol=0)


def test_oracle_top_k_selects_exactly_the_top_scores_among_inactive_keys():
    b, h, h_kv, q_len, k_len, heavy = 2, 4, 2, 3, 20, 5
    q, k, v = qkv(b, h, h_kv, q_len, k_len, d=8, seed=1)
    previous = add(SinkMaskerConfig(2), q, k, v, Mask.create_empty((b, h, q_len, k_len)))
    mask = add(OracleTopKConfig(heavy), q, k, v, previous).to_dense()
    scores = q @ k.repeat_interleave(h // h_kv, 1).transpose(-1, -2)
    scores[..., :2] = float("-inf")  # already active
    top = scores.topk(heavy, dim=-1).indices
    expected = torch.zeros_like(mask).scatter_(-1, top, 1.0)
    expected[..., :2] = 1.0
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fill", ["bool", float("-inf"), "finfo.min"])
@pytest.mark.parametrize("heavy", [5, 0.9])
def test_oracle_top_k_never_adds_keys_the_attention_mask_forbids(fill, dtype, heavy):
    q, k, v = qkv(1, 2, 2, 2, 6, seed=2)
    allowed = (torch.arange(6) < 3).expand(1, 1, 2, 6)
    if fill == "bool":
        bias = allowed
    else:
        value = torch.finfo(dtype).min if fill == "finfo.min" else fill
        bias = torch.zeros(1, 1, 2, 6, dtype=dtype).masked_fill(~allowed, value)
    before = bias.clone()
    empty = Mask.create_empty((1, 2, 2, 6))
    mask = add(OracleTopKConfig(heavy), q, k, v, empty, bias).to_dense()
    assert torch.all(mask[..., :3] == 1) and torch.all(mask[..., 3:] == 0)
    assert torch.equal(bias, before)  # the caller's attention mask is not edited


@pytest.mark.parametrize("top_p", [0.3, 0.6, 0.9, 0.999])
@pytest.mark.parametrize("k_len", [30, 3000])  # 3000: the partial selection grows its k
@pytest.mark.parametrize("q_len", [1, 3])  # 1: a decode step sorts each row once
def test_oracle_top_p_reaches_the_mass_with_a_minimal_set(top_p, k_len, q_len, device_path):
    b, h = 1, 2
    q, k, v = qkv(b, h, h, q_len, k_len, d=8, seed=3)
    q = q * 2  # peakier distributions
    previous = add(SinkMaskerConfig(1), q, k, v, Mask.create_empty((b, h, q_len, k_len)))
    mask = add(OracleTopPMaskerConfig(top_p), q, k, v, previous).to_dense()
    probs = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    assert torch.all(mask[..., 0] == 1)  # the sink stays
    for row_p, row_m in zip(probs.reshape(-1, k_len), mask.reshape(-1, k_len), strict=True):
        chosen = row_m > 0
        added = chosen.clone()
        added[0] = False
        assert row_p[chosen].sum() >= top_p - 1e-6
        if added.any():
            smallest = row_p[added].min()
            assert row_p[chosen].sum() - smallest < top_p + 1e-6  # minimal
            if (~chosen).any():  # the most probable keys were taken
                assert row_p[~chosen].max() <= smallest


def test_oracle_top_p_extremes():
    q, k, v = qkv(1, 2, 2, 2, 8, seed=4)
    empty = Mask.create_empty((1, 2, 2, 8))
    assert add(OracleTopPMaskerConfig(0.0), q, k, v, empty).is_empty()
    assert add(OracleTopPMaskerConfig(1.0), q, k, v, empty).is_full()


def test_random_sampling_draws_are_unbiased_inclusion_weights():
    """E[1{active} / p] == 1 for every key not already active: the basis of unbiasedness."""
    rate, seeds, shape = 0.3, 400, (1, 2, 2, 16)
    q, k, v = qkv(1, 2, 2, 2, 16, seed=5)
    previous = add(SinkMaskerConfig(2), q, k, v, Mask.create_empty(shape))
    total = torch.zeros(shape, dtype=torch.float64)
    for seed in range(seeds):
        torch.manual_seed(seed)
        probs = add(RandomSamplingMaskerConfig(rate), q, k, v, previous).to_dense().double()
        assert torch.all(probs[..., :2] == 1)
        assert set(probs[..., 2:].unique().tolist()) <= {0.0, float(torch.tensor(rate))}
        total += torch.where(probs > 0, 1 / probs, 0.0)
    mean = total / seeds
    assert torch.all(mean[..., :2] == 1)
    tolerance = 5 * math.sqrt((1 - rate) / rate / seeds)  # 5 standard errors of one entry
    assert torch.all((mean[..., 2:] - 1).abs() < tolerance)
    assert abs(float(mean[..., 2:].mean()) - 1) < 5 * math.sqrt(
        (1 - rate) / rate / seeds / mean[..., 2:].numel()
    )


def test_random_sampling_output_is_an_unbiased_estimate_of_dense_attention():
    """The mean output over many seeds is within a variance-derived tolerance of dense attention;
    the same masks used without the 1/p weights are not."""
    b, h, q_len, k_len, d, rate, seeds = 1, 2, 1, 48, 4, 0.5, 300
    q, k, v = qkv(b, h, h, q_len, k_len, d=d, seed=6)
    q = q * 0.3
    v = v + 2.0  # a shared offset makes the error of a wrong weighting visible
    dense, _ = masked_attention(q, k, v)
    attn = ResearchAttention.create_from_config(
        ResearchAttentionConfig([SinkMaskerConfig(4), RandomSamplingMaskerConfig(rate)])
    )
    outs, unweighted = [], []
    for seed in range(seeds):
        torch.manual_seed(seed)
        mask = attn.build_mask(AttentionInputs(q, k, v))
        outs.append(masked_attention(q, k, v, mask)[0])
        binary = Mask.from_dense((mask.to_dense() > 0).float())
        unweighted.append(masked_attention(q, k, v, binary)[0])
    outs_t = torch.stack(outs).double()
    standard_error = outs_t.std(dim=0) / math.sqrt(seeds)
    deviation = (outs_t.mean(dim=0) - dense.double()).abs()
    assert torch.all(deviation < 5 * standard_error + 1e-4), (deviation / standard_error).max()
    # Negative control: the sink keys are p=1 and the sampled ones carry 1/p; the same masks
    # without those weights over-weight the sinks, and the test tells the difference.
    wrong = (torch.stack(unweighted).double().mean(0) - dense.double()).abs()
    assert torch.any(wrong > 5 * standard_error + 1e-4), (wrong / standard_error).max()


def test_every_registered_masker_is_in_the_shared_list():
    """Each registered masker is in the shared list, or (it reads an artefact made for one
    model) has a builder in ARTEFACT_EXAMPLES that the rollback law and its tests run."""
    names = {masker_class(c).name for c in example_masker_configs()}
    assert names.isdisjoint(ARTEFACT_EXAMPLES)
    assert names | set(ARTEFACT_EXAMPLES) == set(available_maskers())


CONFIGS = example_masker_configs()


@st.composite
def problems(draw):
    b, h_kv, group = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    q_len, k_len = draw(st.integers(1, 4)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    levels = draw(st.sampled_from([(0.0,), (0.0, 1.0), (0.0, 1.0, 0.4), (1.0,)]))
    g = torch.Generator().manual_seed(seed)
    shape = (b, h_kv * group, q_len, k_len)
    previous = torch.tensor(levels)[torch.randint(0, len(levels), shape, generator=g)]
    q, k, v = qkv(b, h_kv * group, h_kv, q_len, k_len, seed=seed)
    with_mask = draw(st.booleans())
    bias = None
    if with_mask:
        pos = torch.arange(k_len - q_len, k_len).unsqueeze(-1)
        bias = torch.zeros(1, 1, q_len, k_len).masked_fill(torch.arange(k_len) > pos, float("-inf"))
    return q, k, v, previous, bias


@pytest.mark.parametrize("config", CONFIGS, ids=[repr(c) for c in CONFIGS])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems())
def test_maskers_are_additive(config, problem):
    """Entries active in previous_mask stay active with at least their probability, and the
    previous mask's tensor is never modified."""
    q, k, v, previous, bias = problem
    prev_mask = Mask.from_dense(previous)
    saved = previous.clone()
    new = add(config, q, k, v, prev_mask, bias)
    assert new.shape == prev_mask.shape
    dense = new.to_dense()
    assert torch.all(dense >= previous) and torch.all(dense <= 1) and torch.all(dense >= 0)
    assert torch.equal(prev_mask.dense_view(), saved)
    if new.dense_view() is not None:
        assert new.dense_view().data_ptr() != prev_mask.dense_view().data_ptr()


def test_maskers_from_an_empty_and_a_full_mask():
    q, k, v = qkv(1, 2, 1, 2, 7)
    for config in CONFIGS:
        assert add(config, q, k, v, Mask.create_full((1, 2, 2, 7))).is_full()
        assert add(config, q, k, v, Mask.create_empty((1, 2, 2, 7))).shape == (1, 2, 2, 7)


def test_topk_template_classes():
    assert issubclass(OracleTopK, masker_class(OracleTopKConfig(1)))
    assert not OracleTopPMasker.is_sampling and RandomSamplingMasker.is_sampling


@pytest.mark.parametrize("fill", ["bool", float("-inf"), torch.finfo(torch.float32).min])
def test_random_sampling_never_draws_forbidden_keys(fill):
    q, k, v = qkv(1, 2, 2, 3, 10, seed=7)
    allowed = torch.arange(10) <= torch.arange(7, 10).unsqueeze(-1)  # causal (Q, K)
    bias = allowed if fill == "bool" else torch.zeros(3, 10).masked_fill(~allowed, fill)
    torch.manual_seed(0)
    mask = add(
        RandomSamplingMaskerConfig(0.9), q, k, v, Mask.create_empty((1, 2, 3, 10)), bias[None, None]
    )
    active = mask.to_dense() > 0
    assert not torch.any(active & ~allowed) and torch.any(active)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    problem=problems(),
    chain=st.lists(st.sampled_from(CONFIGS), max_size=3).filter(
        lambda c: (
            sum(masker_class(x).is_sampling for x in c) <= 1
            and not any(masker_class(x).is_sampling for x in c[:-1])
        )
    ),
)
def test_any_chain_gives_finite_attention_with_the_right_shape(problem, chain):
    q, k, v, _, bias = problem
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig(chain))
    out, weights = attn.custom_attention(
        None, q, k, v, bias, None, 0.0, layer_idx=0, output_attentions=True
    )
    b, h, q_len, d = q.shape
    assert out.shape == (b, q_len, h, d) and torch.isfinite(out).all()
    assert weights is not None and torch.isfinite(weights).all()
    sums = weights.sum(-1)
    assert torch.all(((sums - 1).abs() < 1e-4) | (sums == 0))  # rows sum to 1, or are empty
