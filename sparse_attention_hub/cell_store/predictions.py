"""The predictions log ``predictions.jsonl``: one JSON object per answered row, the resume log.

Records are appended per request and fsynced, so a crash loses at most the request being
written. Reading tolerates damage: a torn last line (a kill mid-append) and lines that do not
hold a record (garbage appended, a line cut by hand) are left out; on the resume path they are
also cut from the file (``repair=True``), so later appends start clean and the dropped rows run
again. A record is a JSON object with an int ``row_id``; a later record of a row wins (and on
the resume path the earlier ones are cut, so the log holds each row once).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store.atomic import json_default, write_atomic

logger = logging.getLogger(__name__)


@dataclass
class PredictionsScan:
    """What a predictions log holds: the good records (file order), the bad line numbers."""

    records: list[dict[str, Any]] = field(default_factory=list)
    good_lines: list[bytes] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # 1-based
    torn_tail: bool = False  # only the last line is bad (an interrupted append)

    @property
    def intact(self) -> bool:
        """No bad line and no row recorded twice."""
        return not self.bad_lines and len(self.row_ids) == len(self.records)

    @property
    def row_ids(self) -> set[int]:
        return {int(record["row_id"]) for record in self.records}


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line.decode("utf-8"))  # not json.loads(bytes): it guesses UTF-16
    except ValueError:
        return None
    row_id = value.get("row_id") if isinstance(value, dict) else None
    if isinstance(row_id, bool) or not isinstance(row_id, int):
        return None
    return value  # type: ignore[no-any-return]


def scan_predictions(path: str | os.PathLike[str]) -> PredictionsScan:
    """Parse the log at ``path`` (missing: empty) without changing it."""
    scan = PredictionsScan()
    target = Path(path)
    if not target.exists():
        return scan
    lines = target.read_bytes().split(b"\n")
    for number, line in enumerate(lines, start=1):
        is_last = number == len(lines)
        if not line.strip():
            continue
        record = None if is_last else _record(line)  # a last line has no newline: torn
        if record is None:
            scan.bad_lines.append(number)
            continue
        scan.records.append(record)
        scan.good_lines.append(line)
    last_content = max((n for n, line in enumerate(lines, 1) if line.strip()), default=0)
    scan.torn_tail = scan.bad_lines == [last_content] if scan.bad_lines else False
    return scan


def read_predictions(path: str | os.PathLike[str], repair: bool = True) -> list[dict[str, Any]]:
    """The good records of the predictions log at ``path`` (see the module doc).

    With ``repair`` (the resume path) bad lines are cut from the file and a row recorded more
    than once keeps only its last record, with a warning naming them; readers that must not
    write (a results table built while cells run) pass False.
    """
    target = Path(path)
    scan = scan_predictions(target)
    if not repair or scan.intact:
        return scan.records
    if scan.bad_lines:
        what = "a torn last line" if scan.torn_tail else f"bad line(s) {scan.bad_lines}"
        logger.warning("%s: dropping %s; those rows run again", target, what)
    kept = _last_of_each_row(scan.records)
    if len(kept) < len(scan.records):
        counts = Counter(int(record["row_id"]) for record in scan.records)
        twice = sorted(row for row, count in counts.items() if count > 1)
        logger.warning(
            "%s: rows %s recorded twice or more; keeping the last of each", target, twice
        )
    payload = b"".join(scan.good_lines[i] + b"\n" for i in kept).decode("utf-8")
    write_atomic(target, lambda handle: handle.write(payload))
    return [scan.records[i] for i in kept]


def _last_of_each_row(records: list[dict[str, Any]]) -> list[int]:
    """Indices (in file order) of the last record of each row id: a later record wins."""
    last = {int(record["row_id"]): index for index, record in enumerate(records)}
    return sorted(last.values())


def drop_rows(path: str | os.PathLike[str], row_ids: Iterable[int]) -> None:
    """Rewrite the log (atomically) without the records of ``row_ids``."""
    drop = set(row_ids)
    scan = scan_predictions(path)
    kept = [
        line
        for line, record in zip(scan.good_lines, scan.records, strict=True)
        if int(record["row_id"]) not in drop
    ]
    payload = b"".join(line + b"\n" for line in kept).decode("utf-8")
    write_atomic(path, lambda handle: handle.write(payload))


def answered_rows(path: str | os.PathLike[str], repair: bool = True) -> dict[int, dict[str, Any]]:
    """Row id -> its (last) prediction record."""
    return {int(record["row_id"]): record for record in read_predictions(path, repair)}


def append_predictions(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Append ``records`` as JSON lines to ``path`` and fsync, so a crash loses at most them.

    The batch is one write; on failure (a full disk) the file is cut back to its old length,
    so no torn line is left behind.
    """
    payload = "".join(
        json.dumps(record, ensure_ascii=False, sort_keys=True, default=json_default) + "\n"
        for record in records
    ).encode("utf-8")
    existed = os.path.exists(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            if not existed:  # leave no empty log behind
                os.unlink(path)
            raise
    finally:
        os.close(fd)
