"""A lock on the results directory that holds across machines: a lease file with a heartbeat.

:class:`~.lock.BaseDirLock` is a ``flock``: exact on one machine, but whether it reaches other
machines depends on the shared filesystem (NFS maps it to a byte-range lock; other
filesystems may not). A run of the Ray backend writes from every node, so it also holds this
lease: ``<base>/.sah_executor.lease`` says which host and process hold the directory, and the
holder rewrites it every ``HEARTBEAT`` seconds. Another run refuses to start while the lease
is fresh. A lease is free when it was given back, when its holder is a dead process on this
same host, or when its heartbeat is older than ``STALE_AFTER`` seconds (a holder on another
machine that crashed): the next run takes it over, so a crash never blocks a rerun for long.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sparse_attention_hub.executor.lock import BaseDirLocked

LEASE_FILE = ".sah_executor.lease"
HEARTBEAT = 10.0
STALE_AFTER = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def lease_is_free(holder: dict[str, Any] | None, age: float, host: str) -> bool:
    """Whether a lease with contents ``holder``, last written ``age`` seconds ago, is free.

    >>> lease_is_free({"host": "a", "pid": 1}, 5.0, "b")  # fresh, on another machine
    False
    >>> lease_is_free({"host": "a", "pid": 1}, 90.0, "b")  # its heartbeat stopped
    True
    """
    if holder is None or holder.get("released"):
        return True
    if age > STALE_AFTER:
        return True
    pid = holder.get("pid")
    return holder.get("host") == host and isinstance(pid, int) and not _pid_alive(pid)


def check_lease_free(base_dir: str | Path) -> None:
    """Raise BaseDirLocked if a live run holds ``base_dir``'s lease (a run that cannot hold
    the lease itself, the local backend, still respects one)."""
    path = Path(base_dir) / LEASE_FILE
    try:
        age = time.time() - path.stat().st_mtime
    except OSError:
        return
    holder = _read(path)
    if not lease_is_free(holder, age, socket.gethostname()):
        raise BaseDirLocked(_held_message(path, holder or {}, age))


def _held_message(path: Path, holder: dict[str, Any], age: float) -> str:
    return (
        f"another run (host {holder.get('host')}, pid {holder.get('pid')}) holds "
        f"{str(path.parent)!r}; its lease was renewed {age:.0f} s ago. Wait for it, or use "
        f"another result_dir; a crashed run's lease expires {STALE_AFTER:.0f} s after its "
        "last renewal"
    )


class RunLease:
    """``with RunLease(base):`` holds ``base`` for this run on every machine that sees it."""

    def __init__(self, base_dir: str | Path) -> None:
        self.path = Path(base_dir) / LEASE_FILE
        self.token = uuid.uuid4().hex
        self.host = socket.gethostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        record = {"host": self.host, "pid": os.getpid(), "token": self.token, "at": time.time()}
        temporary = self.path.with_name(f"{LEASE_FILE}.{self.token}")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, self.path)

    def __enter__(self) -> RunLease:
        holder = _read(self.path)
        age = time.time() - self.path.stat().st_mtime if self.path.exists() else 0.0
        if self.path.exists() and not lease_is_free(holder, age, self.host):
            raise BaseDirLocked(_held_message(self.path, holder or {}, age))
        self._write()
        time.sleep(0.05)  # two runs that took it over at once: the last write wins
        if (_read(self.path) or {}).get("token") != self.token:
            raise BaseDirLocked(f"another run took {str(self.path.parent)!r} at the same moment")
        self._thread = threading.Thread(target=self._renew, name="sah-lease", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            with contextlib.suppress(OSError):  # a full disk: the lease ages, the run goes on
                self._write()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        if (_read(self.path) or {}).get("token") == self.token:
            with contextlib.suppress(OSError):
                self.path.unlink()
