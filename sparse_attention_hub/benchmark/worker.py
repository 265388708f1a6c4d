"""The worker process: a persistent loop that runs one cell at a time and keeps its model.

A worker is started with the spawn method and sees only its own GPU (CUDA_VISIBLE_DEVICES is
in its environment before torch can initialise CUDA). It talks to the scheduler over one pipe:

    parent -> worker   ("run", CellTask) | ("stop",)
    worker -> parent   ("ready", pid) | ("started", cell_id) | ("finished", CellOutcome)
                       | ("startup_failed", traceback)  (then it exits)

SIGINT is ignored (the parent owns Ctrl-C); SIGTERM ends the running cell cleanly (logger
flushed, error.txt written) and the process exits. If the parent dies, the worker exits too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sparse_attention_hub.benchmark.executor_config import BenchmarkStub


@dataclass
class WorkerSettings:
    """What every cell of a worker shares: device and metric-logger settings."""

    worker_index: int
    gpu_id: int | None
    num_threads: int | None
    enabled_metrics: Any = None
    max_records: int | None = None
    sampling_factor: float = 1.0

    @property
    def cuda_visible_devices(self) -> str | None:
        """The worker's CUDA_VISIBLE_DEVICES: its GPU, as the parent numbers GPUs.

        When the parent itself runs under CUDA_VISIBLE_DEVICES (say "2,3"), gpu id 1 is the
        second entry ("3"), which is also how torch.cuda.device_count() counted it.
        """
        if self.gpu_id is None:
            return None
        parent = [
            e.strip() for e in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if e.strip()
        ]
        return parent[self.gpu_id] if self.gpu_id < len(parent) else str(self.gpu_id)


@dataclass
class CellTask:
    """One cell to run; ``attempt`` counts from 1."""

    stub: BenchmarkStub
    attempt: int = 1


@dataclass
class CellOutcome:
    """What a worker reports for a cell (success or a categorised failure)."""

    cell_id: str
    success: bool
    seconds: float
    metrics: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    model_loaded: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class WorkerTerminated(BaseException):
    """Raised inside a worker by SIGTERM so the running cell can flush and record why it ended."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise WorkerTerminated(f"worker received signal {signum}")


def _watch_parent(parent_pid: int) -> None:
    """Exit the worker when the parent process is gone, so no worker outlives a crashed parent."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent_pid:
            os._exit(3)


def worker_main(
    conn: Any, settings: WorkerSettings, parent_pid: int, cuda_visible_devices: str | None
) -> None:
    """Entry point of a worker process: set the device, then serve cells until told to stop.

    ``cuda_visible_devices`` is already in the environment the parent started us with; it is
    set again here, before torch is imported, in case a start method did not pass it on.
    """
    if cuda_visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    os.environ["SAH_PROGRESS"] = "0"  # per-benchmark bars would garble the parent's bar
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()

    try:
        runner = _start_up(settings)
    except BaseException:  # tell the parent why, then leave
        with contextlib.suppress(Exception):
            conn.send(("startup_failed", traceback.format_exc()))
        _exit_now(1)
    try:
        conn.send(("ready", os.getpid()))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return
            if message[0] == "stop":
                return
            task: CellTask = message[1]
            conn.send(("started", task.stub.cell_id))
            outcome = runner.run(task)
            conn.send(("finished", outcome))
    except WorkerTerminated:
        return
    finally:
        runner.close()
        _exit_now()


def _start_up(settings: WorkerSettings) -> Any:
    """Import torch and the cell runner (what can fail in a broken environment)."""
    import torch

    if settings.gpu_id is None and settings.num_threads:
        torch.set_num_threads(settings.num_threads)

    from sparse_attention_hub.benchmark.worker_cell import CellRunner

    return CellRunner(settings)


def _exit_now(code: int = 0) -> NoReturn:
    """Leave at once: every cell's files are written and its logger flushed, and a normal
    interpreter shutdown with torch and a model loaded can take seconds.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        from sparse_attention_hub.metric_logging import MicroMetricLogger

        MicroMetricLogger().flush()
    except Exception:
        pass
    try:  # what a normal exit runs for multiprocessing objects (semaphores made by libraries)
        from multiprocessing import util

        run_finalizers = getattr(util, "_run_finalizers", None)  # private, stable since 3.x
        if run_finalizers is not None:
            run_finalizers()
    except Exception:
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
