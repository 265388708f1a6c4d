"""Workers that die during start-up: the cells are marked, the summary is written, and the error
says why (the worker's own exception, sent over its pipe before it exits)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.executor.config import WorkerStartupError
from tests.support.fault_benchmark import FAULT

MATRIX = dict(
    model_names=["fake/model"],
    sparse_attention_configs=[("dense", None)],
    benchmark_configs=[BenchmarkConfig(FAULT, ["ok", "raise", "sleep_0.1"])],
    adapter_config=AdapterConfig(),
)


def test_workers_dying_at_start_up_leave_a_summary_and_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = BenchmarkExecutor._worker_settings

    def broken(self: BenchmarkExecutor, num_cells: int):  # torch.set_num_threads(-1) raises
        return [dataclasses.replace(s, num_threads=-1) for s in original(self, num_cells)]

    monkeypatch.setattr(BenchmarkExecutor, "_worker_settings", broken)
    base = tmp_path / "results"
    executor = BenchmarkExecutor(None, 3, base_result_dir=str(base), verbose=False)
    with pytest.raises(WorkerStartupError, match="set_num_threads expects a positive integer"):
        executor.run_benchmark_matrix(**MATRIX)

    summary = json.loads((base / "execution_summary.json").read_text())
    assert "start-up 3 times in a row" in summary["error"]
    assert summary["totals"]["failed"] == 3 and summary["totals"]["completed"] == 0
    assert {c["status"] for c in summary["cells"]} == {"failed"}
    assert {f["category"] for f in summary["failures"]} == {"worker_crash"}
    table = pd.read_csv(base / "results.csv")
    assert sorted(table["subset"]) == ["ok", "raise", "sleep_0.1"]
    assert set(table["status"]) == {"failed"} and set(table["error_category"]) == {"worker_crash"}
    error = (base / "fake_model" / "dense" / "fault_injection_ok" / "error.txt").read_text()
    assert "Traceback" in error and "set_num_threads" in error
    plan = BenchmarkExecutor(None, 1, base_result_dir=str(base)).plan_matrix(**MATRIX)
    assert {status for _, status in plan} == {"failed"}  # a rerun runs them
