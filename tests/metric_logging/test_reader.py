"""load_micro_metrics: a file, a cell directory, a results tree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger, load_micro_metrics


def _write_cell(directory: Path, values: list[float], layer_offset: int = 0) -> None:
    logger = MicroMetricLogger()
    logger.configure_logging(directory, ["density"])
    logger.set_context(request_index=0)
    for i, value in enumerate(values):
        logger.log("density", torch.tensor(value), {"layer_idx": layer_offset + i})
    logger.clear_context()
    logger.flush()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    MicroMetricLogger.register_metric("density", float)
    base = tmp_path / "results"
    _write_cell(base / "model_a" / "dense" / "mock_benchmark", [0.5, 0.25])
    _write_cell(base / "model_a" / "sink_local" / "synthetic_ruler_1024", [0.125], 10)
    (base / "model_a" / "empty_cell").mkdir(parents=True)
    return base


def test_load_file_and_cell_directory(tree: Path):
    cell = tree / "model_a" / "dense" / "mock_benchmark"
    from_dir = load_micro_metrics(cell)
    from_file = load_micro_metrics(cell / "micro_metrics.jsonl")
    pd.testing.assert_frame_equal(from_dir, from_file)
    assert list(from_dir.columns) == [
        "timestamp",
        "metric",
        "value",
        "location",
        "request_index",
        "layer_idx",
    ]
    assert from_dir["value"].tolist() == [0.5, 0.25]
    assert from_dir["layer_idx"].tolist() == [0, 1]
    assert isinstance(from_dir["timestamp"].dtype, pd.DatetimeTZDtype)
    assert from_dir["location"].iloc[0].endswith("test_reader._write_cell")
    assert "cell" not in from_dir.columns


def test_load_tree_adds_cell_column(tree: Path):
    frame = load_micro_metrics(tree)
    assert len(frame) == 3
    assert frame["cell"].tolist() == [
        "model_a/dense/mock_benchmark",
        "model_a/dense/mock_benchmark",
        "model_a/sink_local/synthetic_ruler_1024",
    ]
    by_cell = frame.groupby("cell")["value"].mean()
    assert by_cell["model_a/sink_local/synthetic_ruler_1024"] == 0.125
    assert frame["layer_idx"].tolist() == [0, 1, 10]


def test_empty_inputs_give_base_columns(tmp_path: Path):
    empty_tree = tmp_path / "nothing"
    empty_tree.mkdir()
    frame = load_micro_metrics(empty_tree)
    assert frame.empty
    assert list(frame.columns)[:4] == ["timestamp", "metric", "value", "location"]
    (tmp_path / "micro_metrics.jsonl").write_text("")
    assert load_micro_metrics(tmp_path / "micro_metrics.jsonl").empty


def test_missing_path_raises(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no micro metrics"):
        load_micro_metrics(tmp_path / "absent")


def test_malformed_line_is_skipped_and_clashing_keys_are_prefixed(tmp_path: Path, caplog):
    file = tmp_path / "micro_metrics.jsonl"
    file.write_text(
        '{"timestamp": "2026-01-01T00:00:00+00:00", "metric": "m", "value": 1, '
        '"metadata": {"metric": "inner", "cell": "x"}, "location": "a.b"}\n'
        '{"timestamp": "2026-01-01T00:00:01+00:0'  # cut by a crash
    )
    frame = load_micro_metrics(file)
    assert len(frame) == 1
    assert frame["metric"].iloc[0] == "m"
    assert frame["metadata.metric"].iloc[0] == "inner"
    assert frame["metadata.cell"].iloc[0] == "x"
    assert "malformed line 2" in caplog.text


def test_tree_with_empty_and_torn_files(tmp_path: Path, caplog):
    """A cell whose file is empty, one cut mid-line, one cut inside a UTF-8 character, one with
    an unreadable timestamp: the readable events come back, nothing raises."""
    good = (
        '{"timestamp": "2026-01-01T00:00:00+00:00", "metric": "m", "value": 1, '
        '"metadata": {"layer_idx": 0, "note": "\u00e9t\u00e9"}, "location": "a.b"}\n'
    )
    for cell, content in {
        "empty": b"",
        "torn": (good + good[:40]).encode(),
        "torn_char": good.encode() + good.encode()[:-12][: good.encode().index(b"\xc3") + 1],
        "bad_time": good.replace("2026-01-01T00:00:00+00:00", "yesterday").encode(),
    }.items():
        (tmp_path / "model" / cell / "mock").mkdir(parents=True)
        (tmp_path / "model" / cell / "mock" / "micro_metrics.jsonl").write_bytes(content)
    frame = load_micro_metrics(tmp_path)
    assert frame["cell"].tolist() == [
        "model/bad_time/mock",
        "model/torn/mock",
        "model/torn_char/mock",
    ]
    assert frame["value"].tolist() == [1, 1, 1]
    assert frame["timestamp"].isna().tolist() == [True, False, False]
    assert frame["note"].tolist() == ["\u00e9t\u00e9"] * 3
    assert caplog.text.count("malformed line 2") == 2


def test_tree_leaves_out_stale_runs_unless_asked(tmp_path: Path):
    """The executor moves a re-run cell's old files into <cell>/stale/<timestamp>/; their events
    belong to another config and stay out of the tree's table (a config named "stale" does not)."""
    line = (
        '{"timestamp": "2026-01-01T00:00:00+00:00", "metric": "m", "value": %s, '
        '"metadata": {}, "location": "a"}\n'
    )
    files = {
        "model/dense/mock": "1",
        "model/dense/mock/stale/20260101_000000": "2",
        "model/dense/mock/stale/20260101_000000_2": "3",
        "model/stale/mock": "4",
    }
    for cell, value in files.items():
        (tmp_path / cell).mkdir(parents=True)
        (tmp_path / cell / "micro_metrics.jsonl").write_text(line % value)
    frame = load_micro_metrics(tmp_path)
    assert sorted(frame["value"]) == [1, 4]
    assert sorted(load_micro_metrics(tmp_path, include_stale=True)["value"]) == [1, 2, 3, 4]


def test_nan_values_are_kept_and_counted_in_a_warning(tmp_path: Path, caplog):
    file = tmp_path / "micro_metrics.jsonl"
    file.write_text(
        '{"metric": "m", "value": NaN}\n{"metric": "m", "value": 0.5}\n'
        '{"metric": "m", "value": Infinity}\n{"metric": "m", "value": [1, 2]}\n'
    )
    frame = load_micro_metrics(file)
    assert len(frame) == 4
    assert f"2 event(s) in {file} have a NaN or infinite value" in caplog.text
