"""Atomic, durable file writes: every file of a cell is written through here.

A write goes to a temp file in the same folder, is fsynced, gets mode 0644 (minus the umask,
as a plain ``open`` would) and is renamed over the target. A reader sees the old file or the
complete new one, never a torn one; on any failure (a full disk included) the temp file is
removed and the error raised, so nothing half-written is left behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o644
#: errnos of the storage rather than of the input: no space, quota, read-only, I/O, too large
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


def is_disk_error(exc: BaseException) -> bool:
    """An OSError of the storage (full, over quota, read-only or failing), not of the input."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def disk_error_line(exc: BaseException) -> str:
    """One line for a disk error: what failed, where, and what to do."""
    where = getattr(exc, "filename", None)
    why = getattr(exc, "strerror", None) or str(exc)
    place = f" writing {where}" if where else ""
    return f"disk: {why}{place}; free space and run the same command again to resume"


def json_default(value: Any) -> Any:
    """numpy scalars and arrays (from pandas) as plain numbers and lists; anything else as str."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces; non-JSON values (torch.dtype, Path) by str."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=json_default)


def fingerprint_of(resolved: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a resolved config: what a cell's results depend on."""
    return hashlib.sha256(canonical_json(resolved).encode("utf-8")).hexdigest()


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def named_error(exc: OSError, target: Path) -> OSError:
    """``exc`` (of the same class, errno and reason) naming ``target`` rather than a temp
    file or nothing: the file the user asked for is the one to name."""
    return OSError(exc.errno, exc.strerror or str(exc), str(target))


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[Any]], object]) -> None:
    """Write ``path`` through ``write(handle)`` on a temp file, fsync, chmod, rename. An
    OSError names ``path`` (never the temp file)."""
    _write_atomic(Path(path), write, binary=False)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write the bytes ``data`` to ``path`` atomically (see module doc)."""
    _write_atomic(Path(path), lambda handle: handle.write(data), binary=True)


def _write_atomic(target: Path, write: Callable[[IO[Any]], object], binary: bool) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise named_error(exc, target) from exc
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, FILE_MODE & ~current_umask())
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise named_error(exc, target) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON to ``path`` atomically (see module doc)."""

    def dump(handle: IO[str]) -> None:
        json.dump(data, handle, indent=2, sort_keys=True, ensure_ascii=False, default=json_default)
        handle.write("\n")

    write_atomic(path, dump)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see module doc)."""
    write_atomic(path, lambda handle: handle.write(text))


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when missing, unreadable or not an object."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def update_json_file(path: str | os.PathLike[str], updates: dict[str, Any]) -> dict[str, Any]:
    """Read the JSON object at ``path`` (if any), merge ``updates`` into it, write it atomically.

    Keys not named in ``updates`` are preserved. A file that is not a JSON object raises
    ValueError naming it (it is never silently replaced). Returns the merged object.
    """
    target = Path(path)
    current: dict[str, Any] = {}
    if target.exists():
        try:
            loaded = json.loads(target.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{target} is not valid JSON ({exc}); fix or delete it") from exc
        if not isinstance(loaded, dict):
            raise ValueError(f"{target} must hold a JSON object, found {type(loaded).__name__}")
        current = loaded
    current.update(updates)
    write_json_atomic(target, current)
    return current
