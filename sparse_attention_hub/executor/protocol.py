"""The messages between the scheduler (parent) and a worker process, and their payloads.

    parent -> worker   ("run", CellTask) | ("stop",)
    worker -> parent   ("ready", pid) | ("started", cell_id) | ("finished", CellOutcome)
                       | ("progress", cell_id, requests_done, requests_total, tokens_per_s)
                         (a few times a second at most; see cell_progress.py)
                       | ("startup_failed", traceback)  (then it exits)

Everything here pickles; this module imports neither side, so both import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.executor.config import BenchmarkStub

#: set in a Ray actor's environment: the Ray node it runs on (its cells' config.json say it)
RAY_NODE_VARIABLE = "SAH_RAY_NODE_ID"


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
