"""flush(): file format, triggers (count, interval, configure), value conversion, failures."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger


def test_flush_writes_json_lines(configured, tmp_path: Path, read_events):
    configured.log("m", 42.0, {"layer": 1})
    configured.log("m", 43.0, {"layer": 2})
    configured.flush()
    assert configured.log_queue == []
    events = read_events(tmp_path)
    assert [e["value"] for e in events] == [42.0, 43.0]
    first = events[0]
    assert set(first) == {"timestamp", "metric", "value", "metadata", "location"}
    assert first["metric"] == "m" and first["metadata"] == {"layer": 1}
    parsed = datetime.fromisoformat(first["timestamp"])
    assert parsed.tzinfo is not None
    assert abs(parsed.timestamp() - time.time()) < 60
    configured.log("m", 44.0)
    configured.flush()
    assert len(read_events(tmp_path)) == 3  # appends


def test_flush_of_nothing_writes_no_file(tmp_path: Path):
    logger = MicroMetricLogger(log_path=tmp_path)
    logger.flush()
    assert not (tmp_path / "micro_metrics.jsonl").exists()
    MicroMetricLogger._reset_for_tests()
    MicroMetricLogger().flush()  # no log_path: nothing to do, no error


def test_flush_updates_last_flush_time(configured):
    configured.last_flush_time = 0.0
    configured.log("m", 1.0)
    assert configured.last_flush_time > 0.0


def test_flush_every_count(tmp_path: Path, read_events):
    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path, enabled_metrics=["m"], flush_every=3)
    logger.log("m", 1.0)
    logger.log("m", 2.0)
    assert read_events(tmp_path) == []
    logger.log("m", 3.0)
    assert [e["value"] for e in read_events(tmp_path)] == [1.0, 2.0, 3.0]
    assert logger.log_queue == []
    for i in range(7):
        logger.log("m", float(i))
    assert len(read_events(tmp_path)) == 9 and len(logger.log_queue) == 1


def test_flush_interval_checked_at_log(tmp_path: Path, read_events):
    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path, enabled_metrics=["m"], flush_interval=3600.0)
    logger.log("m", 1.0)
    assert read_events(tmp_path) == []
    logger.last_flush_time -= 3601.0  # as if an hour had passed
    logger.log("m", 2.0)
    assert [e["value"] for e in read_events(tmp_path)] == [1.0, 2.0]


def test_tiny_flush_interval(tmp_path: Path, read_events):
    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path, enabled_metrics=["m"], flush_interval=0.01)
    logger.log("m", 1.0)
    time.sleep(0.02)
    logger.log("m", 2.0)
    assert [e["value"] for e in read_events(tmp_path)] == [1.0, 2.0]


def test_configure_to_second_path_keeps_events_apart(configured, tmp_path: Path, read_events):
    first, second = tmp_path / "cell1", tmp_path / "cell2"
    configured.configure_logging(first, ["m"])
    configured.log("m", 1.0)
    configured.log("m", 2.0)
    configured.configure_logging(second, ["m"])
    assert [e["value"] for e in read_events(first)] == [1.0, 2.0]
    configured.log("m", 3.0)
    configured.flush()
    assert [e["value"] for e in read_events(first)] == [1.0, 2.0]
    assert [e["value"] for e in read_events(second)] == [3.0]


def test_tensor_and_numpy_values_become_plain_json(configured, tmp_path, read_events):
    values = [
        torch.tensor(0.25),
        torch.tensor(3, dtype=torch.int64),
        torch.tensor(True),
        torch.tensor(0.5, dtype=torch.bfloat16),
        torch.tensor([1.0, 2.0]),
        np.float32(0.75),
        np.int64(7),
        np.array([1, 2]),
        (1, 2),
        float("nan"),
        object(),
    ]
    for value in values:
        configured.log("m", value, {"t": torch.tensor(2)})
    configured.flush()
    written = [e["value"] for e in read_events(tmp_path)]
    assert written[:9] == [0.25, 3, True, 0.5, [1.0, 2.0], 0.75, 7, [1, 2], [1, 2]]
    assert isinstance(written[1], int) and isinstance(written[2], bool)
    assert written[9] != written[9]  # NaN round-trips
    assert written[10].startswith("<object")
    assert read_events(tmp_path)[0]["metadata"] == {"t": 2}


def test_tensor_value_is_not_converted_at_log_time(configured):
    value = torch.tensor(0.5)
    configured.log("m", value)
    assert configured.log_queue[0].value is value


def test_tensor_with_grad_is_written(configured, tmp_path, read_events):
    weight = torch.tensor(2.0, requires_grad=True)
    configured.log("m", weight * 3)
    assert configured.log_queue[0].value.grad_fn is None  # the graph is not kept alive
    configured.flush()
    assert read_events(tmp_path)[0]["value"] == 6.0


def test_flush_failure_keeps_events_then_succeeds(configured, tmp_path: Path, read_events):
    target = tmp_path / "cell"
    configured.configure_logging(target, ["m"])
    configured.log("m", 1.0)
    shutil.rmtree(target)
    target.write_text("not a directory")
    with pytest.raises(OSError):
        configured.flush()
    assert [e.value for e in configured.log_queue] == [1.0]
    configured.log("m", 2.0)
    target.unlink()
    configured.flush()
    assert [e["value"] for e in read_events(target)] == [1.0, 2.0]


def test_auto_flush_failure_does_not_raise_from_log(tmp_path: Path, caplog):
    MicroMetricLogger.register_metric("m", float)
    target = tmp_path / "cell"
    logger = MicroMetricLogger(log_path=target, enabled_metrics=["m"], flush_every=2)
    shutil.rmtree(target)
    target.write_text("blocked")
    logger.log("m", 1.0)
    logger.log("m", 2.0)  # auto flush fails: must not raise inside a model's forward pass
    assert caplog.text.count("automatic flush") == 1
    assert len(logger.log_queue) == 2
    logger.log("m", 3.0)  # no retry (and no new error) on every call
    assert caplog.text.count("automatic flush") == 1
    target.unlink()
    logger.log("m", 4.0)  # retried after flush_every more events: nothing lost
    assert logger.log_queue == []
    assert len((target / "micro_metrics.jsonl").read_text().splitlines()) == 4


def test_flushed_file_lines_are_complete_json(configured, tmp_path: Path):
    for i in range(25):
        configured.log("m", float(i), {"text": 'a\nb"c'})
    configured.flush()
    raw = (tmp_path / "micro_metrics.jsonl").read_text()
    assert raw.endswith("\n")
    lines = raw.splitlines()
    assert len(lines) == 25
    assert json.loads(lines[3])["metadata"]["text"] == 'a\nb"c'


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_values_do_not_sync_at_log_and_are_read_at_flush(configured, tmp_path, read_events):
    values = [torch.tensor(float(i), device="cuda") / 4 for i in range(6)]
    values.append(torch.tensor(7, device="cuda"))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any device sync inside log() raises
    try:
        for value in values:
            configured.log("m", value)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    configured.flush()
    assert [e["value"] for e in read_events(tmp_path)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 7]


def test_configure_while_threads_log_loses_and_duplicates_nothing(tmp_path: Path, read_events):
    import threading

    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path / "p1", enabled_metrics=["m"], flush_every=50)
    per_thread = 2000
    counts = [0, 0]

    def work(k: int) -> None:
        for n in range(per_thread):
            logger.log("m", float(k * 10**6 + n))
            counts[k] = n + 1
            if n % 50 == 0:
                time.sleep(0.0005)  # let the main thread in between

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for i in range(2, 6):  # reconfigure while both threads are logging
        deadline = time.monotonic() + 30
        while sum(counts) < (i - 1) * 700 and time.monotonic() < deadline:
            time.sleep(0.001)
        logger.configure_logging(tmp_path / f"p{i}", ["m"])
    for thread in threads:
        thread.join()
    logger.flush()
    files = [read_events(tmp_path / f"p{i}") for i in range(1, 6)]
    written = [e["value"] for events in files for e in events]
    expected = [k * 10**6 + n for k in range(2) for n in range(per_thread)]
    assert sorted(written) == expected
    assert sum(1 for events in files if events) >= 2


def test_configure_reports_but_survives_a_failed_write_to_the_old_path(
    configured, tmp_path, caplog
):
    old = tmp_path / "old"
    configured.configure_logging(old, ["m"])
    configured.log("m", 1.0)
    shutil.rmtree(old)
    old.write_text("blocked")
    configured.configure_logging(tmp_path / "new", ["m"])
    assert "1 pending events" in caplog.text
    assert configured.log_path == str(tmp_path / "new")


def test_log_does_not_wait_for_another_threads_flush(tmp_path: Path, read_events):
    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path, enabled_metrics=["m"], flush_every=1)
    with logger._flush_lock:  # as if another thread were writing a batch
        logger.log("m", 1.0)  # would deadlock here if log() waited for the flush lock
        assert len(logger.log_queue) == 1
    logger.log("m", 2.0)
    assert [e["value"] for e in read_events(tmp_path)] == [1.0, 2.0]


def test_threads_logging_while_another_thread_flushes(tmp_path: Path, read_events):
    """Appends and flushes from several threads at once: every event written exactly once,
    every line whole."""
    import threading

    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path, enabled_metrics=["m"], flush_every=37)
    per_thread, done = 1500, threading.Event()

    def work(k: int) -> None:
        for n in range(per_thread):
            logger.log("m", float(k * 10**6 + n), {"k": k})

    def flusher() -> None:
        while not done.is_set():
            logger.flush()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    flushing = threading.Thread(target=flusher)
    flushing.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    flushing.join()
    logger.flush()
    events = read_events(tmp_path)  # json.loads of every line: a torn line would raise
    assert sorted(e["value"] for e in events) == [
        k * 10**6 + n for k in range(3) for n in range(per_thread)
    ]
    per_k = [[e["value"] for e in events if e["metadata"]["k"] == k] for k in range(3)]
    assert all(values == sorted(values) for values in per_k)  # each thread's order is kept
