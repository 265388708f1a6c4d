"""One executor per results directory: an advisory lock on ``<base>/.sah_executor.lock``.

Two runs writing the same cells would interleave predictions and overwrite each other's
metrics. The lock is a POSIX ``flock``: the kernel drops it when its holder exits, even by
SIGKILL, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

LOCK_FILE = ".sah_executor.lock"


class BaseDirLocked(RuntimeError):
    """Another executor is running on the same base_result_dir."""


class BaseDirLock:
    """``with BaseDirLock(base):`` holds the results directory for this process."""

    def __init__(self, base_dir: str | Path) -> None:
        self.path = Path(base_dir) / LOCK_FILE
        self.handle: Any = None

    def __enter__(self) -> BaseDirLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: run unguarded
            return self
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise BaseDirLocked(
                f"another BenchmarkExecutor (pid {holder}) is running on {str(self.path.parent)!r}; "
                "wait for it or use another base_result_dir"
            ) from None
        try:  # the pid is for the message above; on a full disk the lock holds without it
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError:
            pass
        self.handle = handle
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the descriptor releases the flock
            self.handle = None
