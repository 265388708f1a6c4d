"""Validation of the logger's settings: each error names the field, the value and what is allowed."""

from __future__ import annotations

import logging
import numbers
import operator
import os
from collections.abc import Iterable, Mapping
from typing import Any

_LOG = logging.getLogger("sparse_attention_hub.metric_logging")

EnabledMetrics = str | Iterable[str] | None


def clamp_sampling(sampling_factor: float) -> float:
    """The sampling factor clamped to [0, 1] (as the seed does); NaN or a non-number raises."""
    if isinstance(sampling_factor, bool) or not isinstance(sampling_factor, numbers.Real):
        raise TypeError(f"sampling_factor must be a number in [0, 1], got {sampling_factor!r}")
    if sampling_factor != sampling_factor:  # NaN
        raise ValueError("sampling_factor must be a number in [0, 1], got nan")
    return max(0.0, min(1.0, float(sampling_factor)))


def check_max_records(max_records: int | None) -> int | None:
    """None (no limit) or a non-negative int (numpy integers accepted)."""
    if max_records is None:
        return None
    try:
        limit = operator.index(max_records) if not isinstance(max_records, bool) else -1
    except TypeError:
        limit = -1
    if limit < 0:
        raise ValueError(f"max_records must be None or an int >= 0, got {max_records!r}")
    return limit


def check_flush_settings(flush_every: int, flush_interval: float) -> None:
    """flush_every an int >= 1, flush_interval a number of seconds >= 0."""
    if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
        raise ValueError(f"flush_every must be an int >= 1, got {flush_every!r}")
    if not isinstance(flush_interval, numbers.Real) or not flush_interval >= 0:
        raise ValueError(f"flush_interval must be a number of seconds >= 0, got {flush_interval!r}")


def check_path(log_path: Any) -> str:
    """A non-empty str or os.PathLike, returned as str."""
    if not isinstance(log_path, (str, os.PathLike)) or not os.fspath(log_path):
        raise ValueError(f"log_path must be a non-empty str or path, got {log_path!r}")
    return str(os.fspath(log_path))


def resolve_metrics(metrics: EnabledMetrics, registry: Mapping[str, Any]) -> set[str]:
    """The registered metrics ``metrics`` names ("all", a name, names, or None for none).

    Unregistered names are left out with a warning; ``"all"`` inside a list means every
    registered metric plus the other names.
    """
    registered = set(registry)
    if metrics is None:
        wanted: set[str] = set()
    elif metrics == "all":
        wanted = registered
    elif isinstance(metrics, str):
        wanted = {metrics}
    elif isinstance(metrics, Iterable):
        wanted = set(metrics)
        if "all" in wanted:
            wanted = registered | (wanted - {"all"})
    else:
        raise TypeError(f"metrics must be 'all', a list of names or None, got {metrics!r}")
    unknown = wanted - registered
    if unknown:
        _LOG.warning(
            "Attempting to enable unregistered metrics: %s (registered: %s)",
            sorted(unknown),
            sorted(registered),
        )
    return wanted & registered
