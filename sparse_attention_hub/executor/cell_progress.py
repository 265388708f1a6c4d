"""Progress inside a cell: requests done / total and generated tokens per second.

In the worker, :class:`ProgressSender` is the run loop's ``on_progress`` callback: it sends
``("progress", cell_id, done, total, tokens_per_second)`` over the worker's pipe, at most
every ``min_interval`` seconds (the first and the last report always go). In the parent,
:class:`RequestTracker` keeps each running cell's last report and the request counts the ETA
is computed from: requests, not cells (cells of 5 and of 500 requests weigh what they cost;
a cell whose request count is not known yet counts as the mean of the known ones).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIN_SEND_INTERVAL = 0.5  # seconds between two reports of one worker


class ProgressSender:
    """The worker side: a throttled ``on_progress(done, total, generated_tokens)``."""

    def __init__(
        self,
        send: Callable[[tuple[Any, ...]], None],
        cell_id: str,
        min_interval: float = MIN_SEND_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.send = send
        self.cell_id = cell_id
        self.min_interval = min_interval
        self.clock = clock
        self._start: float | None = None
        self._last = 0.0

    def __call__(self, done: int, total: int, generated_tokens: int) -> None:
        now = self.clock()
        first = self._start is None
        if self._start is None:
            self._start = now
        if not first and done < total and now - self._last < self.min_interval:
            return
        self._last = now
        elapsed = now - self._start
        rate = generated_tokens / elapsed if elapsed > 0 else 0.0
        with contextlib.suppress(OSError, ValueError):  # a gone parent: the worker ends too
            self.send(("progress", self.cell_id, int(done), int(total), float(rate)))


@dataclass
class CellProgress:
    """The last report of a running cell (``done_at_start``: requests resumed, not run)."""

    done: int
    total: int
    tokens_per_second: float
    done_at_start: int


class RequestTracker:
    """The parent side: running cells' reports, and requests run so far for the ETA."""

    def __init__(self) -> None:
        self.running: dict[str, CellProgress] = {}
        self.finished_totals: list[int] = []
        self.requests_run = 0  # requests answered in this run (resumed ones not counted)

    def update(self, cell_id: str, done: int, total: int, tokens_per_second: float) -> None:
        previous = self.running.get(cell_id)
        if previous is None:
            self.running[cell_id] = CellProgress(done, total, tokens_per_second, done)
            return
        self.requests_run += max(0, done - previous.done)
        self.running[cell_id] = CellProgress(done, total, tokens_per_second, previous.done_at_start)

    def finish(self, cell_id: str) -> None:
        cell = self.running.pop(cell_id, None)
        if cell is not None:
            self.finished_totals.append(cell.total - cell.done_at_start)

    def remaining_requests(self, cells_not_reporting: int) -> float | None:
        """Requests left: the running cells' own counts, plus ``cells_not_reporting`` cells
        (pending, or running without a report yet) at the mean request count of the cells
        seen so far; None before any cell reported its count."""
        known = self.finished_totals + [c.total - c.done_at_start for c in self.running.values()]
        if not known:
            return None
        mean = sum(known) / len(known)
        running = sum(c.total - c.done for c in self.running.values())
        return running + max(0, cells_not_reporting) * mean

    def describe(self, cell_id: str) -> str | None:
        """``12/40 requests, 31.5 tok/s`` for a cell that reported, else None."""
        cell = self.running.get(cell_id)
        if cell is None:
            return None
        return f"{cell.done}/{cell.total} requests, {cell.tokens_per_second:.1f} tok/s"
