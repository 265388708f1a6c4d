"""Progress over cells: done, failed, skipped, running, ETA, and each worker's cell.

On a terminal this is a tqdm bar. When stderr is not a terminal (a batch job writing to a log
file) a bar would pile up carriage returns on one line, so each finished cell is logged on a
line of its own instead, with the same counts and an ETA.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from sparse_attention_hub.executor.config import ExecutionProgress
from sparse_attention_hub.executor.protocol import CellOutcome

log = logging.getLogger(__name__)


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressReporter:
    """Keeps ExecutionProgress and the progress display (none when verbose=False) in step.

    Args:
        total: cells in the matrix, skipped ones included.
        skipped: cells already complete.
        verbose: show progress (else only warnings reach the user).
        strip_prefix: dropped from cell ids in the display (e.g. the single model's folder).
        use_bar: a tqdm bar (default: when stderr is a terminal) or one log line per cell.
    """

    def __init__(
        self,
        total: int,
        skipped: int,
        verbose: bool,
        strip_prefix: str = "",
        use_bar: bool | None = None,
    ) -> None:
        self.progress = ExecutionProgress(total_stubs=total, skipped_stubs=skipped)
        self.verbose = verbose
        self.strip_prefix = strip_prefix
        self.bar: Any = None
        self._started = time.monotonic()
        if use_bar is None:
            use_bar = sys.stderr.isatty()
        if verbose and use_bar:
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
            elif self.verbose:
                self._log_line(outcome)
        self._refresh()

    def _counts(self) -> dict[str, Any]:
        p = self.progress
        return {
            "done": p.completed_stubs,
            "failed": p.failed_stubs,
            "skipped": p.skipped_stubs,
            "running": len(p.current_executions),
        }

    def eta_seconds(self) -> float | None:
        """Seconds left at the mean pace of the cells finished in this run (None before any)."""
        p = self.progress
        finished = p.completed_stubs + p.failed_stubs
        left = p.total_stubs - p.skipped_stubs - finished
        if finished == 0:
            return None
        return (time.monotonic() - self._started) / finished * left

    def _log_line(self, outcome: CellOutcome) -> None:
        p = self.progress
        finished = p.completed_stubs + p.failed_stubs + p.skipped_stubs
        eta = self.eta_seconds()
        counts = ", ".join(f"{k}={v}" for k, v in self._counts().items())
        log.info(
            "[%d/%d] %s %s in %.1f s (%s; ETA %s)",
            finished,
            p.total_stubs,
            outcome.cell_id.removeprefix(self.strip_prefix),
            "complete" if outcome.success else "failed",
            outcome.seconds,
            counts,
            "?" if eta is None else _format_seconds(eta),
        )

    def _refresh(self) -> None:
        if self.bar is None:
            return
        postfix = self._counts()
        for index, cell in sorted(self.progress.current_executions.items()):
            postfix[f"w{index}"] = cell.removeprefix(self.strip_prefix)
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        """Close the bar (once)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
