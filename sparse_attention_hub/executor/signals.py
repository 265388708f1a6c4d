"""SIGINT and SIGTERM in the executor's parent process: ask the run to stop, do not die.

The scheduler loop polls the stop request at least every 0.25 s, then stops its workers
(SIGTERM, then SIGKILL after a grace period), writes the summary and raises
ExecutionInterrupted. Handlers can only be installed from the main thread; elsewhere the
caller's handlers stay (use BenchmarkExecutor.request_stop from another thread).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


class StopOnSignals:
    """Within ``with``: SIGINT and SIGTERM call ``request_stop(signal name)``."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, request_stop: Callable[[str], None]) -> None:
        self.request_stop = request_stop
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.request_stop(signal.Signals(signum).name)

    def __enter__(self) -> StopOnSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous.clear()
