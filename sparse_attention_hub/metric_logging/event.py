"""LogEvent: one recorded metric value, and the conversions its fields need at flush.

An event is stamped with ``time.time()`` and keeps its value as given (a 0-dim tensor stays a
tensor) until flush; ``serialize.events_to_jsonl`` converts a whole batch at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class LogEvent:
    """One recorded metric value.

    Attributes:
        timestamp: seconds since the epoch (``time.time()``) when the event was logged.
        metric: the registered metric identifier.
        value: the value as logged (a number, None, a 0-dim tensor, ...); converted at flush.
        metadata: context fields merged with the per-call metadata.
        location: the caller, as ``module.Class.method`` or ``module.function``.
    """

    timestamp: float
    metric: str
    value: Any
    metadata: dict[str, Any]
    location: str

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready record (ISO-8601 timestamp, value converted to plain Python)."""
        return {
            "timestamp": iso_timestamp(self.timestamp),
            "metric": self.metric,
            "value": to_plain(self.value),
            "metadata": self.metadata,
            "location": self.location,
        }


def second_prefix(whole_seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) of a whole number of seconds since the epoch."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_seconds))


def split_micros(seconds: float) -> tuple[int, int]:
    """(whole seconds, microseconds) of ``seconds``, rounded to the nearest microsecond."""
    return divmod(round(seconds * 1_000_000), 1_000_000)


def iso_timestamp(seconds: float) -> str:
    """Return ``seconds`` since the epoch as ISO-8601 UTC with microseconds, e.g.
    ``2026-01-02T03:04:05.000006+00:00``.
    """
    whole, micros = split_micros(seconds)
    return f"{second_prefix(whole)}.{micros:06d}+00:00"


def to_plain(value: Any) -> Any:
    """Convert tensors / numpy values to plain Python numbers or lists; other values as is."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and _numel(value) == 1 and getattr(value, "ndim", 0) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _numel(value: Any) -> int:
    numel = getattr(value, "numel", None)
    if callable(numel):
        return int(numel())
    size = getattr(value, "size", 1)
    return int(size) if isinstance(size, int) else 1
