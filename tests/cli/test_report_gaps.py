"""``sah report`` hides no gap: a config whose cells lost config.json, a complete cell whose
micro-metrics file is gone or torn, NaN metric events, a metrics.json whose score its rows no
longer give. Each is marked † in the table, in a ``notes`` entry of JSON and CSV and in the
``note`` column of results.csv, with a line saying which cell and why."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from tests.cli.test_report_tree import cell
from tests.support.cells import mock_cell

RULER = "synthetic_ruler_1024"


def _event(value: float | str) -> str:
    record = {"metric": "research_attention_density", "value": value, "metadata": {}}
    return json.dumps(record) + "\n"  # NaN is written as the bare word, as json does


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """org/a: dense and streaming on two benchmarks; streaming logged densities 0.25, 0.75."""
    base = tmp_path / "results"
    for bench in ("mock_benchmark", RULER):
        cell(base, "org/a", "dense", bench, 30.0)
    cell(base, "org/a", "streaming", "mock_benchmark", 10.0, density=0.25)
    cell(base, "org/a", "streaming", RULER, 20.0, density=0.75)
    return base


def _report(base: Path, fmt: str, capsys, resamples: str = "0") -> str:
    assert main(["-q", "report", str(base), "--format", fmt, "--resamples", resamples]) == 0
    return capsys.readouterr().out


def _streaming(base: Path, capsys) -> dict:
    rows = {row["config"]: row for row in json.loads(_report(base, "json", capsys))}
    return rows["streaming"]


def _table_lines(base: Path, capsys) -> list[str]:
    return _report(base, "table", capsys).splitlines()


def test_a_config_whose_cells_all_lost_config_json_is_still_reported(study: Path, capsys):
    for bench in ("mock_benchmark", RULER):
        (study / "org_a" / "streaming" / bench / "config.json").unlink()
    row = _streaming(study, capsys)  # named as its siblings say: org/a, not org_a
    assert row["model"] == "org/a"
    assert row["mock_benchmark"] == "stale" and row[RULER] == "stale"
    assert set(row["notes"]) == {"mock_benchmark", RULER}
    assert "has results but no config.json" in row["notes"][RULER]
    lines = _table_lines(study, capsys)
    assert any(line.split()[:3] == ["org/a", "streaming", "stale†"] for line in lines), lines
    assert any(
        line.startswith("† org/a streaming mock_benchmark: ") and "no config.json" in line
        for line in lines
    ), lines
    written = list(csv.DictReader((study / "results.csv").open()))
    assert [r["status"] for r in written if r["sparse_config"] == "streaming"] == ["stale"] * 2


def test_a_deleted_micro_metrics_file_is_marked(study: Path, capsys):
    (study / "org_a" / "streaming" / RULER / "micro_metrics.jsonl").unlink()
    row = _streaming(study, capsys)
    assert row["density"] == 0.25  # from the other cell: said, not hidden
    assert list(row["notes"]) == [RULER] and "micro_metrics.jsonl missing" in row["notes"][RULER]
    lines = _table_lines(study, capsys)
    assert any(f"† org/a streaming {RULER}: no density" in line for line in lines), lines
    text = _report(study, "csv", capsys)
    (streaming,) = [r for r in csv.DictReader(io.StringIO(text)) if r["config"] == "streaming"]
    assert streaming["notes"].startswith(f"{RULER}: no density or output-error events")


def test_a_torn_micro_metrics_file_is_marked_with_its_reason(study: Path, capsys):
    path = study / "org_a" / "streaming" / RULER / "micro_metrics.jsonl"
    path.write_text(path.read_text() + '{"metric": "research_attention_dens')
    row = _streaming(study, capsys)
    assert row[RULER] == "corrupt" and row["density"] == 0.25
    assert f"{path} has damaged line(s) 2" in row["notes"][RULER]
    assert any(
        line.startswith(f"† org/a streaming {RULER}: {path}")
        for line in _table_lines(study, capsys)
    )


def test_nan_metric_events_are_counted_not_skipped_silently(study: Path, capsys):
    path = study / "org_a" / "streaming" / "mock_benchmark" / "micro_metrics.jsonl"
    path.write_text(_event(0.25) + _event(float("nan")) + _event("high"))
    row = _streaming(study, capsys)
    assert row["density"] == 0.5  # mean of 0.25 and 0.75: the bad events are left out
    note = row["notes"]["mock_benchmark"]
    assert note.startswith("2 of 3 research_attention_density events are NaN or not a number")
    written = {r["benchmark"]: r for r in csv.DictReader((study / "results.csv").open())}
    assert written["mock_benchmark"]["note"] == note


def test_a_score_its_rows_no_longer_give_is_marked_and_has_no_interval(tmp_path: Path, capsys):
    base = tmp_path / "results"
    mock_cell(base, "dense", ["a"] * 8)
    sparse = mock_cell(base, "sink", ["a", "b"] * 4)
    metrics = json.loads((sparse / "metrics.json").read_text())
    recorded = metrics["overall_score"]
    (sparse / "metrics.json").write_text(json.dumps({**metrics, "overall_score": recorded + 25}))
    rows = {r["config"]: r for r in json.loads(_report(base, "json", capsys, "50"))}
    assert rows["sink"]["mock_benchmark"] == recorded + 25
    assert rows["sink"].get("mock_benchmark.ci_low") is None  # no interval: untrusted
    note = rows["sink"]["notes"]["mock_benchmark"]
    assert f"records overall_score {recorded + 25:.6g} but its rows" in note
    assert "no confidence interval" in note and rows["dense"]["notes"] is None
    lines = _report(base, "table", capsys, "50").splitlines()
    (sink,) = [line for line in lines if line.startswith("m ") and " sink " in line]
    assert f"{recorded + 25:.4g}†" in sink and "±" not in sink.split()[2]
    assert any(line.startswith("† m sink mock_benchmark: metrics.json records") for line in lines)


def test_a_report_without_gaps_has_no_notes(study: Path, capsys):
    rows = json.loads(_report(study, "json", capsys))
    assert all("notes" not in row for row in rows)
    assert not any("†" in line for line in _table_lines(study, capsys))
