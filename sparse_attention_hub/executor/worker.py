"""The worker process: a persistent loop that runs one cell at a time and keeps its model.

A worker is started with the spawn method and sees only its own GPU (CUDA_VISIBLE_DEVICES is
in its environment before torch can initialise CUDA). It talks to the scheduler over one pipe,
with the messages of :mod:`.protocol`.

SIGINT is ignored (the parent owns Ctrl-C); SIGTERM ends the running cell cleanly (logger
flushed, error.txt written) and the process exits. If the parent dies, the worker is killed
at once on Linux (PR_SET_PDEATHSIG), elsewhere within a second (a polling thread).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, NoReturn

from sparse_attention_hub.executor.cell_progress import ProgressSender
from sparse_attention_hub.executor.protocol import (
    CellTask,
    WorkerSettings,
    WorkerTerminated,
)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise WorkerTerminated(f"worker received signal {signum}")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> bool:
    """Ask Linux to SIGKILL this process the moment its parent dies (PR_SET_PDEATHSIG).

    Returns False where that is not available (other systems: the 1 s poll of
    :func:`_watch_parent` remains). If the parent died before the call, exits at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(3)
    return True


def quiet_tqdm_lock() -> None:
    """Give tqdm a thread lock instead of its default multiprocessing one.

    tqdm's default lock is a multiprocessing semaphore, registered with the parent's resource
    tracker; a worker killed while holding it made the parent warn about a leaked semaphore.
    Workers never share a terminal line with each other, so a thread lock is enough.
    """
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


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
    die_with_parent(parent_pid)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    quiet_tqdm_lock()

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
            outcome = runner.run(task, ProgressSender(conn.send, task.stub.cell_id))
            conn.send(("finished", outcome))
    except WorkerTerminated:
        return
    finally:
        runner.close()
        _exit_now()


def _start_up(settings: WorkerSettings) -> Any:
    """Import torch, the benchmark suite and the cell runner (what can fail in a broken
    environment)."""
    import torch

    if settings.gpu_id is None and settings.num_threads:
        torch.set_num_threads(settings.num_threads)

    # what every cell needs, imported before the worker says it is ready: a cell's time (and
    # the scheduler's view of it) is then the cell's own work
    import sparse_attention_hub.benchmarks.base  # pandas and the run loop
    import sparse_attention_hub.sparse_attention  # noqa: F401  (registers its metrics)
    from sparse_attention_hub.executor.worker_cell import CellRunner

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
