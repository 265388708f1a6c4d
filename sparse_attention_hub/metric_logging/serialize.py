"""Batch serialisation of LogEvents to JSON lines, done once per flush.

Each line is ``{"timestamp": ISO-8601 UTC, "metric", "value", "metadata", "location"}``. The
work per event is kept small because a flush of 1000 events runs inside a forward pass:

- 0-dim tensor values are read back with one ``tolist()`` per (device, dtype) group, so a
  batch costs one device sync, not one per event;
- timestamps reuse the formatted ``YYYY-MM-DDTHH:MM:SS`` prefix while the second is the same;
- metric names and locations are JSON-encoded once per distinct string;
- all metadata dicts are encoded by one C-encoder call over the list, split back at the
  ``}, {`` boundaries (the split is verified by count; on a mismatch, e.g. a string containing
  ``}, {``, each dict is encoded on its own).

Values json cannot encode become plain Python first (tensors, numpy) or their ``str``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .event import LogEvent, second_prefix, to_plain

_BOUNDARY = "}, {"


def _json_default(value: Any) -> Any:
    """json fallback: tensors and numpy values to plain Python, anything else to str."""
    if hasattr(value, "tolist") or hasattr(value, "item"):
        plain = to_plain(value)
        if plain is not value:
            return plain
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_ENCODE: Callable[[Any], str] = json.JSONEncoder(default=_json_default, allow_nan=True).encode


def _encode_safely(value: Any) -> str:
    """Encode anything: on a TypeError/ValueError (odd keys, cycles) fall back to str forms."""
    try:
        return _ENCODE(value)
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return _ENCODE({str(key): _encode_or_str(item) for key, item in value.items()})
        return _ENCODE(str(value))


def _encode_or_str(value: Any) -> Any:
    try:
        _ENCODE(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def encode_dicts(dicts: Sequence[dict[str, Any]]) -> list[str]:
    """JSON-encode each dict of ``dicts``; one encoder call for the whole list when possible."""
    count = len(dicts)
    if count == 0:
        return []
    try:
        text = _ENCODE(list(dicts))
    except (TypeError, ValueError):
        return [_encode_safely(item) for item in dicts]
    parts = text[1:-1].split(_BOUNDARY)
    if len(parts) != count:  # a boundary inside some value: encode one by one
        return [_encode_safely(item) for item in dicts]
    last = count - 1
    return [("{" if i else "") + part + ("}" if i < last else "") for i, part in enumerate(parts)]


def _value_json(value: Any) -> str:
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return float.__repr__(value)
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    return _encode_safely(to_plain(value))


def _batch_tensor_values(events: Sequence[LogEvent]) -> dict[int, Any]:
    """Plain values of the 0-dim tensor events, by position in ``events``.

    CPU tensors are read with ``item()`` (no sync to save). Accelerator tensors are stacked per
    (device, dtype) and read with one ``tolist()``: one device sync per group and batch, not per
    event. torch is only consulted when something already imported it.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    tensor_type = torch.Tensor
    plain: dict[int, Any] = {}
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, event in enumerate(events):
        value = event.value
        if isinstance(value, tensor_type) and value.dim() == 0:
            if value.is_cpu:
                plain[i] = value.item()
            else:
                groups.setdefault((value.device, value.dtype), []).append(i)
    with torch.no_grad():
        for positions in groups.values():
            stacked = torch.stack([events[i].value for i in positions])  # (N,)
            plain.update(zip(positions, stacked.tolist(), strict=True))
    return plain


def events_to_jsonl(events: Sequence[LogEvent]) -> str:
    """Serialise a batch of events to JSON lines, each line ending with a newline."""
    if not events:
        return ""
    tensor_values = _batch_tensor_values(events)
    metadata = encode_dicts([event.metadata for event in events])
    strings: dict[str, str] = {}
    float_repr = float.__repr__
    last_whole, prefix = -1, ""
    lines = []
    for i, event in enumerate(events):
        whole, micros = divmod(round(event.timestamp * 1_000_000), 1_000_000)  # split_micros
        if whole != last_whole:
            last_whole, prefix = whole, second_prefix(whole)
        value = tensor_values.get(i, event.value) if tensor_values else event.value
        if type(value) is float and -math.inf < value < math.inf:
            value_json = float_repr(value)
        else:
            value_json = _value_json(value)
        metric = strings.get(event.metric)
        if metric is None:
            metric = strings[event.metric] = _encode_safely(event.metric)
        location = strings.get(event.location)
        if location is None:
            location = strings[event.location] = _encode_safely(event.location)
        lines.append(  # str(1_000_000 + micros)[1:] is micros zero-padded to 6 digits, faster
            f'{{"timestamp": "{prefix}.{str(1_000_000 + micros)[1:]}+00:00", "metric": {metric}, '
            f'"value": {value_json}, "metadata": {metadata[i]}, "location": {location}}}'
        )
    lines.append("")
    return "\n".join(lines)
