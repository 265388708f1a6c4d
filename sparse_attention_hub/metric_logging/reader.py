"""Read micro_metrics.jsonl files back into a tidy pandas table."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .writer import LOG_FILENAME

if TYPE_CHECKING:
    import pandas as pd

_LOG = logging.getLogger("sparse_attention_hub.metric_logging")

BASE_COLUMNS = ["timestamp", "metric", "value", "location"]
STALE_DIR = "stale"


def load_micro_metrics(path: str | os.PathLike[str], include_stale: bool = False) -> pd.DataFrame:
    """Load micro metrics from a file, a cell directory, or a results tree.

    - a ``.jsonl`` file: its events;
    - a directory holding ``micro_metrics.jsonl``: that file's events;
    - any other directory: every ``micro_metrics.jsonl`` below it, with a ``cell`` column
      holding the file's directory relative to ``path`` (POSIX separators). Files the executor
      moved aside (``<cell>/stale/<timestamp>/``, from a run with another config) are left out
      unless ``include_stale``.

    Columns: timestamp (pandas datetime, UTC), metric, value, location, then one column per
    metadata key (a key that clashes with a base column is prefixed ``metadata.``), then
    ``cell`` for a tree. Malformed lines (for example a line cut by a crash, even inside a
    UTF-8 character) are skipped with a warning; events whose value is NaN or infinite are kept,
    with a warning counting them per file; an unreadable timestamp becomes NaT. An
    empty input gives an empty frame with the base columns.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"no micro metrics at {str(root)!r}")
    if root.is_file():
        records = _read_file(root)
        cells: list[str] | None = None
    elif (root / LOG_FILENAME).is_file():
        records = _read_file(root / LOG_FILENAME)
        cells = None
    else:
        records, cells = [], []
        for file in sorted(root.rglob(LOG_FILENAME)):
            if not include_stale and _is_stale(file.relative_to(root).parts[:-1]):
                continue
            file_records = _read_file(file)
            cell = file.parent.relative_to(root).as_posix()
            records.extend(file_records)
            cells.extend([cell] * len(file_records))
    return _to_frame(records, cells)


_STAMP = re.compile(r"^\d{8}_\d{6}(_\d+)?$")  # stale/<YYYYmmdd_HHMMSS[_n]>/


def _is_stale(parts: tuple[str, ...]) -> bool:
    """True for a directory inside ``<cell>/stale/<timestamp>/``."""
    return any(a == STALE_DIR and _STAMP.match(b) for a, b in pairwise(parts))


def _not_a_number(value: Any) -> bool:
    """A float value that is NaN or infinite (other values are a metric's own business)."""
    return isinstance(value, float) and not math.isfinite(value)


def _read_file(file: Path) -> list[dict[str, Any]]:
    records = []
    bad_values = 0
    with open(file, encoding="utf-8", errors="replace") as handle:  # a torn tail may cut a char
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                _LOG.warning("skipping malformed line %d in %s", number, file)
                continue
            if isinstance(record, dict):
                records.append(record)
                bad_values += _not_a_number(record.get("value"))
    if bad_values:  # kept in the frame, but a mean over them leaves them out: say so
        _LOG.warning("%d event(s) in %s have a NaN or infinite value", bad_values, file)
    return records


def _flatten(record: dict[str, Any]) -> dict[str, Any]:
    row = {column: record.get(column) for column in BASE_COLUMNS}
    metadata = record.get("metadata") or {}
    if isinstance(metadata, dict):
        for key, value in metadata.items():
            name = f"metadata.{key}" if key in BASE_COLUMNS or key == "cell" else str(key)
            row[name] = value
    return row


def _to_frame(records: list[dict[str, Any]], cells: list[str] | None) -> pd.DataFrame:
    import pandas as pd  # imported here: hot-path users of the logger never pay for pandas

    rows = [_flatten(record) for record in records]
    frame = pd.DataFrame(rows)
    for column in BASE_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=object)
    extra = [column for column in frame.columns if column not in BASE_COLUMNS]
    frame = frame[BASE_COLUMNS + extra]
    if cells is not None:
        frame["cell"] = cells
    frame["timestamp"] = pd.to_datetime(  # an unreadable timestamp becomes NaT
        frame["timestamp"], utc=True, format="ISO8601", errors="coerce"
    )
    return frame
