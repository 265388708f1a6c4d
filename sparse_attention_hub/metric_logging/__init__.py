"""Micro metrics: a process-wide logger for per-layer / per-step values from inside models.

- ``MicroMetricLogger``: the per-process singleton (register, enable, configure, log, flush).
- ``LogEvent``: one recorded event.
- ``load_micro_metrics(path)``: read a file, a cell directory or a results tree into pandas.

Warnings go to the ``logging`` logger ``sparse_attention_hub.metric_logging``.
"""

from .event import LogEvent
from .logger import LOG_FILENAME, MicroMetricLogger
from .reader import load_micro_metrics

__all__ = ["LOG_FILENAME", "LogEvent", "MicroMetricLogger", "load_micro_metrics"]
