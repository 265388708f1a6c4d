"""Every metric_logging test starts from a fresh logger and an empty metric registry.

The singleton is shared by the whole process, so state would leak between tests. The fixture
resets it in place (``MicroMetricLogger._reset_for_tests``: the same object, back to defaults)
and restores the registry afterwards, so metrics other modules registered at import (for
example the research-attention metrics) survive for later tests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sparse_attention_hub.metric_logging import MicroMetricLogger

LOGGER_NAME = "sparse_attention_hub.metric_logging"


@pytest.fixture(autouse=True)
def fresh_logger() -> Iterator[None]:
    registry = MicroMetricLogger.get_registered_metrics()
    MicroMetricLogger._reset_for_tests(registry={})
    try:
        yield
    finally:
        MicroMetricLogger._reset_for_tests(registry=registry)


@pytest.fixture
def configured(tmp_path: Path) -> MicroMetricLogger:
    """A logger on tmp_path, metric "m" registered and enabled, no automatic flush by count."""
    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path, enabled_metrics=["m"], flush_every=10**6)
    return logger


@pytest.fixture
def warnings_caught(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger=LOGGER_NAME)
    return caplog


def _read_events(directory: Path) -> list[dict[str, Any]]:
    file = Path(directory) / "micro_metrics.jsonl"
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines()]


@pytest.fixture
def read_events() -> Callable[[Path], list[dict[str, Any]]]:
    """Function returning the parsed JSON lines of <directory>/micro_metrics.jsonl ([] if none)."""
    return _read_events
