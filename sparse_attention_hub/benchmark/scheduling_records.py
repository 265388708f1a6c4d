"""What the parent writes for a cell its worker could not report on (killed, timed out, never
started), and how it words a worker's death.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from sparse_attention_hub.benchmark.executor_config import BenchmarkStub
from sparse_attention_hub.benchmark.executor_stubs import (
    COMPLETE,
    CONFIG_FILE,
    ERROR_FILE,
    METRICS_FILE,
    cell_status,
    read_json,
    resolved_config,
    write_json_atomic,
)

log = logging.getLogger(__name__)


def exit_description(code: int | None) -> str:
    """``exit code 13``, ``killed by SIGKILL`` or ``no exit code`` for a process's exitcode."""
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def record_lost_cell(
    stub: BenchmarkStub,
    category: str,
    message: str,
    attempt: int,
    seconds: float | None,
    details: str = "",
) -> None:
    """error.txt and a failed execution record in config.json, written by the parent.

    The execution record the worker wrote (device, worker) is kept and updated; a cell that
    never started gets its config.json (fingerprint and resolved config) here, so that the
    results table lists it and a rerun runs it again.
    """
    result_dir = Path(stub.result_dir)
    try:
        result_dir.mkdir(parents=True, exist_ok=True)
        (result_dir / ERROR_FILE).write_text(
            f"category: {category}\nattempt: {attempt}\n\n{message}\n{details}", encoding="utf-8"
        )
        path = result_dir / CONFIG_FILE
        config: dict[str, Any] = read_json(path) or {
            "fingerprint": stub.fingerprint,
            "resolved_config": resolved_config(stub),
        }
        execution = config.get("execution")
        execution = dict(execution) if isinstance(execution, dict) else {}
        execution.update(status="failed", category=category, attempt=attempt)
        if seconds is not None:
            execution["seconds"] = round(seconds, 3)
        config["execution"] = execution
        write_json_atomic(path, config)
    except OSError:
        log.exception("could not write error.txt for %s", stub.cell_id)


def completed_on_disk(
    stub: BenchmarkStub, required_files: tuple[str, ...], attempt: int, seconds: float
) -> dict[str, Any] | None:
    """The metrics of a cell whose worker died after the benchmark had finished it (metrics.json
    and the required files written, fingerprint matching), its execution record then marked
    complete; None when the cell is not complete.
    """
    if cell_status(stub, required_files) != COMPLETE:
        return None
    result_dir = Path(stub.result_dir)
    try:
        config = read_json(result_dir / CONFIG_FILE) or {}
        execution = config.get("execution")
        execution = dict(execution) if isinstance(execution, dict) else {}
        execution.update(status="complete", seconds=round(seconds, 3), attempt=attempt)
        execution["note"] = "the worker died after the cell was complete"
        config["execution"] = execution
        write_json_atomic(result_dir / CONFIG_FILE, config)
    except OSError:
        log.exception("could not update config.json of %s", stub.cell_id)
    return read_json(result_dir / METRICS_FILE) or {}
