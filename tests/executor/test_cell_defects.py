"""Issue 14's cell defects, on a real study (tiny model, two configs, the mock benchmark):
kill -9 and resume, corrupt metrics.json / predictions / config.json, and moved results.

Each cell's content is compared with an uninterrupted run of the same study (timings aside).
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks.run_loop import TIMING_FIELDS
from sparse_attention_hub.cli import main
from sparse_attention_hub.executor.results import build_results_table

sys.path.insert(0, str(Path(__file__).parent))
from study_script import executor, matrix

sys.path.pop(0)

SCRIPT = Path(__file__).with_name("study_script.py")
TIMING = ("request_seconds", *TIMING_FIELDS)
CELLS = ("dense/mock_benchmark", "sink_local/mock_benchmark")


def _cells(base: Path) -> dict[str, Path]:
    (model,) = [p for p in base.iterdir() if p.is_dir()]
    return {name: model / name for name in CELLS}


def content(cell: Path) -> dict[str, Any]:
    """A cell's predictions (timings left out) and metric events (timestamps left out)."""
    rows = [json.loads(line) for line in (cell / "predictions.jsonl").read_text().splitlines()]
    rows = sorted(({k: v for k, v in r.items() if k not in TIMING} for r in rows), key=str)
    log = cell / "micro_metrics.jsonl"  # dense cells log nothing: their attention is the model's
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    events = sorted(json.dumps({**e, "timestamp": None}, sort_keys=True) for e in events)
    metrics = json.loads((cell / "metrics.json").read_text())
    return {"rows": rows, "events": events, "score": metrics["overall_score"]}


def test_the_sparse_cell_logs_events_of_every_request(baseline: Path) -> None:
    events = content(_cells(baseline)["sink_local/mock_benchmark"])["events"]
    assert {json.loads(e)["metadata"]["request_index"] for e in events} == {0, 1, 2}


@pytest.fixture(scope="module")
def baseline(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The study run once, uninterrupted."""
    base = tmp_path_factory.mktemp("baseline") / "results"
    results = executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    assert not results.failed_executions, [f.error_message for f in results.failed_executions]
    return base


def _copy(baseline: Path, tmp_path: Path) -> Path:
    base = tmp_path / "results"
    shutil.copytree(baseline, base)
    return base


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2])  # more seeds, more kill points (about 30 s each)
def test_kill_9_at_a_random_point_then_resume_equals_an_uninterrupted_run(
    seed: int, baseline: Path, tiny_model_dir: str, tmp_path: Path
) -> None:
    """Defect 1: every event of a saved prediction survives a kill; none is doubled."""
    rng = random.Random(seed)
    base = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(base), tiny_model_dir], start_new_session=True
    )
    cell = _cells(baseline)[rng.choice(CELLS)].relative_to(baseline)
    target = base / cell / "predictions.jsonl"
    wanted = rng.choice([1, 2])  # the mock benchmark has 3 requests: 3, 3 and 2 rows
    deadline = time.monotonic() + 120
    while _lines(target) < wanted * 3 - 2 and proc.poll() is None:
        assert time.monotonic() < deadline, "the study never reached the kill point"
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.3))
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and its worker, mid-cell
    proc.wait(10)

    results = executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    assert not results.failed_executions
    for name, done in _cells(baseline).items():
        assert content(base / done.relative_to(baseline)) == content(done), name


@pytest.mark.slow
def test_corrupt_metrics_and_predictions_are_detected_rescored_and_resumed(
    baseline: Path, tiny_model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Defect 3: a truncated or NaN metrics.json, garbage or missing prediction rows."""
    base = _copy(baseline, tmp_path)
    dense, sparse = _cells(base).values()
    text = (dense / "metrics.json").read_text()
    (dense / "metrics.json").write_text(text[: len(text) // 2])  # truncated
    with open(sparse / "predictions.jsonl", "a") as handle:
        handle.write('{"garbage": true}\n')  # a row that is no prediction

    table = build_results_table(base)
    assert list(table["status"]) == ["corrupt", "corrupt"]
    assert table["overall_score"].isna().all()
    assert main(["report", str(base)]) == 0
    out = capsys.readouterr().out
    table = "\n".join(line for line in out.splitlines() if not line.startswith("†"))
    assert table.count("corrupt") == 2 and "complete" not in table  # then a line per cell: why
    assert out.count("† model-") == 2 and "predictions.jsonl holds 8 rows" in out
    plan = executor(str(base)).plan_matrix(**matrix(tiny_model_dir))
    assert [status for _, status in plan] == ["corrupt", "corrupt"]

    results = executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    assert len(results.individual_results) == 2 and not results.skipped
    for name, done in _cells(baseline).items():  # re-scored from the intact predictions
        assert content(base / done.relative_to(baseline)) == content(done), name

    # NaN score; a deleted prediction row: corrupt again, and resumed to the same content
    metrics = json.loads((dense / "metrics.json").read_text())
    (dense / "metrics.json").write_text(json.dumps({**metrics, "overall_score": float("nan")}))
    kept = (sparse / "predictions.jsonl").read_text().splitlines()
    (sparse / "predictions.jsonl").write_text("\n".join(kept[:3] + kept[4:]) + "\n")
    assert list(build_results_table(base)["status"]) == ["corrupt", "corrupt"]
    executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    for name, done in _cells(baseline).items():
        assert content(base / done.relative_to(baseline)) == content(done), name


@pytest.mark.slow
def test_corrupt_config_json_is_reported_and_named_at_run_time(
    baseline: Path, tiny_model_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect 4: the cell stays in the table as corrupt, with a warning naming the file."""
    base = _copy(baseline, tmp_path)
    sparse = _cells(base)["sink_local/mock_benchmark"]
    (sparse / "config.json").write_text('{"fingerprint": "abc", "resolved')
    with caplog.at_level(logging.WARNING):
        table = build_results_table(base)
    assert dict(zip(table["sparse_config"], table["status"], strict=True)) == {
        "dense": "complete",
        "sink_local": "corrupt",
    }
    assert f"{sparse / 'config.json'} is not a valid JSON object" in caplog.text
    plan = executor(str(base)).plan_matrix(**matrix(tiny_model_dir))
    assert [status for _, status in plan] == ["complete", "corrupt"]

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        results = executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    assert "config.json is not a valid JSON object; old files moved to" in caplog.text
    assert "config changed" not in caplog.text
    assert [r.stub.sparse_config_name for r in results.individual_results] == ["sink_local"]
    assert content(sparse) == content(_cells(baseline)["sink_local/mock_benchmark"])


@pytest.mark.slow
def test_non_utf8_bytes_in_a_micro_metrics_file_are_that_cells_problem(
    baseline: Path,
    tiny_model_dir: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 30, item 2: the cell is corrupt (its file named), the rest is reported, and a
    rerun trims the log and re-scores the cell to an uninterrupted run's content."""
    base = _copy(baseline, tmp_path)
    sparse = _cells(base)["sink_local/mock_benchmark"]
    log = sparse / "micro_metrics.jsonl"
    with open(log, "ab") as handle:
        handle.write(b"\xff\xfe")

    with caplog.at_level(logging.WARNING):
        table = build_results_table(base)
    assert dict(zip(table["sparse_config"], table["status"], strict=True)) == {
        "dense": "complete",
        "sink_local": "corrupt",
    }
    assert f"{log} has damaged line(s)" in caplog.text
    assert main(["report", str(base)]) == 0
    assert "corrupt" in capsys.readouterr().out
    assert main(["compare", str(baseline), str(base)]) == 0
    plan = executor(str(base)).plan_matrix(**matrix(tiny_model_dir))
    assert [status for _, status in plan] == ["complete", "corrupt"]

    results = executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    assert [r.stub.sparse_config_name for r in results.individual_results] == ["sink_local"]
    assert content(sparse) == content(_cells(baseline)["sink_local/mock_benchmark"])
    assert build_results_table(base)["status"].eq("complete").all()


@pytest.mark.slow
def test_a_duplicated_prediction_line_is_repaired_once(
    baseline: Path, tiny_model_dir: str, tmp_path: Path
) -> None:
    """Issue 30, item 3: the rerun keeps one record per row and ends complete, for good."""
    base = _copy(baseline, tmp_path)
    sparse = _cells(base)["sink_local/mock_benchmark"]
    lines = (sparse / "predictions.jsonl").read_text().splitlines(keepends=True)
    with open(sparse / "predictions.jsonl", "a") as handle:
        handle.write(lines[1])
    assert list(build_results_table(base)["status"]) == ["complete", "corrupt"]

    results = executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    assert [r.stub.sparse_config_name for r in results.individual_results] == ["sink_local"]
    assert content(sparse) == content(_cells(baseline)["sink_local/mock_benchmark"])
    assert len((sparse / "predictions.jsonl").read_text().splitlines()) == len(lines)
    again = executor(str(base)).run_benchmark_matrix(**matrix(tiny_model_dir))
    assert len(again.skipped) == 2 and not again.individual_results


@pytest.mark.slow
def test_a_moved_results_dir_run_from_elsewhere_resumes(
    baseline: Path, tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 6: cells are named by the model's content, not by its path."""
    moved = _copy(baseline, tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = os.path.relpath(tiny_model_dir, elsewhere)  # the same model, another path
    plan = executor(str(moved)).plan_matrix(**matrix(relative))
    assert [status for _, status in plan] == ["complete", "complete"]
    results = executor(str(moved)).run_benchmark_matrix(**matrix(relative))
    assert len(results.skipped) == 2 and not results.individual_results
    assert sorted(p.name for p in moved.iterdir() if p.is_dir()) == [
        next(p.name for p in baseline.iterdir() if p.is_dir())
    ]
    assert pd.read_csv(moved / "results.csv")["status"].eq("complete").all()
