"""Progress without a terminal: one log line per finished cell, with counts and an ETA."""

from __future__ import annotations

import logging

import pytest

from sparse_attention_hub.executor.progress import ProgressReporter
from sparse_attention_hub.executor.protocol import CellOutcome


def test_without_a_terminal_each_finished_cell_is_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reporter = ProgressReporter(total=4, skipped=1, verbose=True, strip_prefix="m/", use_bar=False)
    assert reporter.bar is None
    assert reporter.eta_seconds() is None
    with caplog.at_level(logging.INFO, logger="sparse_attention_hub.executor.progress"):
        reporter.on_event("dispatch", {0: "m/dense/mock", 1: "m/sink/mock"}, None)
        reporter.on_event("finished", {1: "m/sink/mock"}, CellOutcome("m/dense/mock", True, 2.5))
        reporter.on_event(
            "finished", {}, CellOutcome("m/sink/mock", False, 1.0, error_type="other")
        )
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(lines) == 2
    assert lines[0].startswith("[2/4] dense/mock complete in 2.5 s (done=1, failed=0, skipped=1")
    assert lines[1].startswith("[3/4] sink/mock failed in 1.0 s (done=1, failed=1, skipped=1")
    assert "ETA" in lines[1]
    eta = reporter.eta_seconds()
    assert eta is not None and eta >= 0.0  # one cell left at the observed pace
    reporter.close()


def test_quiet_reporter_logs_no_progress(caplog: pytest.LogCaptureFixture) -> None:
    reporter = ProgressReporter(total=1, skipped=0, verbose=False, use_bar=False)
    with caplog.at_level(logging.INFO, logger="sparse_attention_hub.executor.progress"):
        reporter.on_event("finished", {}, CellOutcome("c", True, 0.1))
    assert not [r for r in caplog.records if r.levelno == logging.INFO]
    assert reporter.progress.completed_stubs == 1
