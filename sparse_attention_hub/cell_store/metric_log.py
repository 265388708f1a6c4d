"""Keeping a cell's ``micro_metrics.jsonl`` in step with its predictions log on resume.

The run loop flushes the MicroMetricLogger before it appends a request's predictions, so the
events of every saved prediction are on disk. A kill between the two leaves events of a
request whose predictions were not saved (it runs again), and a kill mid-flush leaves a torn
line. :func:`keep_requests` drops both, so a resumed cell ends with exactly the events of an
uninterrupted run.
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
            event = None if number == len(lines) else json.loads(line)
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
