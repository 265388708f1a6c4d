"""Sweeps in the study file: list-valued masker parameters expand into configs."""

from __future__ import annotations

import textwrap

import pytest

from sparse_attention_hub.experiment import ExperimentError, ExperimentSpec
from sparse_attention_hub.experiment.loader import load_experiment_text
from sparse_attention_hub.experiment.sweep import expand_config, value_text

HEAD = """
models: [org/model]
benchmarks: [mock_benchmark]
"""


def parse(configs: str, extra: str = "", validate: bool = False) -> ExperimentSpec:
    text = HEAD + extra + "sparse_configs:\n" + textwrap.indent(textwrap.dedent(configs), "  ")
    return load_experiment_text(text, "exp.yaml", validate=validate)


def test_a_list_expands_into_one_config_per_value_in_order() -> None:
    spec = parse(
        """
        dense: dense
        topk:
          - sink: {sink_size: 4}
          - oracle_top_k: {heavy_size: [0.02, 0.05, 0.1]}
        """
    )
    assert [name for name, _ in spec.sparse_configs] == [
        "dense",
        "topk.heavy_size=0.02",
        "topk.heavy_size=0.05",
        "topk.heavy_size=0.1",
    ]
    assert spec.sparse_configs[2][1] == [
        {"sink": {"sink_size": 4}},
        {"oracle_top_k": {"heavy_size": 0.05}},
    ]


def test_several_lists_form_their_product_and_validate_each_config() -> None:
    spec = parse(
        """
        sl:
          - sink: {sink_size: [4, 8]}
          - local: {window_size: [16, 32, 64]}
        """,
        validate=True,
    )
    names = [name for name, _ in spec.sparse_configs]
    assert len(names) == 6 and len(set(names)) == 6
    assert names[:2] == ["sl.sink_size=4+window_size=16", "sl.sink_size=4+window_size=32"]
    configs = spec.sparse_attention_configs()
    assert configs[5][1] is not None
    assert parse("sl: [{sink: {sink_size: [4, 8]}}, {local: {window_size: [16, 32, 64]}}]") == spec


def test_the_same_parameter_in_two_maskers_is_named_by_masker() -> None:
    names = [n for n, _ in expand_config("x", [{"sink": {"k": [1, 2]}}, {"local": {"k": [3]}}])]
    assert names == ["x.sink.k=1+local.k=3", "x.sink.k=2+local.k=3"]


def test_generated_names_are_folder_names() -> None:
    assert value_text(0.02) == "0.02" and value_text(1e-05) == "1e-05"
    assert value_text(True) == "true" and value_text([1, 2]) == "1-2"
    for bad in ("a/b", "a b", {"x": 1}):
        with pytest.raises(ValueError, match="swept value"):
            value_text(bad)


@pytest.mark.parametrize(
    ("configs", "words"),
    [
        ("t: [{oracle_top_k: {heavy_size: []}}]", "empty list"),
        ("t: [{sink: {mode: ['a/b', c]}}]", "cannot be part of a folder name"),
        ("t.sink_size=4: [sink]\nt: [{sink: {sink_size: [4]}}]", "given twice"),
    ],
)
def test_bad_sweeps_are_refused_with_the_config_named(configs: str, words: str) -> None:
    with pytest.raises(ExperimentError, match=words) as info:
        parse(configs)
    assert "sparse_configs" in str(info.value)


def test_a_sweep_of_1000_configs_needs_allow_large_sweep() -> None:
    sizes, windows = list(range(1, 41)), list(range(1, 26))
    sweep = f"big: [{{sink: {{sink_size: {sizes}}}}}, {{local: {{window_size: {windows}}}}}]"
    with pytest.raises(ExperimentError, match=r"1000 sparse configs.*allow_large_sweep: true"):
        parse(sweep)
    assert len(parse(sweep, extra="allow_large_sweep: true\n").sparse_configs) == 1000
    with pytest.raises(ExperimentError, match="allow_large_sweep"):
        parse("d: dense", extra="allow_large_sweep: 1\n")


def test_a_sweep_is_counted_before_it_expands_and_capped_even_when_allowed(caplog) -> None:
    import logging

    values = list(range(1, 31))
    sweep = (
        f"big: [{{sink: {{sink_size: {values}}}}}, {{local: {{window_size: {values}}}}}, "
        f"{{oracle_top_k: {{heavy_size: {values}}}}}]"
    )
    with pytest.raises(ExperimentError, match=r"27,000 sparse configs, more than the 10,000"):
        parse(sweep, extra="allow_large_sweep: true\n")
    recipe = f"qk: {{recipe: quest, heavy_size: {list(range(1, 102))}, page_size: {list(range(1, 101))}}}"
    with pytest.raises(ExperimentError, match=r"10,100 sparse configs"):
        parse(recipe, extra="allow_large_sweep: true\n")
    sizes, windows = list(range(1, 41)), list(range(1, 26))
    allowed = f"big: [{{sink: {{sink_size: {sizes}}}}}, {{local: {{window_size: {windows}}}}}]"
    with caplog.at_level(logging.INFO, logger="sparse_attention_hub.experiment.schema_configs"):
        assert len(parse(allowed, extra="allow_large_sweep: true\n").sparse_configs) == 1000
    assert "exp.yaml: expanding the sweeps into 1000 sparse configs" in caplog.text


def test_dry_run_lists_the_generated_configs(tmp_path, capsys) -> None:
    from sparse_attention_hub.cli import main

    study = tmp_path / "sweep.yaml"
    study.write_text(
        textwrap.dedent(
            f"""
            result_dir: {tmp_path / "out"}
            models: [{{tiny_model: {{arch: llama}}}}]
            sparse_configs:
              dense: dense
              topk: [{{sink: {{sink_size: 4}}}}, {{oracle_top_k: {{heavy_size: [0.02, 0.05]}}}}]
            benchmarks: [mock_benchmark]
            executor: {{gpus: cpu, preflight: false}}
            """
        )
    )
    assert main(["-q", "run", str(study), "--dry-run"]) == 0
    configs = [line.split()[1] for line in capsys.readouterr().out.splitlines()[3:]]
    assert configs == ["dense", "topk.heavy_size=0.02", "topk.heavy_size=0.05"]


def test_a_swept_config_with_dense_layers_gives_them_to_every_point() -> None:
    spec = parse(
        """
        dense: dense
        quest:
          dense_layers: [0, 1]
          maskers:
            - sink: {sink_size: 4}
            - oracle_top_k: {heavy_size: [0.1, 0.2]}
        """
    )
    names = ["quest.heavy_size=0.1", "quest.heavy_size=0.2"]
    assert [name for name, _ in spec.sparse_configs] == ["dense", *names]
    assert spec.dense_layers == {name: [0, 1] for name in names}
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs["dense"] is None
    assert [configs[name].dense_layers for name in names] == [[0, 1], [0, 1]]
