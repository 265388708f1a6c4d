"""Prefill metrics against brute force; the config's prefill fields (round trip, errors,
pickling, a study file)."""

from __future__ import annotations

import pickle

import pytest
import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger, load_micro_metrics
from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.prefill import engine
from sparse_attention_hub.sparse_attention.prefill.metrics import (
    PREFILL_DENSITY_METRIC,
    PREFILL_OUTPUT_ERROR_METRIC,
    sample_rows,
)
from sparse_attention_hub.sparse_attention.prefill.sink import SinkPrefillConfig

from .reference import allowed_pairs, dense_masked

METRICS = [PREFILL_DENSITY_METRIC, PREFILL_OUTPUT_ERROR_METRIC]
CONFIG = {
    "maskers": [],
    "prefill_maskers": [{"sink": {"sink_size": 3}}, {"local": {"window_size": 6}}],
    "prefill_block_size": 8,
}


@pytest.fixture
def metric_logger():
    logger = MicroMetricLogger()
    registry = MicroMetricLogger.get_registered_metrics()
    yield logger
    MicroMetricLogger._reset_for_tests(registry={**registry, **{m: float for m in METRICS}})


def test_density_and_error_equal_brute_force(metric_logger, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(engine.EAGER_ENV, "1")
    metric_logger.configure_logging(tmp_path, enabled_metrics=METRICS)
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 150, 16, generator=gen)  # more rows than the error sample
    k = torch.randn(1, 2, 170, 16, generator=gen)
    v = torch.randn(1, 2, 170, 16, generator=gen)
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig.from_dict(CONFIG))
    kwargs = {"layer_idx": 2, "query_start": 20, "sliding_window": 40, "softcap": 4.0}
    out, _ = attn.prefill_attention(None, q, k, v, None, 0.25, 0.0, **kwargs)
    metric_logger.flush()
    frame = load_micro_metrics(tmp_path)
    values = dict(zip(frame["metric"], frame["value"], strict=True))
    assert list(frame["layer_idx"]) == [2, 2]
    allowed = allowed_pairs(150, 170, 20, 0, 40)
    pos_q = torch.arange(150)[:, None] + 20
    pos_k = torch.arange(170)[None, :]
    kept = allowed & ((pos_k < 3) | (pos_q - pos_k < 6))
    assert values[PREFILL_DENSITY_METRIC] == pytest.approx(float(kept.sum() / allowed.sum()))
    rows = sample_rows(150)
    assert len(rows) == 64 and int(rows[-1]) == 149
    dense = dense_masked(q, k, v, allowed.expand(1, 4, 150, 170), 0.25, softcap=4.0)
    sparse = dense_masked(q, k, v, kept.expand(1, 4, 150, 170), 0.25, softcap=4.0)
    torch.testing.assert_close(out, sparse, rtol=1e-5, atol=1e-5)
    expected = (sparse[:, rows] - dense[:, rows]).norm() / dense[:, rows].norm()
    assert values[PREFILL_OUTPUT_ERROR_METRIC] == pytest.approx(float(expected), rel=1e-4)
    assert float(expected) > 0.1


def test_prefill_fields_round_trip_and_keep_old_fingerprints() -> None:
    config = ResearchAttentionConfig.from_dict(CONFIG)
    assert config.to_dict() == CONFIG
    assert ResearchAttentionConfig.from_dict(config.to_dict()) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert config.prefill_masker_configs[0] == SinkPrefillConfig(3)
    assert ResearchAttentionConfig([]).to_dict() == {"maskers": []}  # unchanged default form


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"prefill_maskers": {"sink": {}}}, '"prefill_maskers" must be a list'),
        ({"prefill_maskers": [{"nope": {}}]}, "unknown prefill masker 'nope'"),
        ({"prefill_maskers": [{"sink": {"size": 3}}]}, "unknown parameter"),
        ({"prefill_block_size": 0}, "ResearchAttentionConfig.prefill_block_size"),
    ],
)
def test_bad_prefill_fields_are_named(data: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ResearchAttentionConfig.from_dict({"maskers": [], **data})


def test_decode_configs_are_refused_as_prefill_maskers() -> None:
    from sparse_attention_hub.sparse_attention.maskers import SinkMaskerConfig

    with pytest.raises(TypeError, match="prefill_masker_configs"):
        ResearchAttentionConfig([], prefill_masker_configs=[SinkMaskerConfig(4)])


MIXES = {
    "vertical_slash+block_top_k": [
        {"vertical_slash": {"vertical_size": 40, "slash_size": 60, "last_q": 16}},
        {"block_top_k": {"block_budget": 0.3, "block_size": 16}},
    ],
    "xattention+sink": [
        {"xattention": {"stride": 4, "block_size": 16, "threshold": 0.5}},
        {"sink": {"sink_size": 5}},
    ],
    "flexprefill": [{"flexprefill": {"block_size": 16, "min_budget": 16, "gamma": 0.5}}],
}


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_density_counts_full_and_partial_blocks_as_brute_force(mix: str) -> None:
    """The density metric counts full blocks whole and evaluates only partial blocks: it
    equals the brute-force union of the maskers' pairs (GQA, Q < K, ragged blocks, a
    budget small enough to split the partial blocks into several chunks)."""
    from sparse_attention_hub.sparse_attention.prefill.attention import prefill_inputs
    from sparse_attention_hub.sparse_attention.prefill.block_mask import (
        build_block_mask,
        geometry_of,
    )
    from sparse_attention_hub.sparse_attention.prefill.metrics import computed_pairs
    from sparse_attention_hub.sparse_attention.prefill.registry import (
        create_prefill_masker,
        prefill_config_from_dict,
    )

    from .reference import selection_pairs

    gen = torch.Generator().manual_seed(1)
    q = torch.randn(2, 4, 150, 16, generator=gen)
    k = torch.randn(2, 2, 190, 16, generator=gen)
    kwargs = {"query_start": 40, "layer_idx": 0}
    inputs = prefill_inputs(q, k, 0.25, kwargs, block_size=16, budget_bytes=16 * 16 * 8 * 3)
    maskers = [
        create_prefill_masker(prefill_config_from_dict(*entry.popitem()))
        for entry in [dict(e) for e in MIXES[mix]]
    ]
    selections = [m.select(inputs) for m in maskers]
    geometry = geometry_of(inputs)
    block_mask, full, partial = build_block_mask(selections, geometry, q.device)
    assert block_mask.mask_mod is not None
    computed, causal = computed_pairs(geometry, full, partial, block_mask.mask_mod, 16 * 16 * 24)
    allowed = allowed_pairs(150, 190, 40, 0, None)
    union = torch.zeros(2, 4, 150, 190, dtype=torch.bool)
    for selection in selections:
        union |= selection_pairs(selection, 2, 4, 150, 190)
    assert int(causal) == int(allowed.sum()) * 8
    assert int(computed) == int((union & allowed).sum())
    assert 0 < int(computed) < int(causal) and bool(full.any())


@pytest.mark.parametrize("mix", [*sorted(MIXES), "diagonals"])
def test_a_call_padded_to_its_shape_bucket_computes_what_the_unpadded_call_does(
    mix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine pads a compiled call to a shape bucket (more blocks, longer mask tables);
    the output is the unpadded call's (run eagerly both ways here)."""
    from sparse_attention_hub.sparse_attention.prefill.attention import SparsePrefill
    from sparse_attention_hub.sparse_attention.prefill.registry import (
        create_prefill_masker,
        prefill_config_from_dict,
    )

    monkeypatch.setenv(engine.EAGER_ENV, "1")
    entries = MIXES.get(mix) or [
        {"vertical_slash": {"vertical_size": 30, "slash_size": 40, "slash_cover": "diagonals"}}
    ]
    maskers = [create_prefill_masker(prefill_config_from_dict(*dict(e).popitem())) for e in entries]
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(1, 4, 147, 16, generator=gen)
    k, v = (torch.randn(1, 2, 181, 16, generator=gen) for _ in range(2))
    kwargs = {"query_start": 34, "layer_idx": 0}
    outs = []
    for pad in (False, True):
        prefill = SparsePrefill(maskers, block_size=16, budget_bytes=2**20)
        prefill.pad_eager = pad
        outs.append(prefill.attention(q, k, v, 0.25, dict(kwargs)))
    assert engine.bucket_length(181, 16) > 181
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-5, atol=1e-6)
