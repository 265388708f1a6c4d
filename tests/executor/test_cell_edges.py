"""Issue 30's cell store edges on cells of the fault benchmark (no model): a cell that timed
out during setup; what makes a micro-metrics file damaged. (Damaged logs of a real study and
their repair are in test_cell_defects.py.)"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from sparse_attention_hub import cell_store
from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.executor.results import build_results_table
from tests.support.fault_benchmark import FAULT

SUBSETS = ["ok", "log_metrics"]


def _matrix() -> dict[str, Any]:
    return dict(
        model_names=["fake/model"],
        sparse_attention_configs=[("dense", None)],
        benchmark_configs=[BenchmarkConfig(FAULT, SUBSETS, benchmark_kwargs={"num_events": 4})],
        adapter_config=AdapterConfig(),
    )


def _executor(base: Path, **options: Any) -> BenchmarkExecutor:
    return BenchmarkExecutor(
        None,
        1,
        base_result_dir=str(base),
        verbose=False,
        preflight=False,
        enabled_metrics=["fault_injection_value"],
        **options,
    )


def _cell(base: Path, subset: str) -> Path:
    return base / "fake_model" / "dense" / f"fault_injection_{subset}"


def test_a_cell_timed_out_during_setup_is_failed_not_stale(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 1: a timeout before the worker wrote config.json leaves a failed cell (with its
    fingerprint); the rerun runs it as failed and moves nothing to stale/."""
    base = tmp_path / "results"
    first = _executor(base, timeout_per_benchmark=0.001).run_benchmark_matrix(**_matrix())
    assert {f.error_type for f in first.failed_executions} == {"timeout"}
    for subset in SUBSETS:
        config = json.loads((_cell(base, subset) / "config.json").read_text())
        assert config["execution"]["status"] == "failed", subset
        assert config["fingerprint"] and config["resolved_config"], subset
    # a kill mid-write leaves the temp file of an atomic write
    (_cell(base, "ok") / ".config.json.k1ll3d.tmp").write_text('{"fingerprint": ')
    plan = _executor(base).plan_matrix(**_matrix())
    assert [status for _, status in plan] == ["failed", "failed"]

    with caplog.at_level(logging.INFO):
        again = _executor(base).run_benchmark_matrix(**_matrix())
    assert len(again.individual_results) == 2 and not again.stale_moved
    assert "fingerprint mismatch" not in caplog.text
    for subset in SUBSETS:
        assert not (_cell(base, subset) / "stale").exists(), subset
    assert sorted(p.name for p in _cell(base, "ok").iterdir() if p.name.startswith(".")) == []


def test_an_old_setup_timeout_record_without_fingerprint_is_failed(tmp_path: Path) -> None:
    """Item 1, for results dirs written before the fix: config.json holds only execution."""
    base = tmp_path / "results"
    cell = _cell(base, "ok")
    cell.mkdir(parents=True)
    execution = {"status": "failed", "category": "timeout", "attempt": 1}
    cell_store.write_json_atomic(cell / "config.json", {"execution": execution})
    cell_store.write_error(cell, "category: timeout\n")
    (cell / ".error.txt.k1ll3d.tmp").write_text("category: ")
    assert _executor(base).plan_matrix(**_matrix())[0][1] == "failed"
    results = _executor(base).run_benchmark_matrix(**_matrix())
    assert not results.stale_moved and not (cell / "stale").exists()
    assert not (cell / ".error.txt.k1ll3d.tmp").exists()
    assert build_results_table(base)["status"].eq("complete").all()
