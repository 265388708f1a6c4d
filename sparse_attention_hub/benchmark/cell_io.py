"""Files of a cell directory: the predictions resume log, config.json and metrics.json.

A cell directory holds ``predictions.jsonl`` (one JSON object per answered row, appended and
fsynced after every request: the resume log), ``raw_results.csv``, ``config.json`` (updated by
read-update-write, so keys other writers put there survive) and ``metrics.json`` (written last
and atomically; its presence marks the cell complete).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
RAW_RESULTS_FILE = "raw_results.csv"
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"


def json_default(value: Any) -> Any:
    """numpy scalars and arrays (from pandas) as plain numbers and lists; anything else as str."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temp file in the same folder and a rename.

    A reader sees either the old file, no file, or the complete new file, never a torn one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(
                data, handle, indent=2, sort_keys=True, ensure_ascii=False, default=json_default
            )
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_json_file(path: str | os.PathLike[str], updates: dict[str, Any]) -> dict[str, Any]:
    """Read the JSON object at ``path`` (if any), merge ``updates`` into it, write it atomically.

    Keys not named in ``updates`` are preserved (the executor writes its own keys there).
    Returns the merged object.
    """
    target = Path(path)
    current: dict[str, Any] = {}
    if target.exists():
        try:
            loaded = json.loads(target.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{target} is not valid JSON ({exc}); fix or delete it") from exc
        if not isinstance(loaded, dict):
            raise ValueError(f"{target} must hold a JSON object, found {type(loaded).__name__}")
        current = loaded
    current.update(updates)
    write_json_atomic(target, current)
    return current


def read_predictions(path: str | os.PathLike[str], repair: bool = True) -> list[dict[str, Any]]:
    """The records of a predictions log, tolerating a torn last line left by a crash.

    A torn (unparseable, or not newline-terminated) last line is left out and, with ``repair``
    (the resume path), cut off the file so later appends start on a clean line; readers that
    must not write (a results table built while cells may still be running) pass
    ``repair=False``. A bad line anywhere else is an error: the log is corrupt.
    """
    target = Path(path)
    if not target.exists():
        return []
    raw = target.read_bytes()
    lines = raw.split(b"\n")
    records: list[dict[str, Any]] = []
    good_bytes = 0
    for number, line in enumerate(lines):
        is_last = number == len(lines) - 1
        if not line.strip():
            good_bytes += len(line) + (0 if is_last else 1)
            continue
        try:
            record = json.loads(line)
            if is_last:
                raise ValueError("no trailing newline")
        except ValueError:
            if number >= len(lines) - 2 and all(not rest.strip() for rest in lines[number + 1 :]):
                if repair:
                    logger.warning(
                        "%s: dropping a torn last line left by an interrupted run", target
                    )
                    with open(target, "r+b") as handle:
                        handle.truncate(good_bytes)
                return records
            raise ValueError(f"{target}: line {number + 1} is not valid JSON") from None
        records.append(record)
        good_bytes += len(line) + 1
    return records


def append_predictions(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> None:
    """Append ``records`` as JSON lines to ``path`` and fsync, so a crash loses at most them."""
    payload = "".join(
        json.dumps(record, ensure_ascii=False, sort_keys=True, default=json_default) + "\n"
        for record in records
    )
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
