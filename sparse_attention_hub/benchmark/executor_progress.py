"""The progress bar over cells: done, failed, skipped, running, ETA, and each worker's cell."""

from __future__ import annotations

import logging
from typing import Any

from sparse_attention_hub.benchmark.executor_config import ExecutionProgress
from sparse_attention_hub.benchmark.worker import CellOutcome

log = logging.getLogger(__name__)


class ProgressReporter:
    """Keeps ExecutionProgress and a tqdm bar (disabled when verbose=False) in step."""

    def __init__(self, total: int, skipped: int, verbose: bool, strip_prefix: str = "") -> None:
        self.progress = ExecutionProgress(total_stubs=total, skipped_stubs=skipped)
        self.verbose = verbose
        self.strip_prefix = strip_prefix  # e.g. the model folder when the matrix has one model
        self.bar: Any = None
        if verbose:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=skipped, unit="cell", desc="benchmark matrix")
            self._refresh()

    def on_event(self, kind: str, running: dict[int, str], outcome: CellOutcome | None) -> None:
        """Scheduler callback: a cell was dispatched, finished or queued again."""
        self.progress.current_executions = dict(running)
        if kind == "finished" and outcome is not None:
            if outcome.success:
                self.progress.completed_stubs += 1
            else:
                self.progress.failed_stubs += 1
                log.warning(
                    "%s failed (%s): %s", outcome.cell_id, outcome.error_type, outcome.error_message
                )
            if self.bar is not None:
                self.bar.update(1)
        self._refresh()

    def _refresh(self) -> None:
        if self.bar is None:
            return
        p = self.progress
        postfix: dict[str, Any] = {
            "done": p.completed_stubs,
            "failed": p.failed_stubs,
            "skipped": p.skipped_stubs,
            "running": len(p.current_executions),
        }
        for index, cell in sorted(p.current_executions.items()):
            postfix[f"w{index}"] = cell.removeprefix(self.strip_prefix)
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        """Close the bar (once)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
