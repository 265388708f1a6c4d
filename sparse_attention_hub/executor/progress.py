"""Progress over cells: done, failed, skipped, running, ETA, and each running cell's requests.

On a terminal this is a tqdm bar whose postfix shows each running cell with its requests
done / total and tokens per second. When stderr is not a terminal (a batch job writing to a
log file) a bar would pile up carriage returns on one line, so each finished cell is logged
on a line of its own instead, with the same counts and an ETA, and every
``progress_interval`` seconds one line per running cell says how far it is.

The ETA counts requests, not cells (:mod:`.cell_progress`); before any cell has reported its
request count it falls back to the mean time per finished cell.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from sparse_attention_hub.executor.cell_progress import RequestTracker
from sparse_attention_hub.executor.config import ExecutionProgress
from sparse_attention_hub.executor.protocol import CellOutcome

log = logging.getLogger(__name__)

DEFAULT_PROGRESS_INTERVAL = 60.0  # seconds between progress lines without a terminal


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
        interval: seconds between the log lines of running cells (without a bar).
        clock: the time source (monotonic seconds).
    """

    def __init__(
        self,
        total: int,
        skipped: int,
        verbose: bool,
        strip_prefix: str = "",
        use_bar: bool | None = None,
        interval: float = DEFAULT_PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.progress = ExecutionProgress(total_stubs=total, skipped_stubs=skipped)
        self.verbose = verbose
        self.strip_prefix = strip_prefix
        self.bar: Any = None
        self.requests = RequestTracker()
        self.interval = interval
        self.clock = clock
        self._started = clock()
        self._last_lines = self._started
        self._since: dict[str, float] = {}  # running cell -> when it was first seen running
        if use_bar is None:
            use_bar = sys.stderr.isatty()
        if verbose and use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=skipped, unit="cell", desc="benchmark matrix")
            self._refresh()

    def on_event(self, kind: str, running: dict[int, str], outcome: CellOutcome | None) -> None:
        """Scheduler callback: a cell was dispatched, finished or queued again."""
        self.progress.current_executions = dict(running)
        now = self.clock()
        for cell in running.values():
            self._since.setdefault(cell, now)
        if kind == "finished" and outcome is not None:
            self._since.pop(outcome.cell_id, None)
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
            self.requests.finish(outcome.cell_id)
        self._refresh()

    def on_progress(self, cell_id: str, done: int, total: int, tokens_per_second: float) -> None:
        """Scheduler callback: a running cell reported requests done / total."""
        self.requests.update(cell_id, done, total, tokens_per_second)
        self._refresh()

    def tick(self) -> None:
        """Called often by the scheduler loop: without a bar, every ``interval`` seconds one
        log line per running cell."""
        now = self.clock()
        if self.bar is not None or not self.verbose or now - self._last_lines < self.interval:
            return
        self._last_lines = now
        eta = self.eta_seconds()
        for cell in sorted(self.progress.current_executions.values()):
            state = self.requests.describe(cell) or "starting (loading the model or data)"
            log.info(
                "%s: %s, running for %s (ETA of the matrix %s)",
                cell.removeprefix(self.strip_prefix),
                state,
                _format_seconds(now - self._since.get(cell, now)),
                "?" if eta is None else _format_seconds(eta),
            )

    def _counts(self) -> dict[str, Any]:
        p = self.progress
        return {
            "done": p.completed_stubs,
            "failed": p.failed_stubs,
            "skipped": p.skipped_stubs,
            "running": len(p.current_executions),
        }

    def eta_seconds(self) -> float | None:
        """Seconds left: requests left at the pace of requests answered in this run; before
        any request is answered, cells left at the mean pace of finished cells (None before
        either)."""
        p = self.progress
        finished = p.completed_stubs + p.failed_stubs
        left = p.total_stubs - p.skipped_stubs - finished
        elapsed = self.clock() - self._started
        not_reporting = left - len(self.requests.running)
        remaining = self.requests.remaining_requests(not_reporting)
        if remaining is not None and self.requests.requests_run > 0:
            return elapsed / self.requests.requests_run * remaining
        if finished == 0:
            return None
        return elapsed / finished * left

    def _log_line(self, outcome: CellOutcome) -> None:
        p = self.progress
        finished = p.completed_stubs + p.failed_stubs + p.skipped_stubs
        eta = self.eta_seconds()
        counts = ", ".join(f"{k}={v}" for k, v in self._counts().items())
        requests = self.requests.describe(outcome.cell_id)
        log.info(
            "[%d/%d] %s %s in %.1f s (%s; ETA %s)%s",
            finished,
            p.total_stubs,
            outcome.cell_id.removeprefix(self.strip_prefix),
            "complete" if outcome.success else "failed",
            outcome.seconds,
            counts,
            "?" if eta is None else _format_seconds(eta),
            f"; {requests}" if requests else "",
        )

    def _refresh(self) -> None:
        if self.bar is None:
            return
        postfix = self._counts()
        for index, cell in sorted(self.progress.current_executions.items()):
            state = self.requests.describe(cell)
            name = cell.removeprefix(self.strip_prefix)
            postfix[f"w{index}"] = f"{name} {state}" if state else name
        if self.requests.requests_run > 0:
            eta = self.eta_seconds()
            postfix["ETA"] = "?" if eta is None else _format_seconds(eta)
        self.bar.set_postfix(postfix, refresh=True)

    def close(self) -> None:
        """Close the bar (once)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
