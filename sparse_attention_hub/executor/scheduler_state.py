"""The scheduler's records: its view of one worker, and what a run of the loop produced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.executor.config import BenchmarkStub
from sparse_attention_hub.executor.protocol import CellOutcome, CellTask, WorkerSettings


@dataclass(eq=False)
class WorkerHandle:
    """The parent's view of one worker process."""

    settings: WorkerSettings
    process: Any
    conn: Any
    ready: bool = False
    task: CellTask | None = None
    dispatched_at: float = 0.0
    model_key: tuple[str, str] | None = None
    startup_error: str | None = None  # the traceback a worker sent before exiting

    @property
    def index(self) -> int:
        return self.settings.worker_index


@dataclass
class SchedulerReport:
    """What the loop produced: one outcome per finished cell, plus counts."""

    outcomes: list[tuple[CellTask, CellOutcome]] = field(default_factory=list)
    model_loads: int = 0
    workers_started: int = 0
    crashes: int = 0
    unfinished: list[BenchmarkStub] = field(default_factory=list)  # never finished
    stopped_running: set[str] = field(default_factory=set)  # cell ids stopped mid-run
    interrupted: bool = False
    startup_error: str | None = None  # why the loop gave up starting workers
    disk_error: str | None = None  # a cell failed for lack of disk: nothing more is dispatched
    backend_error: str | None = None  # the backend (a Ray cluster) was lost: the loop stopped
    # seconds since the loop started: when each worker became ready, and per finished cell
    # (cell_id, worker index, dispatched, finished) as seen by the parent
    ready_at: list[float] = field(default_factory=list)
    timeline: list[tuple[str, int, float, float]] = field(default_factory=list)
