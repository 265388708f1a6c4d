"""Appending a batch of events to ``<log_path>/micro_metrics.jsonl``."""

from __future__ import annotations

import os
from collections.abc import Sequence

from .event import LogEvent
from .serialize import events_to_jsonl

LOG_FILENAME = "micro_metrics.jsonl"


def log_file(log_path: str) -> str:
    """The JSON-lines file of a log directory."""
    return os.path.join(log_path, LOG_FILENAME)


def append_events(events: Sequence[LogEvent], log_path: str | None) -> None:
    """Serialise ``events`` and append them to ``log_path``'s file (nothing when empty/None)."""
    if not events or log_path is None:
        return
    text = events_to_jsonl(events)
    os.makedirs(log_path, exist_ok=True)
    with open(log_file(log_path), "a", encoding="utf-8") as handle:
        handle.write(text)
