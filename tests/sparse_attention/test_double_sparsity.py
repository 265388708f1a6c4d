"""Double Sparsity: the budget, forbidden keys, quantisation, ties, channel files, state and
recall on a real tiny model's attention with channels calibrated on that model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    MaskerStates,
    ResearchAttention,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.attention import masked_attention
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers import DoubleSparsityConfig, create_masker, topk
from sparse_attention_hub.sparse_attention.maskers.double_sparsity import (
    LabelCache,
    pseudo_quantize,
    top_k_earliest,
)
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
    layer_key,
    random_channel_table,
    write_channel_file,
)
from sparse_attention_hub.sparse_attention.maskers.examples import ARTEFACT_EXAMPLES, ModelShape
from tests.support.captured import oracle_top, question_calls
from tests.support.tensors import random_qkv as qkv


@pytest.fixture
def channel_file(tmp_path: Path):
    """(heads, kv_heads, head_dim) -> a random channel file for one layer of that shape."""

    def make(h: int, h_kv: int, d: int = 8, seed: int = 0) -> str:
        table = random_channel_table(1, h, h_kv, d, seed=seed)
        return str(write_channel_file(tmp_path / f"ch_{h}_{h_kv}_{d}_{seed}.json", table))

    return make


def ds_mask(config, q, k, v, attention_mask=None, query_start=None, previous=None):
    inputs = AttentionInputs(q, k, v, attention_mask, layer_idx=0, query_start=query_start)
    previous = previous if previous is not None else Mask.create_empty(inputs.mask_shape)
    return create_masker(config).add_mask(inputs, previous).to_dense() > 0  # (B, H, Q, K)


def reference_scores(q, k, channels, bits, per_kv_head=False):
    """The official formula, head by head: gather r channels of q and of the repeated k,
    pseudo-quantise both, q.k / sqrt(r)."""
    h, h_kv = q.shape[1], k.shape[1]
    k_rep = k.repeat_interleave(h // h_kv, dim=1)  # (B, H, K, D)
    if per_kv_head:
        channels = channels.repeat_interleave(h // h_kv, dim=0)  # (H, r)
    rows = []
    for head in range(h):
        qc = pseudo_quantize(q[:, head][..., channels[head]], bits)
        kc = pseudo_quantize(k_rep[:, head][..., channels[head]], bits)
        rows.append(qc @ kc.transpose(-1, -2) / math.sqrt(channels.shape[1]))
    return torch.stack(rows, dim=1)  # (B, H, Q, K)


@pytest.mark.parametrize("selection", ["q", "k"])
@pytest.mark.parametrize("h, h_kv", [(4, 4), (4, 2)])
@pytest.mark.parametrize("bits", [4, 16])
def test_scores_follow_the_official_formula(channel_file, selection, h, h_kv, bits):
    q, k, v = qkv(h, h_kv, 3, 30, seed=h_kv)
    path = channel_file(h, h_kv)
    config = DoubleSparsityConfig(
        5, path, group_factor=4, label_bits=bits, channel_selection=selection
    )
    masker = create_masker(config)
    scores = masker.score(AttentionInputs(q, k, v, layer_idx=0))
    table = json.loads(Path(path).read_text())
    channels = torch.tensor(table[layer_key(0, selection)])[:, :2]  # r = 8 / 4
    expected = reference_scores(q, k, channels, bits, per_kv_head=selection == "k")
    assert torch.allclose(scores, expected, atol=1e-5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bits=st.integers(1, 8),
    r=st.integers(1, 16),
    scale=st.sampled_from([1e-3, 1.0, 100.0]),
    seed=st.integers(0, 2**16),
)
def test_pseudo_quantize_is_min_max_to_2_pow_bits_levels(bits, r, scale, seed):
    x = torch.randn(3, 5, r, generator=torch.Generator().manual_seed(seed)) * scale
    y = pseudo_quantize(x, bits)
    low, high = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
    step = (high - low) / (2**bits - 1)
    levels = torch.where(step > 0, (y - low) / torch.where(step > 0, step, 1), 0)
    assert torch.allclose(levels, levels.round(), atol=1e-3)  # on the grid
    assert torch.all(levels.round() >= 0) and torch.all(levels.round() <= 2**bits - 1)
    assert torch.all((y - x).abs() <= step / 2 + 1e-5 * (1 + x.abs()))  # nearest level
    tol = 1e-5 * (1 + scale)  # the extremes map to levels 0 and 2**bits - 1, up to rounding
    assert torch.allclose(y.amin(-1), low.squeeze(-1), atol=tol)
    assert torch.allclose(y.amax(-1), high.squeeze(-1), atol=tol)
    assert pseudo_quantize(x, 16) is x
    constant = torch.full((2, r), 3.5)
    assert torch.equal(pseudo_quantize(constant, bits), constant)


@pytest.mark.parametrize("h, h_kv", [(4, 4), (4, 2)])
@pytest.mark.parametrize("heavy", [1, 7, 0.25])
def test_exactly_heavy_size_keys_per_row_never_a_forbidden_one(channel_file, h, h_kv, heavy):
    q, k, v = qkv(h, h_kv, 4, 40, seed=5)
    allowed = torch.arange(40) <= torch.arange(20, 24).unsqueeze(-1)  # causal, queries at 20..23
    allowed = allowed & (torch.arange(40) % 5 != 1)  # and some holes
    bias = torch.zeros(4, 40).masked_fill(~allowed, float("-inf"))[None, None]
    config = DoubleSparsityConfig(heavy, channel_file(h, h_kv), group_factor=2)
    active = ds_mask(config, q, k, v, bias, query_start=20)
    want = heavy if isinstance(heavy, int) else int(heavy * 40)
    assert not (active & ~allowed).any()
    assert (active.sum(-1) == want).all()
    # On top of a window, heavy_size more keys: the row holds window + heavy_size.
    window = Mask.create_empty((1, h, 4, 40)).with_active(torch.arange(40) >= 18)
    stacked = ds_mask(config, q, k, v, bias, query_start=20, previous=window)
    assert not (stacked & ~(allowed | (torch.arange(40) >= 18))).any()
    assert (stacked.sum(-1) == (window.to_dense() > 0).sum(-1) + want).all()


def test_a_row_with_fewer_allowed_keys_than_the_budget_keeps_them_all(channel_file):
    q, k, v = qkv(2, 2, 3, 10, seed=2)
    active = ds_mask(DoubleSparsityConfig(6, channel_file(2, 2)), q, k, v)  # every key allowed
    assert torch.equal(active.sum(-1), torch.full((1, 2, 3), 6))
    allowed = torch.arange(10) <= torch.tensor([[1], [8], [9]])
    bias = torch.zeros(3, 10).masked_fill(~allowed, float("-inf"))[None, None]
    active = ds_mask(DoubleSparsityConfig(6, channel_file(2, 2)), q, k, v, bias, query_start=7)
    assert active[:, :, 0].sum(-1).tolist() == [[2, 2]] and not (active & ~allowed).any()


@pytest.mark.parametrize("heavy", [200, 1.0])
def test_a_budget_of_at_least_k_is_dense_attention(channel_file, heavy):
    q, k, v = qkv(4, 2, 3, 200, seed=9)
    config = DoubleSparsityConfig(heavy, channel_file(4, 2))
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([config]))
    out, _ = attn.custom_attention(None, q, k, v, None, layer_idx=0)
    dense, _ = masked_attention(q, k, v, None)
    assert torch.allclose(out, dense, atol=1e-5)


def test_the_same_inputs_give_the_same_mask_and_ties_go_to_the_earlier_key(channel_file):
    q, k, v = qkv(2, 2, 2, 64, seed=11)
    config = DoubleSparsityConfig(9, channel_file(2, 2), group_factor=4, label_bits=2)
    assert torch.equal(ds_mask(config, q, k, v), ds_mask(config, q, k, v))
    k_tied = k[:, :, :4].repeat(1, 1, 16, 1)  # keys 0..3 repeated: every score appears 16 times
    active = ds_mask(config, q, k_tied, v)
    scores = create_masker(config).score(AttentionInputs(q, k_tied, v, layer_idx=0))
    assert torch.equal(active, top_k_earliest(scores, 9))  # the tie path
    plain = create_masker(config).score(AttentionInputs(q, k, v, layer_idx=0))
    assert torch.equal(ds_mask(config, q, k, v), top_k_earliest(plain, 9))  # no boundary tie
    for row_scores, row in zip(scores.reshape(-1, 64), active.reshape(-1, 64), strict=True):
        kept = row.nonzero().squeeze(-1)
        kth = row_scores[kept].min()
        assert (row_scores[~row] <= kth).all()  # a top-9 set
        tied = (row_scores == kth).nonzero().squeeze(-1)
        kept_tied = [int(i) for i in kept if row_scores[i] == kth]
        assert kept_tied == tied[: len(kept_tied)].tolist()  # the earliest of the tied keys


def test_top_k_earliest_on_a_hand_made_row():
    scores = torch.tensor([[0.1, 2.3, -0.4, 1.9, 1.9, 0.0], [1.0, 1.0, 1.0, 1.0, -math.inf, 1.0]])
    assert top_k_earliest(scores, 2).tolist() == [  # the module's drawing
        [False, True, False, True, False, False],
        [True, True, False, False, False, False],
    ]
    assert top_k_earliest(torch.tensor([[1.0, -math.inf, -math.inf]]), 2).tolist() == [
        [True, False, False]
    ]


@pytest.mark.parametrize("chunk", [1, 40, 64, 2**22])
def test_the_tie_rule_in_blocks_of_rows_equals_a_stable_sort(monkeypatch, chunk):
    """Blocks of rows of at most ``chunk`` entries keep, per row, the first k finite keys of a
    stable descending sort (ties to the earlier key)."""
    monkeypatch.setattr(topk, "TIE_CHUNK_ELEMENTS", chunk)
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 4, (3, 5, 20), generator=g).float()  # many ties
    scores[torch.rand(scores.shape, generator=g) < 0.3] = -math.inf
    scores[0, 0] = -math.inf  # a row with nothing to keep
    for k in (1, 5, 19):
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]
        want = torch.zeros_like(scores, dtype=torch.bool)
        want.scatter_(-1, order, scores.gather(-1, order) > -math.inf)
        assert torch.equal(top_k_earliest(scores, k), want)


def test_state_extends_truncates_and_slides_like_a_fresh_build(channel_file):
    masker = create_masker(DoubleSparsityConfig(4, channel_file(4, 2), group_factor=2))
    keys = torch.randn(1, 2, 30, 8)
    queries = torch.randn(1, 4, 30, 8)
    states = MaskerStates()

    def call(start: int, stop: int) -> None:
        inputs = AttentionInputs(
            queries[:, :, stop - 1 : stop],
            keys[:, :, start:stop],
            keys[:, :, start:stop],
            layer_idx=0,
            query_start=stop - 1,
        )
        state = states.read(masker, inputs)
        assert torch.equal(state.labels, masker.build_state(inputs).labels), (start, stop)

    call(0, 9)
    call(0, 10)
    call(0, 17)
    states.truncate(6)
    call(0, 13)
    call(3, 19)  # a sliding window dropped keys
    call(5, 26)
    entry = states.entry(0, masker)
    assert entry is not None and entry.value.labels.shape == (1, 4, 21, 4)  # per query head, r = 4


def test_the_label_cache_grows_in_place_and_reallocates_when_full():
    labels = torch.randn(1, 2, 5, 3)
    more = [torch.randn(1, 2, n, 3) for n in (1, 1, 3)]
    cache = LabelCache.of(labels, room=2)
    buffer = cache.buffer
    cache = cache.extended(more[0]).extended(more[1])  # fits: written in place
    assert cache.buffer is buffer and cache.length == 7
    cache = cache.extended(more[2])  # full: a new, larger buffer
    assert cache.buffer is not buffer and cache.buffer.shape[2] >= 2 * 10
    assert torch.equal(cache.labels, torch.cat([labels, *more], dim=2))
    everything = torch.cat([labels, *more], dim=2)  # (1, 2, 10, 3)
    cut = LabelCache(cache.buffer[:, :, 2:], 4)  # a window that slid by 2, cut at 6 keys
    assert torch.equal(cut.extended(more[0]).labels, torch.cat([everything[:, :, 2:6], more[0]], 2))
    with torch.inference_mode():
        frozen = LabelCache.of(labels)
    grown = frozen.extended(more[0])  # an inference tensor outside inference mode: copied
    assert grown.buffer is not frozen.buffer
    assert torch.equal(grown.labels, torch.cat([labels, more[0]], 2))


def test_channel_file_errors_name_the_file_the_layer_and_the_shape(tmp_path, channel_file):
    missing = DoubleSparsityConfig(4, str(tmp_path / "missing.json"))  # found before workers
    assert missing.artefact_problems() == [
        f"DoubleSparsityConfig.channel_file={str(tmp_path / 'missing.json')!r}: no such file; "
        "write one with `sah calibrate double-sparsity MODEL --out FILE`"
    ]
    with pytest.raises(ValueError, match="channel_selection must be one of"):
        DoubleSparsityConfig(4, channel_file(2, 2), channel_selection="v")
    with pytest.raises(ValueError, match="group_factor must be >= 1"):
        DoubleSparsityConfig(4, channel_file(2, 2), group_factor=0)
    q, k, v = qkv(4, 2, 1, 10)
    wrong = DoubleSparsityConfig(4, channel_file(2, 2))  # made for 2 heads
    with pytest.raises(
        ValueError, match=r"ch_2_2_8_0.json', layer 0 .*\(2, 8\), expected \(4, 8\)"
    ):
        ds_mask(wrong, q, k, v)
    inputs = AttentionInputs(q, k, v, layer_idx=3)
    masker = create_masker(DoubleSparsityConfig(4, channel_file(4, 2)))
    with pytest.raises(ValueError, match=r"no entry 'model.layers.3.self_attn.q_proj' for layer 3"):
        masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({layer_key(0, "q"): [[0, 0, 1]]}))
    with pytest.raises(ValueError, match=r"bad.json', entry .* permutation of range\(D=3\)"):
        create_masker(DoubleSparsityConfig(4, str(bad)))
    with pytest.raises(ValueError, match=r"has no 'model\.layers\.<i>\.self_attn\.k_proj' entry"):
        create_masker(DoubleSparsityConfig(4, str(bad), channel_selection="k"))


def test_the_artefact_examples_run_the_shared_checks(tmp_path):
    """The examples of ARTEFACT_EXAMPLES (used by the rollback law) on their shape: additive,
    within the budget, finite attention."""
    shape = ModelShape(layers=1, heads=4, kv_heads=2, head_dim=8)
    q, k, v = qkv(4, 2, 3, 12, seed=1)
    bias = torch.zeros(3, 12).masked_fill(
        torch.arange(12) > torch.arange(9, 12)[:, None], -math.inf
    )
    for config in ARTEFACT_EXAMPLES["double_sparsity"](shape, tmp_path):
        previous = Mask.create_empty((1, 4, 3, 12)).with_active(torch.arange(12) < 2)
        new = create_masker(config).add_mask(
            AttentionInputs(q, k, v, bias[None, None], layer_idx=0), previous
        )
        assert torch.all(new.to_dense() >= previous.to_dense())
        attn = ResearchAttention.create_from_config(ResearchAttentionConfig([config]))
        out, _ = attn.custom_attention(None, q, k, v, bias[None, None], None, 0.0, layer_idx=0)
        assert torch.isfinite(out).all()


def test_tiny_model_recall_of_the_oracle_top_k_beats_random_keys(tiny_model_dir, tmp_path):
    """Queries and keys of a real tiny model's attention on a real prompt, channels calibrated
    on that model: Double Sparsity's top-k holds more of the oracle top-k than random keys."""
    from sparse_attention_hub.offline.double_sparsity_calibration import calibrate_double_sparsity

    path = calibrate_double_sparsity(
        tiny_model_dir, tmp_path / "ch.json", num_tokens=2048, device="cpu"
    )
    calls = question_calls(tiny_model_dir)
    budget, top = 64, 32
    g = torch.Generator().manual_seed(0)
    hits = random_hits = total = 0.0
    for inputs in calls:
        scores = inputs.exact_scores()  # (B, H, Q, K)
        oracle = oracle_top(scores, top)
        masker = create_masker(DoubleSparsityConfig(budget, str(path)))
        active = masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape)).to_dense() > 0
        noise = torch.rand(scores.shape, generator=g).masked_fill(scores == float("-inf"), -1.0)
        rand = top_k_earliest(noise, budget) & (scores > float("-inf"))
        hits += float((active & oracle).sum())
        random_hits += float((rand & oracle).sum())
        total += float(oracle.sum())
    recall, random_recall = hits / total, random_hits / total
    print(
        f"double_sparsity recall of the oracle top-{top}: {recall:.3f}, random keys: {random_recall:.3f}"
    )
    assert recall > 1.5 * random_recall and recall > random_recall + 0.1
