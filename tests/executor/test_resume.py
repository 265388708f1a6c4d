"""Resumability: complete cells are skipped, a changed config is re-run and its old files kept."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from tests.support.fault_benchmark import FAULT


def _run(base: Path, num_events: int, executor: BenchmarkExecutor | None = None):
    executor = executor or BenchmarkExecutor(None, 1, base_result_dir=str(base), verbose=False)
    return executor.run_benchmark_matrix(
        model_names=["fake/model"],
        sparse_attention_configs=[("dense", None)],
        benchmark_configs=[
            BenchmarkConfig(FAULT, ["ok"]),
            BenchmarkConfig(FAULT, ["sleep_0.2"], benchmark_kwargs={"num_events": num_events}),
        ],
        adapter_config=AdapterConfig(),
    )


def test_resume_skips_complete_and_reruns_stale(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "results"
    executor = BenchmarkExecutor(None, 1, base_result_dir=str(base), verbose=False)
    first = _run(base, num_events=3, executor=executor)
    out, err = capfd.readouterr()
    assert "benchmark matrix" not in out + err  # verbose=False: no progress bar
    assert len(first.individual_results) == 2 and not first.skipped

    again = _run(base, num_events=3, executor=executor)  # the same executor, run again
    assert len(again.skipped) == 2 and not again.individual_results and not again.failed_executions
    assert again.execution_summary["totals"]["skipped"] == 2
    assert again.execution_summary["workers"] == 0  # nothing to run: no worker started
    # a skipped cell keeps the seconds its first run measured, in the summary and results.csv
    first_seconds = {c["cell"]: c["seconds"] for c in first.execution_summary["cells"]}
    again_seconds = {c["cell"]: c["seconds"] for c in again.execution_summary["cells"]}
    assert again_seconds == first_seconds and all(v is not None for v in again_seconds.values())
    table = pd.read_csv(base / "results.csv")
    csv_seconds = {
        f"fake_model/dense/fault_injection_{s}": v
        for s, v in zip(table["subset"], table["seconds"], strict=True)
    }
    assert csv_seconds == first_seconds

    sleep_cell = base / "fake_model" / "dense" / "fault_injection_sleep_0.2"
    old_fingerprint = json.loads((sleep_cell / "config.json").read_text())["fingerprint"]
    changed = _run(base, num_events=4)
    assert [s.subset for s in changed.skipped] == ["ok"]
    assert [r.stub.subset for r in changed.individual_results] == ["sleep_0.2"]
    (moved,) = changed.stale_moved
    assert Path(moved).parent == sleep_cell / "stale"
    assert json.loads((Path(moved) / "config.json").read_text())["fingerprint"] == old_fingerprint
    assert (Path(moved) / "metrics.json").exists()
    new_config = json.loads((sleep_cell / "config.json").read_text())
    assert new_config["fingerprint"] != old_fingerprint
    assert new_config["resolved_config"]["benchmark_kwargs"] == {"num_events": 4}
    assert changed.execution_summary["totals"]["stale_moved"] == 1
