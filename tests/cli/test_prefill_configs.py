"""Sparse prefill in study files, one-line flags, lm-eval's sparse_config and recipes:
``prefill_maskers`` / ``prefill_block_size`` beside ``maskers``."""

from __future__ import annotations

import pytest

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig
from sparse_attention_hub.executor.matrix import expand_matrix
from sparse_attention_hub.experiment import load_experiment_text
from sparse_attention_hub.experiment.checks import ExperimentError
from sparse_attention_hub.experiment.from_flags import StudyFlags, spec_from_flags
from sparse_attention_hub.lm_eval.sparse_config import parse_sparse_config
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.recipes import (
    describe_recipes,
    expand_recipe,
    register_recipe,
)

HEAD = """
models: [org/model]
benchmarks: [mock_benchmark]
sparse_configs:
"""
BLOCK_TOP_K = {"block_top_k": {"block_budget": 0.1}}


def configs(text: str) -> dict[str, ResearchAttentionConfig | None]:
    spec = load_experiment_text(HEAD + text, "study.yaml")
    return dict(spec.sparse_attention_configs())


def error(text: str) -> ExperimentError:
    with pytest.raises(ExperimentError) as info:
        load_experiment_text(HEAD + text, "study.yaml")
    return info.value


def test_a_config_of_prefill_maskers_only_decodes_densely() -> None:
    (config,) = configs("  bt: {prefill_maskers: [{block_top_k: {block_budget: 0.1}}]}").values()
    assert config == ResearchAttentionConfig.from_dict({"prefill_maskers": [BLOCK_TOP_K]})
    assert config is not None and config.masker_configs == []
    assert config.prefill_masker_names() == ["block_top_k"]


def test_prefill_and_decode_maskers_in_one_config_with_a_block_size() -> None:
    found = configs(
        "  pair:\n"
        "    maskers: [{quest: {token_budget: 64}}]\n"
        "    prefill_maskers: [flexprefill, {sink: {sink_size: 4}}]\n"
        "    prefill_block_size: 64\n"
        "    dense_layers: [0]\n"
    )
    expected = ResearchAttentionConfig.from_dict(
        {
            "maskers": [{"quest": {"token_budget": 64}}],
            "prefill_maskers": [{"flexprefill": {}}, {"sink": {"sink_size": 4}}],
            "prefill_block_size": 64,
            "dense_layers": [0],
        }
    )
    assert found == {"pair": expected}


def test_prefill_parameters_sweep_with_the_maskers() -> None:
    found = configs(
        "  s:\n"
        "    maskers: [{sink: {sink_size: [4, 8]}}]\n"
        "    prefill_maskers: [{block_top_k: {block_budget: [0.1, 0.2]}}]\n"
    )
    assert list(found) == [f"s.sink_size={s}+block_budget={b}" for s in (4, 8) for b in (0.1, 0.2)]
    config = found["s.sink_size=8+block_budget=0.1"]
    assert config is not None
    assert (
        config.to_dict()
        == ResearchAttentionConfig.from_dict(
            {"maskers": [{"sink": {"sink_size": 8}}], "prefill_maskers": [BLOCK_TOP_K]}
        ).to_dict()
    )


@pytest.mark.parametrize(
    "entry, path, words",
    [
        (
            "{prefill_maskers: [{vertical_slashh: {}}]}",
            "sparse_configs.x.prefill_maskers[0]",
            "unknown prefill masker 'vertical_slashh'",
        ),
        (
            "{prefill_maskers: [{block_top_k: {block_budgt: 0.1}}]}",
            "sparse_configs.x.prefill_maskers[0].block_top_k.block_budgt",
            "block_budgt",
        ),
        (
            "{prefill_maskers: [{flexprefill: {gamma: 2.0}}]}",
            "sparse_configs.x.prefill_maskers[0].flexprefill.gamma",
            "gamma",
        ),
        (
            "{prefill_maskers: [flexprefill], prefill_block_size: 0}",
            "sparse_configs.x.prefill_block_size",
            "int >= 1",
        ),
        (
            "{maskers: [{sink: {sink_size: 4}}], prefill_block_size: 64}",
            "sparse_configs.x.prefill_block_size",
            "give prefill_maskers",
        ),
        ("{prefill_maskers: flexprefill}", "sparse_configs.x.prefill_maskers", "a list"),
        ("{prefill_maskrs: [flexprefill]}", "sparse_configs.x", "prefill_maskrs"),
    ],
)
def test_errors_name_the_config_and_the_field(entry: str, path: str, words: str) -> None:
    exc = error(f"  x: {entry}")
    assert exc.path == path and words in exc.message


def test_a_decode_masker_name_is_not_a_prefill_masker() -> None:
    exc = error("  x: {prefill_maskers: [{quest: {token_budget: 64}}]}")
    assert "unknown prefill masker 'quest'" in exc.message and "block_top_k" in exc.message


def test_dense_stays_the_name_of_the_dense_baseline() -> None:
    assert (
        "kept for the dense baseline" in error("  dense: {prefill_maskers: [flexprefill]}").message
    )


def test_the_fingerprint_of_a_config_without_prefill_maskers_is_unchanged(tmp_path) -> None:
    """The values were computed before prefill_maskers existed in study files."""
    spec = load_experiment_text(
        HEAD
        + "  dense: dense\n"
        + "  quest: {recipe: quest}\n"
        + "  streaming: [{sink: {sink_size: 4}}, {local: {window_size: 64}}]\n",
        "study.yaml",
    )
    stubs = expand_matrix(
        tmp_path,
        ["org/model"],
        spec.sparse_attention_configs(),
        [BenchmarkConfig("mock_benchmark")],
        AdapterConfig(),
    )
    assert {s.sparse_config_name: s.fingerprint for s in stubs} == {
        "dense": "fa21953328617418c01baf870045d8966f1e682146b89a706563433d69453c44",
        "quest": "08080a80d9e826dee9d0c4f484b3d2c600468f336fc82ec3a3d437e33f1fb3f1",
        "streaming": "a02374ba55d304e8ffbee9ac3fa26530db1b260aafcb5587fe85af4f302eea63",
    }


def test_the_prefill_recipes_have_the_papers_defaults() -> None:
    oracle = ResearchAttentionConfig.from_recipe("block_top_k_prefill")
    assert oracle.masker_configs == [] and oracle.prefill_masker_names() == ["block_top_k"]
    assert oracle.prefill_masker_configs[0].block_budget == 0.1
    flex = ResearchAttentionConfig.from_recipe("flexprefill").prefill_masker_configs[0]
    assert (flex.gamma, flex.tau, flex.min_budget, flex.block_size) == (0.9, 0.1, 1024, 128)
    streaming = ResearchAttentionConfig.from_recipe("streaming_prefill")
    assert streaming.prefill_masker_names() == ["sink", "local"]
    assert [c.__dict__ for c in streaming.prefill_masker_configs] == [
        {"sink_size": 128},
        {"window_size": 1024},
    ]
    rows = {name: text for name, text, _ in describe_recipes()}
    assert rows["flexprefill"].startswith("prefill flexprefill(gamma=0.9")
    assert "; dense decode" in rows["streaming_prefill"]


def test_a_prefill_recipe_in_a_study_file_sweeps_and_pairs_with_decode() -> None:
    found = configs("  bt: {recipe: block_top_k_prefill, block_budget: [0.05, 0.1]}\n")
    for budget in (0.05, 0.1):
        expected = ResearchAttentionConfig.from_recipe("block_top_k_prefill", block_budget=budget)
        assert found[f"bt.block_budget={budget}"] == expected


def test_a_recipe_building_an_unknown_key_is_refused() -> None:
    @register_recipe("test_prefill_bad_key", paper="a test")
    def bad() -> dict:
        return {"maskers": [], "prefil_maskers": []}

    with pytest.raises(TypeError, match="prefil_maskers"):
        expand_recipe("test_prefill_bad_key")
    from sparse_attention_hub.sparse_attention import recipe_registry

    del recipe_registry._RECIPES["test_prefill_bad_key"]


def test_one_line_flags_name_a_prefill_config_by_its_maskers() -> None:
    flags = StudyFlags(
        models=["org/model"],
        benchmarks=["mock_benchmark"],
        configs=[
            '{"maskers": [{"sink": {"sink_size": 4}}], "prefill_maskers": ["flexprefill"]}',
            "flexprefill:gamma=0.8",
        ],
    )
    spec, _ = spec_from_flags(flags)
    found = dict(spec.sparse_attention_configs())
    assert list(found) == ["sink+prefill-flexprefill", "flexprefill.gamma=0.8"]
    assert found["flexprefill.gamma=0.8"] == ResearchAttentionConfig.from_recipe(
        "flexprefill", gamma=0.8
    )
    bad = StudyFlags(
        models=["org/model"],
        benchmarks=["mock_benchmark"],
        configs=['X={"prefill_maskers": [{"nope": {}}]}'],
    )
    with pytest.raises(ExperimentError) as info:
        spec_from_flags(bad)
    assert info.value.path.startswith("--config") and "unknown prefill masker" in info.value.message


def test_lm_eval_sparse_config_takes_prefill_maskers() -> None:
    config = parse_sparse_config({"prefill_maskers": ["flexprefill"]})
    assert config == ResearchAttentionConfig.from_recipe("flexprefill")
    assert parse_sparse_config("block_top_k_prefill").prefill_masker_names() == ["block_top_k"]
    with pytest.raises(ValueError, match="unknown prefill masker"):
        parse_sparse_config({"maskers": [], "prefill_maskers": ["nope"]})
