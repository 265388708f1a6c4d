"""Keeping a cell's ``micro_metrics.jsonl`` in step with its predictions log on resume.

The run loop flushes the MicroMetricLogger before it appends a request's predictions, so the
events of every saved prediction are on disk. A kill between the two leaves events of a
request whose predictions were not saved (it runs again), and a kill mid-flush leaves a torn
line. :func:`keep_requests` drops both, so a resumed cell ends with exactly the events of an
uninterrupted run. :func:`metric_log_problem` tells a damaged log (bytes that are not UTF-8,
lines that are not one JSON object, a torn last line) of a complete cell: the cell is then
``corrupt``, and its rerun trims the log and re-scores it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store.atomic import write_atomic
from sparse_attention_hub.cell_store.names import MICRO_METRICS_FILE

logger = logging.getLogger(__name__)


def _request_of(event: Any) -> int | None:
    metadata = event.get("metadata") if isinstance(event, dict) else None
    index = metadata.get("request_index") if isinstance(metadata, dict) else None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def keep_requests(cell_dir: str | os.PathLike[str], requests: Collection[int]) -> int:
    """Drop torn lines and the events of requests not in ``requests`` from the cell's log.

    Events without a ``request_index`` (logged outside a request) are kept. Returns the number
    of lines dropped; the file is rewritten (atomically) only when there are some.
    """
    path = Path(cell_dir) / MICRO_METRICS_FILE
    if not path.is_file():
        return 0
    kept: list[bytes] = []
    dropped = 0
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = None if number == len(lines) else json.loads(line.decode("utf-8"))
        except ValueError:
            event = None
        request = _request_of(event)
        if event is None or (request is not None and request not in requests):
            dropped += 1
            continue
        kept.append(line)
    if dropped:
        logger.warning(
            "%s: dropping %d event line(s) of unsaved requests or torn writes", path, dropped
        )
        payload = b"".join(line + b"\n" for line in kept).decode("utf-8")
        write_atomic(path, lambda handle: handle.write(payload))
    return dropped


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def metric_log_problem(cell_dir: str | os.PathLike[str]) -> str | None:
    """Why the cell's ``micro_metrics.jsonl`` is damaged (naming it and its bad lines), or None
    when it is missing or sound.

    A bad line is one that is not UTF-8, is not shaped as a JSON object (``{...}``) or is the
    last one without its newline (torn). A shape check, not a parse: it runs on every complete
    cell whenever a status is asked, and a log can hold millions of events.
    """
    path = Path(cell_dir) / MICRO_METRICS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror or exc})"
    all_text = _is_text(raw)  # the common case: no line needs its own decode
    lines = raw.split(b"\n")
    bad = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        shaped = line.startswith(b"{") and line.endswith(b"}")
        if number == len(lines) or not shaped or not (all_text or _is_text(line)):
            bad.append(number)
    if not bad:
        return None
    shown = ", ".join(map(str, bad[:5])) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
    torn = " (a torn last line)" if bad == [len(lines)] else ""
    return f"{path} has damaged line(s) {shown}{torn}"
