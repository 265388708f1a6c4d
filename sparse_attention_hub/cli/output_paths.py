"""The files and folders a command writes for the user (``sah report --html``, ``--out``,
``sah calibrate --out``): checked before any work, and a full disk met while writing them.

A check names the path as the user gave it (never a temp file): a directory where a file is
wanted, a file where a folder is wanted or would be made, or a place that cannot be written
(it is probed by creating and removing an empty file there). A full disk is not bad input:
the command ends with one line and exit code 3 (``EXIT_DISK``), as ``sah run`` does.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path

from sparse_attention_hub.cli.common import EXIT_DISK

#: a full disk, a quota, a file too large or a failing device; a read-only place is an
#: output path that cannot be written (bad input, exit 2), not a disk to free
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def is_disk_full(exc: BaseException) -> bool:
    """An OSError of a full (or failing) disk."""
    return isinstance(exc, OSError) and exc.errno in FULL_ERRNOS


def disk_full_exit(exc: OSError) -> int:
    """Write the one line of a full disk (naming the file) to stderr; the exit code."""
    where = f" writing {exc.filename}" if exc.filename else ""
    sys.stderr.write(
        f"sah: error: disk: {exc.strerror or exc}{where}; "
        "free space and run the same command again\n"
    )
    return EXIT_DISK


def _nearest_existing(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists():
            return parent
    return None


def _probe(flag: str, given: str, folder: Path) -> None:
    """ValueError naming ``flag given`` when no file can be made in ``folder``; the OSError of
    a full disk as is (naming ``given``)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".sah_probe.", suffix=".tmp", dir=folder)
    except OSError as exc:
        if is_disk_full(exc):
            raise OSError(exc.errno, exc.strerror, given) from exc
        raise ValueError(f"{flag} {given}: cannot write there ({exc.strerror or exc})") from exc
    os.close(fd)
    os.unlink(tmp)


def check_output_file(flag: str, given: str, example: str) -> None:
    """Check the file ``given`` to ``flag`` can be written (see module doc); ``example`` is
    the file name suggested when ``given`` is a directory."""
    path = Path(given)
    if path.is_dir():
        raise ValueError(
            f"{flag} {given}: is a directory; give the file to write, e.g. {path / example}"
        )
    existing = _nearest_existing(path)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{flag} {given}: {existing} is a file, not a directory")
    if existing is not None:
        _probe(flag, given, existing)


def check_output_folder(flag: str, given: str) -> None:
    """Check the folder ``given`` to ``flag`` can be made and written (see module doc)."""
    path = Path(given)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {given}: is a file; give the folder to write into")
    existing = path if path.is_dir() else _nearest_existing(path)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{flag} {given}: {existing} is a file, not a directory")
    if existing is not None:
        _probe(flag, given, existing)
