"""The Ray backend's worker: an actor that keeps its model between cells, like a local worker.

The class is plain Python; :mod:`.ray_launcher` wraps it with ``ray.remote`` (this module
does not import Ray, so it imports on a machine without it). It runs the same
:class:`~sparse_attention_hub.executor.worker_cell.CellRunner` as a worker process and speaks
the same messages (:mod:`.protocol`): ``run`` returns the cell's outcome, and the messages a
cell sends while it runs ("started", "progress") wait in a buffer the driver drains
(``drain``, served by a second actor thread while ``run`` works).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from sparse_attention_hub.executor.cell_progress import ProgressSender
from sparse_attention_hub.executor.protocol import (
    RAY_NODE_VARIABLE,
    CellOutcome,
    CellTask,
    WorkerSettings,
)
from sparse_attention_hub.node_probe import node_facts


class CellActor:
    """One worker slot on a Ray node; ``start`` must succeed before ``run``."""

    def __init__(self, settings: WorkerSettings, environment: dict[str, str] | None = None) -> None:
        """``environment``: the driver's variables to set here before anything is imported
        (PYTHONPATH also extends sys.path: benchmarks named by import path)."""
        for key, value in (environment or {}).items():
            os.environ[key] = value
            if key == "PYTHONPATH":
                sys.path[:0] = [p for p in value.split(os.pathsep) if p and p not in sys.path]
        self.settings = settings
        self.runner: Any = None
        self._messages: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()

    def start(self) -> dict[str, Any]:
        """Import torch and the cell runner (what fails in a broken environment); returns the
        node's facts (host, Ray node id, pid, versions) and the worker's index."""
        import ray

        from sparse_attention_hub.executor.worker import _start_up, quiet_tqdm_lock

        os.environ["SAH_PROGRESS"] = "0"  # per-benchmark bars would garble the driver's bar
        node_id = ray.get_runtime_context().get_node_id()
        os.environ[RAY_NODE_VARIABLE] = node_id  # each cell's config.json records it
        quiet_tqdm_lock()
        self.runner = _start_up(self.settings)
        return {**node_facts(), "node_id": node_id, "worker": self.settings.worker_index}

    def _post(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._messages.append(message)

    def run(self, task: CellTask) -> CellOutcome:
        """Run one cell (model kept from the previous cell when it is the same)."""
        self._post(("started", task.stub.cell_id))
        outcome: CellOutcome = self.runner.run(task, ProgressSender(self._post, task.stub.cell_id))
        return outcome

    def drain(self) -> list[tuple[Any, ...]]:
        """The messages posted since the last call, oldest first."""
        with self._lock:
            messages, self._messages = self._messages, []
        return messages

    def close(self) -> None:
        """Release the model and flush the metric logger (the actor is about to be killed)."""
        if self.runner is not None:
            self.runner.close()
        from sparse_attention_hub.metric_logging import MicroMetricLogger

        MicroMetricLogger().flush()
