"""Progress inside a cell: the worker's throttled reports, the ETA in requests, the periodic
log lines without a terminal and the bar's postfix on one (a clock the test turns)."""

from __future__ import annotations

import io
import logging

import pytest

from sparse_attention_hub.executor.cell_progress import ProgressSender, RequestTracker
from sparse_attention_hub.executor.progress import ProgressReporter
from sparse_attention_hub.executor.protocol import CellOutcome


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_worker_sends_at_most_every_interval_and_always_the_first_and_last() -> None:
    sent: list[tuple[object, ...]] = []
    clock = Clock()
    sender = ProgressSender(sent.append, "m/dense/mock", min_interval=0.5, clock=clock)
    sender(0, 4, 0)
    for done in (1, 2):
        clock.now += 0.1
        sender(done, 4, 10 * done)  # within 0.5 s of the first: dropped
    clock.now += 0.5
    sender(3, 4, 30)
    clock.now += 0.1
    sender(4, 4, 40)  # the last one always goes
    assert [m[:4] for m in sent] == [
        ("progress", "m/dense/mock", 0, 4),
        ("progress", "m/dense/mock", 3, 4),
        ("progress", "m/dense/mock", 4, 4),
    ]
    assert sent[-1][4] == pytest.approx(40 / 0.8)  # tokens per second since the first report


def test_the_eta_counts_requests_and_weighs_unstarted_cells_at_the_mean() -> None:
    clock = Clock()
    reporter = ProgressReporter(total=3, skipped=0, verbose=False, use_bar=False, clock=clock)
    reporter.on_event("dispatch", {0: "a"}, None)
    reporter.on_progress("a", 0, 10, 0.0)
    assert reporter.eta_seconds() is None  # nothing answered yet
    clock.now += 10.0
    reporter.on_progress("a", 5, 10, 4.0)
    # 5 requests in 10 s; left: 5 of a, and b, c at the mean (10) -> 25 requests, 50 s
    assert reporter.eta_seconds() == pytest.approx(50.0)
    clock.now += 10.0
    reporter.on_progress("a", 10, 10, 4.0)
    reporter.on_event("finished", {}, CellOutcome("a", True, 20.0))
    reporter.on_event("dispatch", {0: "b"}, None)
    reporter.on_progress("b", 0, 30, 0.0)  # a big cell: the ETA grows with its requests
    # 10 requests in 20 s; left: 30 of b, c at the mean of (10, 30) = 20 -> 50 requests
    assert reporter.eta_seconds() == pytest.approx(100.0)


def test_a_resumed_cell_counts_only_the_requests_it_runs() -> None:
    tracker = RequestTracker()
    tracker.update("a", 8, 10, 0.0)  # 8 answered before the restart
    tracker.update("a", 9, 10, 1.0)
    assert tracker.requests_run == 1
    assert tracker.remaining_requests(0) == 1
    assert tracker.describe("a") == "9/10 requests, 1.0 tok/s"
    assert tracker.describe("b") is None


def test_without_a_terminal_each_running_cell_is_logged_every_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    reporter = ProgressReporter(
        total=2, skipped=0, verbose=True, strip_prefix="m/", use_bar=False, interval=60, clock=clock
    )
    with caplog.at_level(logging.INFO, logger="sparse_attention_hub.executor.progress"):
        reporter.on_event("dispatch", {0: "m/dense/mock", 1: "m/sink/mock"}, None)
        reporter.on_progress("m/dense/mock", 0, 40, 0.0)
        clock.now += 30
        reporter.on_progress("m/dense/mock", 12, 40, 31.5)
        reporter.tick()  # 30 s: too early
        clock.now += 30
        reporter.tick()
        reporter.tick()  # same moment: nothing more
    lines = [r.getMessage() for r in caplog.records]
    # 12 requests in 60 s; left: 28 of dense, sink at the mean (40) -> 68 requests, 340 s
    assert lines == [
        "dense/mock: 12/40 requests, 31.5 tok/s, running for 01:00 (ETA of the matrix 05:40)",
        "sink/mock: starting (loading the model or data), running for 01:00 "
        "(ETA of the matrix 05:40)",
    ]


def test_on_a_terminal_the_bar_shows_each_running_cell() -> None:
    reporter = ProgressReporter(total=2, skipped=0, verbose=True, strip_prefix="m/", use_bar=True)
    reporter.bar.fp = io.StringIO()  # keep the test output clean
    reporter.on_event("dispatch", {0: "m/dense/mock", 1: "m/sink/mock"}, None)
    reporter.on_progress("m/dense/mock", 3, 8, 12.0)
    postfix = reporter.bar.postfix
    assert "w0=dense/mock 3/8 requests, 12.0 tok/s" in postfix
    assert "w1=sink/mock" in postfix
    reporter.close()
