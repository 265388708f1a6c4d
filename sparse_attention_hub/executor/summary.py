"""execution_summary.json: totals, timing, devices, every cell's status (and, for a complete
or skipped cell, its resource figures: resources.json), failures, versions."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store import (
    ERROR_FILE,
    disk_error_line,
    is_disk_error,
    read_resources,
    recorded_seconds,
    write_json_atomic,
)
from sparse_attention_hub.executor.config import (
    BenchmarkFailure,
    BenchmarkResult,
    BenchmarkStub,
)
from sparse_attention_hub.executor.protocol import CellOutcome, CellTask
from sparse_attention_hub.executor.scheduler_state import SchedulerReport

SUMMARY_FILE = "execution_summary.json"

log = logging.getLogger(__name__)


def versions() -> dict[str, str | None]:
    """torch, transformers and sparse_attention_hub versions, and the git commit if any."""
    import sparse_attention_hub

    return {
        "torch": _dist_version("torch"),
        "transformers": _dist_version("transformers"),
        "sparse_attention_hub": sparse_attention_hub.__version__,
        "git_commit": git_commit(Path(sparse_attention_hub.__file__).parent),
    }


def _dist_version(name: str) -> str | None:
    """An installed distribution's version, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git_commit(where: Path) -> str | None:
    """The HEAD commit of the repository holding ``where``, or None (not a checkout, no git)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and commit else None


def split_outcomes(
    outcomes: list[tuple[CellTask, CellOutcome]],
) -> tuple[list[BenchmarkResult], list[BenchmarkFailure]]:
    """The scheduler's final outcomes as BenchmarkResult and BenchmarkFailure lists."""
    results: list[BenchmarkResult] = []
    failures: list[BenchmarkFailure] = []
    for task, outcome in outcomes:
        if outcome.success:
            results.append(
                BenchmarkResult(task.stub, outcome.metrics, outcome.seconds, attempts=task.attempt)
            )
            continue
        error_file = Path(task.stub.result_dir) / ERROR_FILE
        failures.append(
            BenchmarkFailure(
                task.stub,
                outcome.error_message or "",
                outcome.error_type or "other",
                outcome.seconds,
                attempts=task.attempt,
                traceback_path=str(error_file) if error_file.exists() else None,
            )
        )
    return results, failures


def _cell(stub: BenchmarkStub, status: str, seconds: float | None, **extra: Any) -> dict[str, Any]:
    return {
        "cell": stub.cell_id,
        "model": stub.model_name,
        "sparse_config": stub.sparse_config_name,
        "benchmark": stub.benchmark_name,
        "subset": stub.subset,
        "status": status,
        "seconds": None if seconds is None else round(seconds, 3),
        "fingerprint": stub.fingerprint,
        **extra,
    }


def _cells(
    results: list[BenchmarkResult],
    failures: list[BenchmarkFailure],
    skipped: list[BenchmarkStub],
    not_run: list[BenchmarkStub],
    stopped_running: set[str],
) -> list[dict[str, Any]]:
    # a skipped cell keeps the time and resource figures its earlier run measured (as
    # results.csv does)
    cells = [
        _cell(s, "skipped", recorded_seconds(s.result_dir), resources=read_resources(s.result_dir))
        for s in skipped
    ]
    cells += [
        _cell(
            r.stub,
            "complete",
            r.execution_time,
            attempts=r.attempts,
            resources=read_resources(r.stub.result_dir),
        )
        for r in results
    ]
    cells += [
        _cell(f.stub, "failed", f.execution_time, category=f.error_type, attempts=f.attempts)
        for f in failures
    ]
    # a cell stopped mid-run has the seconds its worker recorded as it stopped
    cells += [
        _cell(s, "interrupted", recorded_seconds(s.result_dir))
        if s.cell_id in stopped_running
        else _cell(s, "not_run", None)
        for s in not_run
    ]
    return sorted(cells, key=lambda c: c["cell"])


def _failure(failure: BenchmarkFailure) -> dict[str, Any]:
    return {
        "cell": failure.stub.cell_id,
        "category": failure.error_type,
        "message": failure.error_message,
        "attempts": failure.attempts,
        "error_file": failure.traceback_path,
    }


def build_summary(
    *,
    started_at: float,
    wall_seconds: float,
    devices: list[str],
    num_workers: int,
    total: int,
    results: list[BenchmarkResult],
    failures: list[BenchmarkFailure],
    skipped: list[BenchmarkStub],
    not_run: list[BenchmarkStub],
    stale_moved: list[str],
    model_loads: int,
    worker_crashes: int,
    interrupted: str | None,
    scheduling: dict[str, Any] | None = None,
    stopped_running: set[str] | None = None,
    error: str | None = None,
    config_order: list[str] | None = None,
    backend: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary dict (JSON-able) of one run of the matrix; ``sparse_configs`` lists the
    config names in the order they were given (``sah report`` shows its rows in it)."""
    cells = _cells(results, failures, skipped, not_run, stopped_running or set())
    categories: dict[str, int] = {}
    for failure in failures:
        categories[failure.error_type] = categories.get(failure.error_type, 0) + 1
    return {
        "totals": {
            "cells": total,
            "completed": len(results),
            "failed": len(failures),
            "skipped": len(skipped),
            "not_run": len(not_run),
            "interrupted_while_running": len(stopped_running or ()),
            "stale_moved": len(stale_moved),
            "failure_categories": categories,
        },
        "timing": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started_at)),
            "wall_seconds": round(wall_seconds, 3),
            "cell_seconds": round(sum(r.execution_time for r in results), 3),
        },
        "devices": devices,
        "workers": num_workers,
        "model_loads": model_loads,
        "worker_crashes": worker_crashes,
        "interrupted": interrupted,
        "error": error,
        "scheduling": scheduling or {},
        "stale_moved": stale_moved,
        "sparse_configs": list(config_order or []),
        "cells": cells,
        "failures": [_failure(f) for f in failures],
        "versions": versions(),
        "backend": backend or {"name": "local"},
    }


def summarise_run(
    plan: list[tuple[BenchmarkStub, Any]],
    skipped: list[BenchmarkStub],
    stale_moved: list[str],
    report: SchedulerReport,
    *,
    started_at: float,
    wall_seconds: float,
    devices: list[str],
    num_workers: int,
    interrupted: str | None,
    backend: dict[str, Any],
) -> tuple[list[BenchmarkResult], list[BenchmarkFailure], dict[str, Any]]:
    """(results, failures, summary) of a finished run: its planned cells (``plan``: (stub,
    state)), the cells skipped as complete, the stale directories moved aside and the
    scheduler's report."""
    results, failures = split_outcomes(report.outcomes)
    summary = build_summary(
        started_at=started_at,
        wall_seconds=wall_seconds,
        devices=devices,
        num_workers=num_workers,
        total=len(plan),
        results=results,
        failures=failures,
        skipped=skipped,
        not_run=report.unfinished,
        stopped_running=report.stopped_running,
        stale_moved=stale_moved,
        model_loads=report.model_loads,
        worker_crashes=report.crashes,
        interrupted=interrupted,
        error=report.startup_error or report.disk_error or report.backend_error,
        config_order=list(dict.fromkeys(stub.sparse_config_name for stub, _ in plan)),
        backend=backend,
        scheduling=scheduling_stats(
            report.ready_at, report.timeline, {o.cell_id: o.seconds for _, o in report.outcomes}
        ),
    )
    return results, failures, summary


def write_summary(base_dir: str | Path, summary: dict[str, Any]) -> Path:
    """Write ``<base_dir>/execution_summary.json`` atomically."""
    path = Path(base_dir) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, summary)
    return path


def write_tables(base_dir: str | Path, summary: dict[str, Any]) -> str | None:
    """Write execution_summary.json and results.csv. On a disk error, log one line and return
    it (the cells' own files are what a rerun resumes from); other errors raise."""
    from sparse_attention_hub.executor.results import write_results_csv

    try:
        write_summary(base_dir, summary)
        write_results_csv(base_dir)
    except OSError as exc:
        if not is_disk_error(exc):
            raise
        line = disk_error_line(exc)
        log.error("%s", line)
        return line
    return None


def scheduling_stats(
    ready_at: list[float],
    timeline: list[tuple[str, int, float, float]],
    worker_seconds: dict[str, float],
) -> dict[str, Any]:
    """Makespan and per-cell dispatch overhead as seen by the parent (for bench scripts).

    ``overhead_ms_per_cell``: mean of (dispatch-to-result time in the parent) minus (the cell's
    time measured inside the worker): the pipes, the pickling and the loop's reaction time.
    """
    if not timeline:
        return {"worker_ready_s": [round(t, 3) for t in ready_at]}
    first_ready = min(ready_at) if ready_at else 0.0
    overheads = [
        end - start - worker_seconds.get(cell, end - start) for cell, _, start, end in timeline
    ]
    return {
        "worker_ready_s": [round(t, 3) for t in ready_at],
        "makespan_s": round(max(end for *_, end in timeline) - first_ready, 4),
        "overhead_ms_per_cell": round(1000.0 * sum(overheads) / len(overheads), 3),
        "timeline": [
            {"cell": cell, "worker": worker, "start_s": round(start, 4), "end_s": round(end, 4)}
            for cell, worker, start, end in timeline
        ],
    }
