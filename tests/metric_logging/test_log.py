"""log(): gating, warnings, max_records, sampling, context, location."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sparse_attention_hub.metric_logging import MicroMetricLogger


def test_log_records_event_in_queue(configured: MicroMetricLogger):
    configured.log("m", 42.0, {"layer": 1, "head": 2})
    assert len(configured.log_queue) == 1
    event = configured.log_queue[0]
    assert event.metric == "m"
    assert event.value == 42.0
    assert event.metadata == {"layer": 1, "head": 2}
    assert isinstance(event.timestamp, float)
    configured.log("m", None, None)
    assert configured.log_queue[1].metadata == {}
    assert configured.log_queue[1].value is None


def test_log_without_log_path_records_nothing_and_warns_once(warnings_caught):
    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger()
    logger.enable_metrics(["m"])
    for _ in range(50):
        logger.log("m", 1.0)
    assert logger.log_queue == [] and logger.get_total_records_logged() == 0
    assert len(warnings_caught.records) == 1
    assert "Cannot log metric 'm' - log_path not defined" in warnings_caught.text


def test_log_disabled_metric_warns_once_per_name_until_reconfigured(configured, warnings_caught):
    for _ in range(100):
        configured.log("other", 1.0)
        configured.log("third", 1.0)
    assert configured.log_queue == []
    texts = [r.getMessage() for r in warnings_caught.records]
    assert len(texts) == 2
    assert "Attempting to log metric 'other' which is not enabled" in texts[0]
    configured.enable_metrics(["m"])
    configured.log("other", 1.0)
    assert len(warnings_caught.records) == 3


def test_max_records_drops_silently(configured, tmp_path, warnings_caught):
    configured.configure_logging(tmp_path, ["m"], max_records=5)
    for i in range(10):
        configured.log("m", float(i))
    assert [e.value for e in configured.log_queue] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert configured.is_max_records_reached()
    assert warnings_caught.records == []


def test_max_records_reset_by_configure(configured, tmp_path):
    configured.configure_logging(tmp_path, ["m"], max_records=5)
    for i in range(3):
        configured.log("m", float(i))
    configured.configure_logging(tmp_path, ["m"], max_records=10)
    for i in range(12):
        configured.log("m", float(i))
    assert configured.get_total_records_logged() == 10


def _kept_values(logger: MicroMetricLogger, n: int) -> list[float]:
    for i in range(n):
        logger.log("m", float(i))
    return [e.value for e in logger.log_queue]


@pytest.mark.parametrize("factor", [0.0, 1.0])
def test_sampling_extremes(configured, tmp_path, factor):
    configured.configure_logging(tmp_path, ["m"], sampling_factor=factor, seed=0)
    kept = _kept_values(configured, 500)
    assert len(kept) == (500 if factor == 1.0 else 0)


def test_sampling_half_is_binomial_and_seed_reproducible(configured, tmp_path):
    n = 2000
    configured.configure_logging(tmp_path / "a", ["m"], sampling_factor=0.5, seed=123)
    first = _kept_values(configured, n)
    # mean n/2, sd sqrt(n)/2 ~ 22.4: 5 sd either side
    assert abs(len(first) - n / 2) < 5 * (n**0.5) / 2
    configured.configure_logging(tmp_path / "b", ["m"], sampling_factor=0.5, seed=123)
    assert _kept_values(configured, n) == first
    configured.configure_logging(tmp_path / "c", ["m"], sampling_factor=0.5, seed=124)
    assert _kept_values(configured, n) != first


def test_sampling_uses_own_generator_not_global_random(configured, tmp_path):
    import random

    configured.configure_logging(tmp_path / "a", ["m"], sampling_factor=0.5, seed=7)
    random.seed(1)
    first = _kept_values(configured, 200)
    configured.configure_logging(tmp_path / "b", ["m"], sampling_factor=0.5, seed=7)
    random.seed(2)
    assert _kept_values(configured, 200) == first


def test_max_records_with_sampling(configured, tmp_path):
    configured.configure_logging(tmp_path, ["m"], max_records=50, sampling_factor=0.5, seed=1)
    kept = _kept_values(configured, 1000)
    assert len(kept) == 50
    assert max(kept) < 200  # sampled from the start of the stream, not a tail
    configured.configure_logging(tmp_path, ["m"], max_records=5, sampling_factor=0.0)
    assert configured.get_total_records_logged() == 0
    _kept_values(configured, 100)
    assert configured.get_total_records_logged() == 0
    assert not configured.is_max_records_reached()


def test_context_is_merged_into_metadata(configured):
    configured.set_context(request_index=3, question_index=0)
    configured.log("m", 1.0, {"layer_idx": 2})
    configured.log("m", 2.0, {"question_index": 9})
    configured.set_context(question_index=1)
    configured.log("m", 3.0)
    assert configured.get_context() == {"request_index": 3, "question_index": 1}
    configured.clear_context()
    configured.log("m", 4.0)
    metadata = [e.metadata for e in configured.log_queue]
    assert metadata == [
        {"request_index": 3, "question_index": 0, "layer_idx": 2},
        {"request_index": 3, "question_index": 9},
        {"request_index": 3, "question_index": 1},
        {},
    ]


def test_metadata_is_copied_at_log_time(configured):
    metadata = {"layer_idx": 0}
    configured.log("m", 1.0, metadata)
    metadata["layer_idx"] = 5
    assert configured.log_queue[0].metadata == {"layer_idx": 0}


def _module_function(logger: MicroMetricLogger) -> None:
    logger.log("m", 1.0)


class _Layer:
    def forward(self, logger: MicroMetricLogger) -> None:
        logger.log("m", 1.0)

    @classmethod
    def build(cls, logger: MicroMetricLogger) -> None:
        logger.log("m", 1.0)


def test_location_is_module_class_method(configured):
    module = __name__
    _module_function(configured)
    _Layer().forward(configured)
    _Layer.build(configured)
    _Layer().forward(configured)

    def nested() -> None:
        configured.log("m", 1.0)

    nested()
    locations = [e.location for e in configured.log_queue]
    assert locations[0] == f"{module}._module_function"
    assert locations[1] == f"{module}._Layer.forward"
    assert locations[2] == f"{module}._Layer.build"
    assert locations[3] == locations[1]
    assert locations[4].startswith(f"{module}.test_location_is_module_class_method")
    assert locations[4].endswith("nested")


def test_event_timestamps_are_epoch_seconds(configured):
    import time

    before = time.time()
    configured.log("m", 1.0)
    assert before <= configured.log_queue[0].timestamp <= time.time()


def test_threads_respect_max_records_exactly(tmp_path: Path, read_events):
    import threading

    MicroMetricLogger.register_metric("m", float)
    logger = MicroMetricLogger(log_path=tmp_path, enabled_metrics=["m"], flush_every=7)
    logger.configure_logging(tmp_path, ["m"], max_records=1000)

    def work(offset: int) -> None:
        for i in range(400):
            logger.log("m", float(offset + i))

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.flush()
    values = [event["value"] for event in read_events(tmp_path)]
    assert len(values) == 1000
    assert len(set(values)) == 1000


def test_location_fallbacks_without_qualname():
    """Python 3.10 has no co_qualname: the class comes from self/cls in the frame's locals."""
    from types import SimpleNamespace

    from sparse_attention_hub.metric_logging.location import _compute

    def frame(name: str, local_vars: dict, module: str | None = "pkg.mod") -> Any:
        return SimpleNamespace(
            f_globals={"__name__": module} if module else {},
            f_code=SimpleNamespace(co_name=name),
            f_locals=local_vars,
        )

    assert _compute(frame("forward", {"self": _Layer()})) == "pkg.mod._Layer.forward"
    assert _compute(frame("build", {"cls": _Layer})) == "pkg.mod._Layer.build"
    assert _compute(frame("helper", {})) == "pkg.mod.helper"
    assert _compute(frame("<module>", {})) == "pkg.mod"
    assert _compute(frame("f", {}, module=None)) == "unknown.f"
