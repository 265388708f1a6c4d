"""One real run of misbehaving cells on two spawned workers, checked from several sides.

The cells raise, run out of (simulated) GPU memory, fail to read their data, exit, get
SIGKILLed by the test in the middle of a cell, hang past the timeout, log metrics and report
their environment. The two "GPUs" are fake (torch.cuda.device_count is patched in this
process only): each worker must see CUDA_VISIBLE_DEVICES of its own and never initialise CUDA.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from tests.support.fault_benchmark import FAULT

SUBSETS = [
    "ok",
    "env",
    "hang",
    "raise",
    "oom",
    "dataset_error",
    "crash",
    "crash_once",
    "crash_after_metrics",
    "pidfile",
    "log_metrics",
]
FAILED = {
    "hang": "timeout",
    "raise": "other",
    "oom": "gpu_oom",
    "dataset_error": "dataset",
    "crash": "worker_crash",
}
COMPLETED = {"ok", "env", "crash_once", "crash_after_metrics", "pidfile", "log_metrics"}


def _cell(base: Path, subset: str) -> Path:
    return base / "fake_model" / "dense" / f"fault_injection_{subset}"


def _kill_first_pidfile_worker(base: Path, killed: list[int], stop: threading.Event) -> None:
    pid_file = _cell(base, "pidfile") / "pid.txt"
    while not stop.is_set():
        text = pid_file.read_text() if pid_file.exists() else ""
        if text.strip():
            pid = int(text)
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("faults") / "results"
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_first_pidfile_worker, args=(base, killed, stop), daemon=True
    )
    killer.start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("torch.cuda.device_count", lambda: 2)
        patch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        executor = BenchmarkExecutor(
            gpu_ids=[0, 1],
            max_concurrent_runs=2,
            base_result_dir=str(base),
            timeout_per_benchmark=6.0,
            max_retries=1,
            verbose=False,
            enabled_metrics=["fault_injection_value"],
            max_records=5,
        )
        try:
            results = executor.run_benchmark_matrix(
                model_names=["fake/model"],
                sparse_attention_configs=[("dense", None)],
                benchmark_configs=[
                    BenchmarkConfig(
                        FAULT,
                        SUBSETS,
                        benchmark_kwargs={"seconds": 3.0, "num_events": 20},
                    )
                ],
                adapter_config=AdapterConfig(),
            )
        finally:
            stop.set()
        parent_env_after = os.environ.get("CUDA_VISIBLE_DEVICES")
    return {
        "base": base,
        "results": results,
        "killed": killed,
        "parent_env_after": parent_env_after,
    }


def test_every_failure_is_isolated_and_categorised(fault_run: dict[str, Any]) -> None:
    results, base = fault_run["results"], fault_run["base"]
    failures = {f.stub.subset: f for f in results.failed_executions}
    assert {k: f.error_type for k, f in failures.items()} == FAILED
    assert {r.stub.subset for r in results.individual_results} == COMPLETED
    assert failures["crash"].attempts == 2  # retried once (max_retries=1), then recorded
    for subset in FAILED:
        cell = _cell(base, subset)
        assert not (cell / "metrics.json").exists(), subset
        assert f"category: {FAILED[subset]}" in (cell / "error.txt").read_text()
    assert "RuntimeError: fault injection" in (_cell(base, "raise") / "error.txt").read_text()
    assert results.model_loads == 0  # the fault benchmark needs no model


def test_kill_9_mid_cell_is_retried_on_a_new_worker(fault_run: dict[str, Any]) -> None:
    results, base = fault_run["results"], fault_run["base"]
    (killed,) = fault_run["killed"]
    by_subset = {r.stub.subset: r for r in results.individual_results}
    assert by_subset["pidfile"].attempts == 2
    assert by_subset["crash_once"].attempts == 2
    second_pid = int((_cell(base, "pidfile") / "pid.txt").read_text())
    assert second_pid != killed
    assert json.loads((_cell(base, "pidfile") / "metrics.json").read_text())["overall_score"] == 1.0
    # a worker that died after its cell was complete on disk: kept, not run again
    assert by_subset["crash_after_metrics"].attempts == 1
    assert by_subset["crash_after_metrics"].metrics["overall_score"] == 1.0
    config = json.loads((_cell(base, "crash_after_metrics") / "config.json").read_text())
    assert config["execution"]["status"] == "complete"
    # crash x2, crash_once x1, the kill -9 x1, crash_after_metrics x1; the hang's worker was
    # stopped, not crashed
    assert results.execution_summary["worker_crashes"] == 5


def test_each_worker_sees_only_its_gpu_without_initialising_cuda(fault_run: dict[str, Any]) -> None:
    base = fault_run["base"]
    metrics = json.loads((_cell(base, "env") / "metrics.json").read_text())
    config = json.loads((_cell(base, "env") / "config.json").read_text())
    assert config["execution"]["device"] == f"cuda:{metrics['cuda_visible_devices']}"
    assert config["execution"]["cuda_visible_devices"] == metrics["cuda_visible_devices"]
    assert metrics["cuda_visible_devices"] in {"0", "1"}
    assert metrics["cuda_initialized"] is False
    assert fault_run["parent_env_after"] is None  # the parent's environment is restored


def test_gpu_ids_map_through_the_parents_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparse_attention_hub.executor.protocol import WorkerSettings

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert WorkerSettings(0, 1, None).cuda_visible_devices == "1"
    assert WorkerSettings(0, None, 4).cuda_visible_devices is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert WorkerSettings(0, 1, None).cuda_visible_devices == "3"


def test_logger_settings_reach_only_the_cells_file(fault_run: dict[str, Any]) -> None:
    base = fault_run["base"]
    lines = (_cell(base, "log_metrics") / "micro_metrics.jsonl").read_text().splitlines()
    assert len(lines) == 5  # 20 events logged, max_records=5
    assert all(json.loads(line)["metric"] == "fault_injection_value" for line in lines)
    for subset in SUBSETS:
        other = _cell(base, subset) / "micro_metrics.jsonl"
        if subset != "log_metrics" and other.exists():
            assert other.read_text() == "", subset


def test_summary_and_results_table(fault_run: dict[str, Any]) -> None:
    base = fault_run["base"]
    summary = json.loads((base / "execution_summary.json").read_text())
    assert summary["totals"]["cells"] == 11
    assert summary["totals"]["completed"] == 6 and summary["totals"]["failed"] == 5
    assert summary["devices"] == ["cuda:0", "cuda:1"]
    assert summary["versions"]["torch"] and summary["versions"]["transformers"]
    assert {f["category"] for f in summary["failures"]} == set(FAILED.values())
    assert len(summary["cells"]) == 11 and all(c["seconds"] is not None for c in summary["cells"])
    table = pd.read_csv(base / "results.csv")
    assert len(table) == 11
    statuses = dict(zip(table["subset"], table["status"], strict=True))
    assert {s for s, v in statuses.items() if v == "failed"} == set(FAILED)
    assert table.loc[table["subset"] == "ok", "overall_score"].item() == 1.0
    assert statuses["crash_after_metrics"] == "complete"
    # the same seconds in the summary and in results.csv, failed cells included
    csv_seconds = dict(zip(table["subset"], table["seconds"], strict=True))
    for cell in summary["cells"]:
        subset = cell["cell"].removeprefix("fake_model/dense/fault_injection_")
        assert csv_seconds[subset] == pytest.approx(cell["seconds"], abs=1e-3), subset
