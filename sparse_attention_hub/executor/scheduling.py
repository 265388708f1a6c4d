"""The parent's scheduler loop: persistent workers, model affinity, timeouts, crashes, Ctrl-C.

Each worker has its own pipe (a worker killed mid-write can only break its own channel, never
a queue shared with the others). The loop waits on every pipe and every process sentinel at
once (``multiprocessing.connection.wait``), so a dead worker is noticed at once, its cell is
retried on a replacement (up to ``max_retries``) and its slot is freed. A cell that runs past
``timeout_per_benchmark`` has its worker killed and replaced. Only a worker's death is
retried: an exception in a cell is reported by the worker (retrying a deterministic error
wastes the GPU), and a timed-out cell would most likely hang again; a rerun of the matrix
retries every failed cell.

If workers die during start-up MAX_STARTUP_FAILURES times in a row (a broken environment),
the loop gives up: every cell not yet run is recorded as a ``worker_crash`` failure with the
reason (the worker's exception when it could send it) and ``SchedulerReport.startup_error``
says why; the executor still writes the summary, then raises.

Choice of cell for an idle worker: the longest pending cell of the model it holds; else the
longest of a model no other worker holds; else the longest overall.

A backend that is lost as a whole (``health`` returns a line: a Ray cluster whose GCS stopped
answering) stops the loop as a stop request does: running cells stay as they are on disk
(``partial``, resumed by a rerun), ``SchedulerReport.backend_error`` says why.

Where workers run is the launcher's business (:mod:`.local_launcher`: spawned processes on
this machine; :mod:`.ray_launcher`: Ray actors on a cluster). The loop only needs a process
(``sentinel``, ``is_alive``, ``terminate``, ``kill``, ``join``, ``exitcode``) and a pipe.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from sparse_attention_hub.executor.config import (
    DISK,
    OTHER,
    TIMEOUT,
    WORKER_CRASH,
    BenchmarkStub,
)
from sparse_attention_hub.executor.local_launcher import Launcher, launch_local
from sparse_attention_hub.executor.protocol import CellOutcome, CellTask, WorkerSettings
from sparse_attention_hub.executor.records import (
    completed_on_disk,
    describe_exit,
    record_lost_cell,
)
from sparse_attention_hub.executor.scheduler_state import SchedulerReport, WorkerHandle

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 5.0
MAX_STARTUP_FAILURES = 3


class Scheduler:
    """Runs ``stubs`` over ``len(worker_settings)`` workers; see the module docstring."""

    def __init__(
        self,
        stubs: list[BenchmarkStub],
        worker_settings: list[WorkerSettings],
        timeout: float | None,
        max_retries: int,
        should_stop: Callable[[], bool],
        on_event: Callable[[str, dict[int, str], CellOutcome | None], None] | None = None,
        required_files: tuple[str, ...] | None = None,
        on_progress: Callable[[str, int, int, float], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        launcher: Launcher | None = None,
        health: Callable[[], str | None] | None = None,
    ) -> None:
        self.pending = sorted(stubs, key=lambda s: -(s.estimated_cost or 0.0))
        self.settings = worker_settings
        self.timeout = timeout
        self.max_retries = max_retries
        self.should_stop = should_stop
        self.required_files = required_files  # None: never trust a dead worker's cell
        self.on_event = on_event or (lambda kind, running, outcome: None)
        self.on_progress = on_progress or (lambda cell, done, total, rate: None)
        self.on_tick = on_tick or (lambda: None)
        self.launch: Launcher = launcher or launch_local
        self.health = health or (lambda: None)  # a lost backend (Ray cluster): one line
        self.workers: dict[int, WorkerHandle] = {}
        self.attempts: dict[str, int] = {}
        self.report = SchedulerReport()
        self._startup_failures = 0
        self._t0 = time.monotonic()

    # -- worker lifecycle -------------------------------------------------------------
    def _start_worker(self, settings: WorkerSettings) -> None:
        process, conn = self.launch(settings)
        self.workers[settings.worker_index] = WorkerHandle(settings, process, conn)
        self.report.workers_started += 1

    def _kill(self, handle: WorkerHandle, grace: float) -> None:
        """Stop a worker: SIGTERM, wait up to ``grace`` seconds, then SIGKILL."""
        process = handle.process
        if process.is_alive():
            process.terminate()
            process.join(grace)
        if process.is_alive():
            process.kill()
            process.join(5.0)
        handle.conn.close()

    def shutdown(self) -> None:
        """Ask idle workers to stop, then terminate the rest; no process is left behind."""
        for handle in self.workers.values():
            if handle.task is None and handle.process.is_alive():
                with contextlib.suppress(OSError):
                    handle.conn.send(("stop",))
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for handle in self.workers.values():
            if handle.task is None:
                handle.process.join(max(0.0, deadline - time.monotonic()))
        for handle in self.workers.values():
            if handle.process.is_alive():
                handle.process.terminate()
        for handle in self.workers.values():
            handle.process.join(max(0.1, deadline - time.monotonic()))
            if handle.process.is_alive():
                handle.process.kill()
                handle.process.join(2.0)
            handle.conn.close()
        self.workers.clear()

    # -- dispatch ------------------------------------------------------------------------
    def _pick(self, handle: WorkerHandle) -> BenchmarkStub:
        for stub in self.pending:
            if handle.model_key is not None and stub.model_key == handle.model_key:
                return stub
        held = {w.model_key for w in self.workers.values() if w is not handle}
        for stub in self.pending:
            if stub.model_key not in held:
                return stub
        return self.pending[0]

    def _dispatch(self) -> None:
        if self.report.disk_error is not None:  # every further cell would fail the same way
            return
        for handle in self.workers.values():
            if not self.pending:
                return
            if not handle.ready or handle.task is not None:
                continue
            stub = self._pick(handle)
            self.pending.remove(stub)
            attempt = self.attempts.get(stub.cell_id, 0) + 1
            self.attempts[stub.cell_id] = attempt
            handle.task = CellTask(stub, attempt)
            handle.dispatched_at = time.monotonic()
            try:
                handle.conn.send(("run", handle.task))
            except OSError:
                pass  # a dead worker is caught by its sentinel
            except Exception as exc:  # the cell does not pickle: fail it, the worker is fine
                self._fail_running(handle, OTHER, f"cannot send the cell to a worker: {exc!r}")
                continue
            handle.model_key = stub.model_key
            self._emit("dispatch", None)

    def _running(self) -> dict[int, str]:
        return {i: h.task.stub.cell_id for i, h in self.workers.items() if h.task is not None}

    def _emit(self, kind: str, outcome: CellOutcome | None) -> None:
        self.on_event(kind, self._running(), outcome)

    # -- events --------------------------------------------------------------------------
    def _on_message(self, handle: WorkerHandle, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            handle.ready = True
            self._startup_failures = 0
            self.report.ready_at.append(time.monotonic() - self._t0)
        elif kind == "progress" and handle.task is not None:
            _, cell_id, done, total, rate = message
            if cell_id == handle.task.stub.cell_id:  # not a late report of an earlier cell
                self.on_progress(cell_id, done, total, rate)
        elif kind == "startup_failed":
            handle.startup_error = str(message[1])
        elif kind == "finished" and handle.task is not None:
            outcome: CellOutcome = message[1]
            if outcome.model_loaded:
                self.report.model_loads += 1
            self.report.outcomes.append((handle.task, outcome))
            now = time.monotonic() - self._t0
            start = handle.dispatched_at - self._t0
            self.report.timeline.append((outcome.cell_id, handle.index, start, now))
            handle.task = None
            if outcome.error_type == DISK and self.report.disk_error is None:
                self.report.disk_error = outcome.error_message
                log.info("%s; no further cell is started", outcome.error_message)
            self._emit("finished", outcome)

    def _drain(self, handle: WorkerHandle) -> None:
        try:
            while handle.conn.poll():
                self._on_message(handle, handle.conn.recv())
        except (EOFError, OSError):
            pass

    def _fail_running(self, handle: WorkerHandle, category: str, message: str) -> None:
        """Record the running cell of a lost worker, or queue it again for a retry."""
        task = handle.task
        handle.task = None
        if task is None:
            return
        stub = task.stub
        seconds = time.monotonic() - handle.dispatched_at
        if category == WORKER_CRASH and self._kept_complete(task, seconds):
            return
        if category == WORKER_CRASH and task.attempt <= self.max_retries and not self.should_stop():
            log.warning("%s: %s; retrying (attempt %d)", stub.cell_id, message, task.attempt + 1)
            self.pending.insert(0, stub)
            self._emit("retry", None)
            return
        outcome = CellOutcome(
            stub.cell_id, False, seconds, error_type=category, error_message=message
        )
        self.report.outcomes.append((task, outcome))
        record_lost_cell(stub, category, message, task.attempt, seconds)
        self._emit("finished", outcome)

    def _kept_complete(
        self,
        task: CellTask,
        seconds: float,
        why: str = "the worker died after the cell was complete",
    ) -> bool:
        """A worker that died after its benchmark wrote metrics.json (and the required files,
        with a matching fingerprint) finished the cell: keep it rather than run it again.
        Also a cell whose report had not arrived when a stop came (``why`` says which)."""
        if self.required_files is None:
            return False
        metrics = completed_on_disk(task.stub, self.required_files, task.attempt, seconds, why)
        if metrics is None:
            return False
        log.warning("%s: %s; kept", task.stub.cell_id, why)
        outcome = CellOutcome(task.stub.cell_id, True, seconds, metrics=metrics)
        self.report.outcomes.append((task, outcome))
        self._emit("finished", outcome)
        return True

    def _replace(self, handle: WorkerHandle) -> None:
        del self.workers[handle.index]
        if self.pending and not self.should_stop():
            self._start_worker(handle.settings)

    def _on_death(self, handle: WorkerHandle) -> None:
        self._drain(handle)
        if handle.process.is_alive():  # its pipe broke but the process lingers
            self._kill(handle, grace=1.0)
        how = describe_exit(handle.process)
        handle.conn.close()
        if not handle.ready and not self.should_stop():  # dying while stopping is expected
            self._startup_failures += 1
            if self._startup_failures >= MAX_STARTUP_FAILURES:
                self._give_up_starting(handle, how)
                return
        self.report.crashes += 1
        self._fail_running(handle, WORKER_CRASH, f"worker {handle.index} died ({how})")
        self._replace(handle)

    def _give_up_starting(self, handle: WorkerHandle, how: str) -> None:
        """Workers keep dying before they are ready: fail every cell not yet run, with why."""
        del self.workers[handle.index]
        details = (handle.startup_error or "").strip()
        why = (
            details.splitlines()[-1]
            if details
            else (f"it {how} before it could report an error; see its output on stderr")
        )
        message = (
            f"worker processes died during start-up {self._startup_failures} times in a row; "
            f"the last one: {why}"
        )
        self.report.startup_error = message
        log.error("%s\n%s", message, details)
        pending, self.pending = self.pending, []
        for stub in pending:
            task = CellTask(stub, self.attempts.get(stub.cell_id, 0) + 1)
            outcome = CellOutcome(
                stub.cell_id, False, 0.0, error_type=WORKER_CRASH, error_message=message
            )
            self.report.outcomes.append((task, outcome))
            record_lost_cell(stub, WORKER_CRASH, message, task.attempt, None, details)
            self._emit("finished", outcome)

    def _check_timeouts(self) -> None:
        if self.timeout is None:
            return
        now = time.monotonic()
        for handle in list(self.workers.values()):
            if handle.task is not None and now - handle.dispatched_at > self.timeout:
                cell = handle.task.stub.cell_id
                log.warning(
                    "%s exceeded timeout_per_benchmark=%ss; stopping its worker", cell, self.timeout
                )
                self._kill(handle, grace=2.0)
                self._fail_running(handle, TIMEOUT, f"timed out after {self.timeout}s")
                self._replace(handle)

    def _wait_timeout(self) -> float:
        wait_for = 0.25
        if self.timeout is not None:
            now = time.monotonic()
            for handle in self.workers.values():
                if handle.task is not None:
                    wait_for = min(wait_for, max(0.0, handle.dispatched_at + self.timeout - now))
        return wait_for

    # -- main loop -----------------------------------------------------------------------
    def run(self) -> SchedulerReport:
        """Run until every cell is finished or a stop is requested; workers are always stopped."""
        self._t0 = time.monotonic()
        try:
            for settings in self.settings:
                self._start_worker(settings)
            while (self.pending and self.report.disk_error is None) or any(
                h.task is not None for h in self.workers.values()
            ):
                if self.should_stop():
                    self.report.interrupted = True
                    break
                if self.report.startup_error is not None:
                    break
                if (lost := self.health()) is not None:
                    self.report.backend_error = lost
                    log.error("%s; stopping the run", lost)
                    break
                self._dispatch()
                self._step()
                self.on_tick()
        finally:
            for handle in self.workers.values():  # reports already on their way
                self._drain(handle)
            running = [(h.task, h.dispatched_at) for h in self.workers.values() if h.task]
            self.shutdown()
            why = "its report had not arrived when the run stopped, but the cell was complete"
            stopped = [
                task.stub
                for task, at in running
                if not self._kept_complete(task, time.monotonic() - at, why)
            ]
            self.report.unfinished = stopped + list(self.pending)
            self.report.stopped_running = {stub.cell_id for stub in stopped}
        return self.report

    def _step(self) -> None:
        by_object: dict[Any, WorkerHandle] = {}
        for handle in self.workers.values():
            by_object[handle.conn] = handle
            by_object[handle.process.sentinel] = handle
        ready = wait(list(by_object), timeout=self._wait_timeout())
        dead: list[WorkerHandle] = []
        for obj in ready:
            handle = by_object[obj]
            if obj == handle.process.sentinel:
                dead.append(handle)
                continue
            try:
                self._on_message(handle, handle.conn.recv())
            except (EOFError, OSError):
                dead.append(handle)
        for handle in dict.fromkeys(dead):
            if handle.index in self.workers and self.workers[handle.index] is handle:
                handle.process.join(2.0)
                self._on_death(handle)
        self._check_timeouts()
