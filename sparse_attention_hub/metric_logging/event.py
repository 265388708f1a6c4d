"""LogEvent and its conversion to one JSON line.

An event is stamped with ``time.time()`` and keeps its value as given (a 0-dim tensor stays a
tensor) until flush, where a batch of events is converted together: tensor values on one device
are stacked and read back with one ``tolist()`` (one device sync per batch, not per event), and
the timestamp becomes an ISO-8601 string.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
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


def iso_timestamp(seconds: float) -> str:
    """Return ``seconds`` since the epoch as an ISO-8601 UTC string with microseconds."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat()


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


def _json_default(value: Any) -> Any:
    """json.dumps fallback: tensors and numpy values to plain Python, anything else to str."""
    if hasattr(value, "tolist") or hasattr(value, "item"):
        plain = to_plain(value)
        if plain is not value:
            return plain
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _batch_tensor_values(events: Sequence[LogEvent]) -> dict[int, Any]:
    """Read back every 0-dim tensor value with one ``tolist()`` per (device, dtype) group.

    Returns a map from the event's position in ``events`` to its plain Python value. torch is
    only consulted when something already imported it.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, event in enumerate(events):
        value = event.value
        if isinstance(value, torch.Tensor) and value.dim() == 0:
            groups.setdefault((value.device, value.dtype), []).append(i)
    plain: dict[int, Any] = {}
    for positions in groups.values():
        stacked = torch.stack([events[i].value.detach() for i in positions])  # (N,)
        for i, item in zip(positions, stacked.tolist(), strict=True):
            plain[i] = item
    return plain


def events_to_jsonl(events: Sequence[LogEvent]) -> str:
    """Serialise a batch of events to JSON lines (one trailing newline per event).

    Non-finite floats are written as JSON ``NaN`` / ``Infinity`` (Python's json reads them back).
    """
    tensor_values = _batch_tensor_values(events)
    dumps = json.JSONEncoder(default=_json_default, allow_nan=True).encode
    lines = []
    for i, event in enumerate(events):
        value = tensor_values[i] if i in tensor_values else to_plain(event.value)
        record = {
            "timestamp": iso_timestamp(event.timestamp),
            "metric": event.metric,
            "value": value,
            "metadata": event.metadata,
            "location": event.location,
        }
        lines.append(dumps(record))
    lines.append("")
    return "\n".join(lines)
