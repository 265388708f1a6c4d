"""A test-only benchmark whose cells sleep, raise, crash or hang on demand.

Not part of the package: tests and bench scripts name it by its import path, :data:`FAULT`
(the repository root must be on sys.path and PYTHONPATH; tests/conftest.py sees to that).
Its cells are named ``fault_injection_<subset>``. The subset names what a cell does:

- ``ok``: complete at once; ``sleep_<s>``: sleep s seconds (0.1 .. 5.0), then complete;
- ``raise``: raise RuntimeError; ``oom``: raise torch.OutOfMemoryError;
  ``dataset_error``: raise ValueError from load_datasets (a dataset failure);
- ``crash``: ``os._exit(13)``; ``sigkill``: SIGKILL itself; ``crash_once``: SIGKILL itself on
  the first attempt (leaves a marker file in the cell), complete on the next;
  ``crash_after_metrics``: write the cell completely (metrics.json included), then exit 13;
- ``hang``: sleep forever;
- ``pidfile``: write ``pid.txt`` into the cell, sleep ``seconds`` (option, default 2), complete;
- ``env``: complete, recording the worker's CUDA_VISIBLE_DEVICES, whether CUDA is initialised,
  its pid and torch thread count in metrics.json;
- ``log_metrics``: log ``num_events`` (option, default 20) events of the metric
  ``fault_injection_value`` to the MicroMetricLogger, then complete.

It needs no model (``requires_model = False``): the executor gives it a stand-in adapter.
A completing cell writes its one prediction, raw_results.csv, config.json and metrics.json
through the cell store, like every benchmark.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub import cell_store
from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.metric_logging import MicroMetricLogger

FAULT = "tests.support.fault_benchmark:FaultInjectionBenchmark"

SLEEP_SUBSETS = tuple(f"sleep_{tenths / 10:.1f}" for tenths in range(1, 51))
ACTIONS = (
    "ok",
    "raise",
    "oom",
    "dataset_error",
    "crash",
    "sigkill",
    "crash_once",
    "crash_after_metrics",
    "hang",
    "pidfile",
    "env",
    "log_metrics",
)
LOGGED_METRIC = "fault_injection_value"
MicroMetricLogger.register_metric(LOGGED_METRIC, float)


@register_benchmark("fault_injection", hidden=True)
class FaultInjectionBenchmark(Benchmark):
    """Cells that misbehave on purpose, for executor tests and the scheduling bench."""

    benchmark_name = "fault_injection"
    all_datasets = ACTIONS + SLEEP_SUBSETS
    description = "test-only: cells that sleep, raise, crash or hang on demand"
    requires_model = False

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        seconds: float = 2.0,
        num_events: int = 20,
    ) -> None:
        super().__init__(subsets_to_run=subsets_to_run, data_dir=data_dir)
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
        if not isinstance(num_events, int) or num_events < 0:
            raise ValueError(f"num_events must be an int >= 0, got {num_events!r}")
        self.seconds = float(seconds)
        self.num_events = num_events

    def _option_help(self) -> str:
        return ", seconds, num_events"

    def estimated_cost(self, subset: str | None) -> float | None:
        """Seconds a sleep cell takes (used to schedule the longest first); None otherwise."""
        if subset and subset.startswith("sleep_"):
            return float(subset.removeprefix("sleep_"))
        return None

    def load_datasets(self) -> pd.DataFrame:
        if "dataset_error" in self.subsets_to_run:
            raise ValueError("fault injection: the dataset could not be read")
        return pd.DataFrame(
            {
                "context": ["fault injection"],
                "question": ["?"],
                "answer_prefix": [""],
                "max_new_tokens": [1],
                "task": list(self.subsets_to_run[:1]) or ["ok"],
                "answer": [""],
            }
        )

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        return {"overall_score": 1.0, "task_scores": {str(t): 1.0 for t in results_df["task"]}}

    def run_benchmark(
        self,
        adapter: Any,
        result_dir: str | Path,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        show_progress: bool | None = None,
        on_phase: Any = None,
    ) -> dict[str, Any]:
        """Do what each selected subset says, then write the cell like a real benchmark."""
        cell = cell_store.start_run(result_dir)
        if on_phase is not None:
            on_phase("dataset")
        rows = self.load_datasets()
        if on_phase is not None:
            on_phase("run")
        extra: dict[str, Any] = {}
        for subset in self.subsets_to_run:
            extra.update(self._act(subset, cell))
        rows["predicted_answer"] = ""
        rows.insert(0, "row_id", range(len(rows)))
        cell_store.append_predictions(
            cell / cell_store.PREDICTIONS_FILE,
            [{"row_id": 0, "request_index": 0, "predicted_answer": ""}],
        )
        cell_store.write_raw_results(cell, rows.drop(columns=["context"]))
        cell_store.update_config(cell, benchmark=self.describe())
        metrics = {**self.post_run_evaluate(rows), **extra, "num_rows": len(rows)}
        metrics = cell_store.write_metrics(cell, metrics)
        if "crash_after_metrics" in self.subsets_to_run:
            os._exit(13)  # the cell is complete on disk, but its worker never reports it
        return metrics

    def _act(self, subset: str, cell: Path) -> dict[str, Any]:
        if subset.startswith("sleep_"):
            time.sleep(float(subset.removeprefix("sleep_")))
        elif subset == "raise":
            raise RuntimeError("fault injection: an exception inside the cell")
        elif subset == "oom":
            import torch

            raise torch.OutOfMemoryError("fault injection: CUDA out of memory (simulated)")
        elif subset in ("crash", "sigkill", "crash_once"):
            self._crash(subset, cell)
        elif subset == "hang":
            while True:
                time.sleep(60)
        elif subset == "pidfile":
            (cell / "pid.txt").write_text(str(os.getpid()), encoding="utf-8")
            time.sleep(self.seconds)
        elif subset == "env":
            return self._environment()
        elif subset == "log_metrics":
            self._log_events()
        return {}

    def _crash(self, subset: str, cell: Path) -> None:
        if subset == "crash":
            os._exit(13)
        marker = cell / "crashed_once.marker"
        if subset == "crash_once" and marker.exists():
            return
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)

    def _environment(self) -> dict[str, Any]:
        import torch

        return {
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cuda_initialized": bool(torch.cuda.is_initialized()),
            "pid": os.getpid(),
            "torch_threads": torch.get_num_threads(),
        }

    def _log_events(self) -> None:
        metric_logger = MicroMetricLogger()
        for index in range(self.num_events):
            if metric_logger.is_metric_enabled(LOGGED_METRIC):
                metric_logger.log(LOGGED_METRIC, float(index), metadata={"index": index})
