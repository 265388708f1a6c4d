"""Issue 30, item 7: what a user must be told: more workers than cores, requests longer than
the model's positions, an empty model directory, control characters in a config name."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.testing import make_tiny_model
from tests.support.fault_benchmark import FAULT


def test_workers_are_capped_at_the_cells_and_crowding_the_cores_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("sparse_attention_hub.executor.executor.usable_cores", lambda: 2)
    executor = BenchmarkExecutor(None, 64, base_result_dir=str(tmp_path), preflight=False)
    with caplog.at_level(logging.WARNING):
        results = executor.run_benchmark_matrix(
            model_names=["fake/model"],
            sparse_attention_configs=[("dense", None)],
            benchmark_configs=[BenchmarkConfig(FAULT, ["ok", "sleep_0.1", "sleep_0.2"])],
            adapter_config=AdapterConfig(),
        )
    assert results.execution_summary["workers"] == 3  # one per cell, not 64
    assert "max_concurrent_runs=64: 3 worker processes (one a cell) on 2 CPU cores" in caplog.text


@pytest.mark.slow
def test_requests_longer_than_the_models_positions_are_a_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    model = make_tiny_model(tmp_path / "short", max_position_embeddings=32)
    executor = BenchmarkExecutor(None, 1, base_result_dir=str(tmp_path / "results"))
    results = executor.run_benchmark_matrix(
        model_names=[model],
        sparse_attention_configs=[("dense", None)],
        benchmark_configs=[BenchmarkConfig("mock_benchmark")],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "float32"}),
        generation_kwargs={"max_new_tokens": 2},
    )
    assert not results.failed_executions
    err = capfd.readouterr().err
    assert err.count("on a model of 32 positions (max_position_embeddings)") == 1, err[-2000:]
    assert "set request_kwargs.max_context_length" in err


def test_make_tiny_model_refuses_an_empty_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["make-tiny-model", ""]) == 2
    assert "DIRECTORY '' is empty" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is empty"):
        make_tiny_model("  ")
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory


def test_control_characters_in_a_config_name_are_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(
        "models: [fake/model]\n"
        'sparse_configs: {"\\e[31mred\\e[0m": dense}\n'
        "benchmarks: [{name: mock_benchmark}]\n",
        encoding="utf-8",
    )
    assert main(["run", str(study), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "sparse_configs['\\x1b[31mred\\x1b[0m']" in err
