"""Experiment files checked against the real masker, benchmark and metric registries."""

from __future__ import annotations

import textwrap

import pytest

from sparse_attention_hub.experiment import ExperimentError
from sparse_attention_hub.experiment.loader import load_experiment_text


def error_of(text: str) -> str:
    with pytest.raises(ExperimentError) as info:
        load_experiment_text(textwrap.dedent(text), "exp.yaml")
    message = str(info.value)
    assert message.startswith("exp.yaml: ") and "\n" not in message, message
    return message


def with_configs(configs: str) -> str:
    return f"models: [m]\nbenchmarks: [mock_benchmark]\nsparse_configs:\n{textwrap.indent(configs, '  ')}"


def with_benchmarks(benchmarks: str) -> str:
    return f"models: [m]\nsparse_configs: {{dense: dense}}\nbenchmarks:\n{textwrap.indent(benchmarks, '  ')}"


def test_unknown_masker_lists_the_known_ones() -> None:
    msg = error_of(with_configs("s:\n  - sink: {sink_size: 4}\n  - sinc: {sink_size: 4}\n"))
    assert "exp.yaml: sparse_configs.s[1]: unknown masker 'sinc'; allowed: " in msg
    for name in ("local", "oracle_top_k", "oracle_top_p", "random_sampling", "sink"):
        assert name in msg


def test_unknown_masker_parameter_names_its_path() -> None:
    msg = error_of(
        with_configs("streaming:\n  - sink: {sink_size: 4}\n  - local: {windw_size: 8}\n")
    )
    assert msg.startswith("exp.yaml: sparse_configs.streaming[1].local.windw_size: ")
    assert "window_size" in msg  # what is allowed


def test_bad_masker_value_names_the_field() -> None:
    msg = error_of(with_configs("streaming:\n  - local: {window_size: -3}\n"))
    assert msg.startswith("exp.yaml: sparse_configs.streaming[0].local.window_size: ")
    assert "-3" in msg


def test_missing_masker_parameter() -> None:
    msg = error_of(with_configs("s:\n  - sink\n"))
    assert msg.startswith("exp.yaml: sparse_configs.s[0].sink: ")
    assert "sink_size" in msg


def test_unknown_benchmark_lists_the_available_ones() -> None:
    msg = error_of(with_benchmarks("- mock_benchmark\n- longbenchh\n"))
    assert "exp.yaml: benchmarks[1]: unknown benchmark 'longbenchh'; allowed: " in msg
    assert "mock_benchmark" in msg and "synthetic_ruler" in msg
    assert "fault_injection" not in msg  # hidden test-only entry


def test_unknown_subset_lists_the_valid_ones() -> None:
    msg = error_of(with_benchmarks("- {name: synthetic_ruler, subsets: [1024, 3000]}\n"))
    assert msg.startswith("exp.yaml: benchmarks[0].subsets: ")
    assert "'3000'" in msg and "1024" in msg


def test_unknown_benchmark_option() -> None:
    msg = error_of(with_benchmarks("- {name: mock_benchmark, benchmark_kwargs: {num_sample: 2}}\n"))
    assert msg.startswith("exp.yaml: benchmarks[0].benchmark_kwargs.num_sample: ")
    assert "unknown option" in msg


def test_benchmark_data_dir_must_exist(tmp_path) -> None:
    missing = tmp_path / "nothing"
    msg = error_of(
        with_benchmarks(
            f"- {{name: mock_benchmark, benchmark_kwargs: {{data_dir: '{missing}'}}}}\n"
        )
    )
    assert msg.startswith("exp.yaml: benchmarks[0].benchmark_kwargs.data_dir: ")


def test_unknown_metric() -> None:
    text = (
        with_configs("dense: dense\n")
        + "\nexecutor: {enabled_metrics: [research_attention_densty]}\n"
    )
    msg = error_of(text)
    assert (
        "exp.yaml: executor.enabled_metrics[0]: unknown metric 'research_attention_densty'" in msg
    )
    assert "research_attention_density" in msg


def test_aliases_are_accepted() -> None:
    spec = load_experiment_text(with_benchmarks("- mock\n"), "exp.yaml")
    assert spec.benchmarks[0].name == "mock"
