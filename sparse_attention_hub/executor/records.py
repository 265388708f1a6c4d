"""What the parent writes for a cell its worker could not report on (killed, timed out, never
started), and how it words a worker's death.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

from sparse_attention_hub import cell_store
from sparse_attention_hub.cell_store import COMPLETE, METRICS_FILE, cell_status, read_json
from sparse_attention_hub.executor.config import BenchmarkStub
from sparse_attention_hub.executor.matrix import resolved_config

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


def describe_exit(process: Any) -> str:
    """How a worker ended: a launcher's own words (``exit_reason``: a Ray actor's death), or
    its process exit code (:func:`exit_description`)."""
    reason = getattr(process, "exit_reason", None)
    return str(reason) if reason else exit_description(getattr(process, "exitcode", None))


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
    never started (or whose worker was stopped before it wrote its config: a timeout during
    setup) gets its fingerprint and resolved config here, so that the results table lists it
    and a rerun runs it again as ``failed``, not as another config's ``stale`` files.
    """
    result_dir = Path(stub.result_dir)
    try:
        result_dir.mkdir(parents=True, exist_ok=True)
        cell_store.write_error(
            result_dir, f"category: {category}\nattempt: {attempt}\n\n{message}\n{details}"
        )
        config = cell_store.read_config(result_dir)
        if config is None or "fingerprint" not in config:  # never started (or unreadable)
            identity = {"fingerprint": stub.fingerprint, "resolved_config": resolved_config(stub)}
            execution = (config or {}).get("execution")  # what a stopped worker wrote
            if isinstance(execution, dict):
                identity["execution"] = execution
            cell_store.write_json_atomic(result_dir / cell_store.CONFIG_FILE, identity)
        fields: dict[str, Any] = {"status": "failed", "category": category, "attempt": attempt}
        if seconds is not None:
            fields["seconds"] = round(seconds, 3)
        cell_store.update_execution(result_dir, **fields)
    except (OSError, ValueError) as exc:
        log.error("could not record the failure of %s: %s", stub.cell_id, exc)


def record_stopped_cell(stub: BenchmarkStub, attempt: int, seconds: float, why: str) -> None:
    """What a local worker writes when SIGTERM stops its cell (error.txt, execution status
    ``interrupted``: a rerun resumes it), written by the driver for a Ray actor it killed."""
    result_dir = Path(stub.result_dir)
    try:
        if cell_store.read_config(result_dir) is None:  # the cell never started
            return
        cell_store.write_error(result_dir, f"category: interrupted\nattempt: {attempt}\n\n{why}\n")
        cell_store.update_execution(
            result_dir,
            status="interrupted",
            category="interrupted",
            attempt=attempt,
            seconds=round(seconds, 3),
        )
    except (OSError, ValueError) as exc:
        log.error("could not record the stop of %s: %s", stub.cell_id, exc)


def completed_on_disk(
    stub: BenchmarkStub,
    required_files: tuple[str, ...],
    attempt: int,
    seconds: float,
    note: str = "the worker died after the cell was complete",
) -> dict[str, Any] | None:
    """The metrics of a cell whose worker died after the benchmark had finished it (metrics.json
    and the required files written, fingerprint matching), its execution record then marked
    complete; None when the cell is not complete.
    """
    if cell_status(stub.result_dir, stub.fingerprint, required_files).status != COMPLETE:
        return None
    result_dir = Path(stub.result_dir)
    try:
        cell_store.update_execution(
            result_dir,
            status="complete",
            seconds=round(seconds, 3),
            attempt=attempt,
            note=note,
        )
    except (OSError, ValueError) as exc:
        log.error("could not update config.json of %s: %s", stub.cell_id, exc)
    return read_json(result_dir / METRICS_FILE) or {}
