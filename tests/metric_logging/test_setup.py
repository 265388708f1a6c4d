"""Singleton, registry, enable_metrics, configure_logging and the accessors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sparse_attention_hub.metric_logging import LogEvent, MicroMetricLogger


def test_singleton_same_object_and_first_construction_wins(tmp_path: Path, warnings_caught):
    first = MicroMetricLogger(log_path=tmp_path / "a", flush_every=5, max_records=7)
    second = MicroMetricLogger(log_path=tmp_path / "b", flush_every=9, max_records=1)
    assert first is second
    assert first.log_path == str(tmp_path / "a")
    assert first.flush_every == 5 and first.get_max_records() == 7
    assert "already initialized with log_path" in warnings_caught.text
    assert not (tmp_path / "b").exists()


def test_same_path_or_no_path_on_later_construction_does_not_warn(tmp_path, warnings_caught):
    MicroMetricLogger(log_path=tmp_path)
    MicroMetricLogger(log_path=str(tmp_path))
    MicroMetricLogger()
    assert warnings_caught.records == []


def test_defaults():
    logger = MicroMetricLogger()
    assert logger.log_path is None
    assert logger.flush_every == 1000
    assert logger.flush_interval == 60.0
    assert logger.enabled_metrics == set()
    assert logger.log_queue == []
    assert not logger.is_logging_configured()
    assert logger.get_max_records() is None
    assert logger.get_sampling_factor() == 1.0
    assert logger.get_total_records_logged() == 0
    assert logger.get_log_file() is None


def test_construction_with_path_creates_directory_and_enables(tmp_path: Path):
    MicroMetricLogger.register_metric("m1", float)
    MicroMetricLogger.register_metric("m2", float)
    log_dir = tmp_path / "deep" / "logs"
    logger = MicroMetricLogger(log_path=log_dir, enabled_metrics=["m1"])
    assert log_dir.is_dir()
    assert logger.is_logging_configured()
    assert logger.get_enabled_metrics() == {"m1"}
    assert logger.get_log_file() == str(log_dir / "micro_metrics.jsonl")


def test_enabled_metrics_without_log_path_are_ignored_with_a_warning(warnings_caught):
    MicroMetricLogger.register_metric("m1", float)
    logger = MicroMetricLogger(enabled_metrics=["m1"])
    assert logger.enabled_metrics == set()
    assert "ignored without a log_path" in warnings_caught.text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"flush_every": 0}, "flush_every"),
        ({"flush_interval": -1.0}, "flush_interval"),
        ({"max_records": -1}, "max_records"),
        ({"max_records": 2.5}, "max_records"),
        ({"sampling_factor": math.nan}, "sampling_factor"),
        ({"log_path": ""}, "log_path"),
    ],
)
def test_invalid_constructor_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MicroMetricLogger(**kwargs)
    assert not MicroMetricLogger._initialized


@pytest.mark.parametrize(("given", "kept"), [(1.5, 1.0), (-0.5, 0.0), (0.25, 0.25)])
def test_sampling_factor_is_clamped(given, kept, tmp_path: Path):
    assert MicroMetricLogger(log_path=tmp_path, sampling_factor=given).get_sampling_factor() == kept
    MicroMetricLogger().configure_logging(tmp_path, sampling_factor=given)
    assert MicroMetricLogger().get_sampling_factor() == kept


def test_numpy_numbers_are_accepted_as_settings(tmp_path: Path):
    import numpy as np

    logger = MicroMetricLogger(log_path=tmp_path, max_records=np.int64(4))
    logger.configure_logging(tmp_path, sampling_factor=np.float32(0.5), max_records=np.int32(3))
    assert logger.get_max_records() == 3 and type(logger.get_max_records()) is int
    assert logger.get_sampling_factor() == 0.5
    with pytest.raises(TypeError, match="sampling_factor"):
        logger.configure_logging(tmp_path, sampling_factor="0.5")  # type: ignore[arg-type]


def test_register_metric_class_level_and_copy(warnings_caught):
    MicroMetricLogger.register_metric("density", float)
    MicroMetricLogger.register_metric("error", float)
    registered = MicroMetricLogger.get_registered_metrics()
    assert registered == {"density": float, "error": float}
    registered["other"] = str
    assert "other" not in MicroMetricLogger.get_registered_metrics()
    assert warnings_caught.records == []
    MicroMetricLogger.register_metric("density", int)
    assert "'density' is being re-registered" in warnings_caught.text
    assert MicroMetricLogger.get_registered_metrics()["density"] is int


def test_register_metric_rejects_bad_identifier():
    with pytest.raises(ValueError, match="identifier"):
        MicroMetricLogger.register_metric("", float)


def test_enable_metrics_variants(warnings_caught):
    for name in ("m1", "m2", "m3"):
        MicroMetricLogger.register_metric(name, float)
    logger = MicroMetricLogger()
    logger.enable_metrics("all")
    assert logger.enabled_metrics == {"m1", "m2", "m3"}
    logger.enable_metrics(["m1", "m3"])
    assert logger.enabled_metrics == {"m1", "m3"}
    logger.enable_metrics("m2")
    assert logger.enabled_metrics == {"m2"}
    logger.enable_metrics(None)
    assert logger.enabled_metrics == set()
    logger.enable_metrics([])
    assert logger.enabled_metrics == set()
    assert warnings_caught.records == []
    logger.enable_metrics(["m1", "nope"])
    assert logger.enabled_metrics == {"m1"}
    assert "unregistered metrics: ['nope']" in warnings_caught.text
    with pytest.raises(TypeError, match="metrics"):
        logger.enable_metrics(3)  # type: ignore[arg-type]


def test_get_enabled_metrics_returns_copy(configured: MicroMetricLogger):
    enabled = configured.get_enabled_metrics()
    enabled.add("other")
    assert configured.enabled_metrics == {"m"}
    assert configured.is_metric_enabled("m")
    assert not configured.is_metric_enabled("other")


def test_configure_logging_sets_everything_and_resets_count(configured, tmp_path: Path):
    for i in range(3):
        configured.log("m", float(i))
    assert configured.get_total_records_logged() == 3
    new_dir = tmp_path / "cell2"
    configured.configure_logging(new_dir, ["m"], max_records=10, sampling_factor=0.5, seed=3)
    assert new_dir.is_dir()
    assert configured.log_path == str(new_dir)
    assert configured.get_total_records_logged() == 0
    assert configured.get_max_records() == 10
    assert configured.get_records_remaining() == 10
    assert configured.get_sampling_factor() == 0.5
    configured.configure_logging(new_dir, ["m"])
    assert configured.get_max_records() is None
    assert configured.get_sampling_factor() == 1.0


def test_configure_logging_validates_before_changing_anything(configured, tmp_path):
    with pytest.raises(ValueError, match="max_records"):
        configured.configure_logging(tmp_path / "x", ["m"], max_records=-3)
    assert configured.log_path == str(tmp_path)
    assert not (tmp_path / "x").exists()


def test_max_records_accessors(configured, tmp_path):
    configured.configure_logging(tmp_path, ["m"], max_records=3)
    assert not configured.is_max_records_reached()
    for i in range(5):
        configured.log("m", float(i))
    assert configured.get_total_records_logged() == 3
    assert configured.is_max_records_reached()
    assert configured.get_records_remaining() == 0
    assert len(configured.log_queue) == 3


def test_reset_for_tests_keeps_the_object_and_restores_registry(tmp_path):
    logger = MicroMetricLogger(log_path=tmp_path, max_records=2)
    MicroMetricLogger.register_metric("kept", float)
    saved = MicroMetricLogger.get_registered_metrics()
    MicroMetricLogger._reset_for_tests(registry={})
    assert MicroMetricLogger.get_registered_metrics() == {}
    assert logger.log_path is None and logger.get_max_records() is None
    again = MicroMetricLogger(max_records=4)
    assert again is logger and again.get_max_records() == 4
    MicroMetricLogger._reset_for_tests(registry=saved)
    assert MicroMetricLogger.get_registered_metrics() == {"kept": float}


def test_log_event_fields_and_to_dict():
    event = LogEvent(0.0, "m", 1.5, {"layer_idx": 2}, "pkg.mod.Class.method")
    assert (event.metric, event.value, event.metadata) == ("m", 1.5, {"layer_idx": 2})
    record = event.to_dict()
    assert record["timestamp"] == "1970-01-01T00:00:00.000000+00:00"
    assert record["location"] == "pkg.mod.Class.method"
    assert LogEvent(0.0, "m", None, {}, "x").to_dict()["value"] is None
