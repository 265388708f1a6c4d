"""``sah compare`` on real result directories: two models (cells matched on config and
benchmark), two runs of one model (matched cell by cell), cells found on one side only,
significance marks, and the errors."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from sparse_attention_hub.benchmarks.mock_benchmark.benchmark import mock_rows
from sparse_attention_hub.cli import main
from tests.support.cells import mock_cell

GOLD = [answers[0] for answers in mock_rows()["answer"]]  # 8 rows


def compare(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["-q", "compare", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_two_models_match_on_config_and_list_one_sided_cells(tiny_runs, capsys) -> None:
    a, b = str(tiny_runs["a"]), str(tiny_runs["b"])
    result = json.loads(compare(capsys, a, b, "--format", "json", "--resamples", "200"))
    assert result["match"] == "config"
    assert len(result["models_a"]) == 1 and result["models_a"] != result["models_b"]
    assert "vs" in result["note"]
    [pair] = result["common"]
    assert (pair["config"], pair["benchmark"]) == ("dense", "mock_benchmark")
    assert pair["paired_rows"] == 8
    assert pair["delta"] == pytest.approx(pair["score_b"] - pair["score_a"], abs=1e-9)
    assert pair["delta_low"] <= pair["delta"] <= pair["delta_high"]
    assert pair["ci_low_a"] <= pair["score_a"] <= pair["ci_high_a"]
    assert [c["config"] for c in result["only_a"]] == ["sink_local"] and result["only_b"] == []
    text = compare(capsys, a, b, "--resamples", "200")
    assert "matching cells on config and benchmark: model" in text
    assert "only in A" in text and "sink_local / mock_benchmark" in text
    assert main(["-q", "compare", a, b, "--match", "cell"]) == 2  # different models
    assert "no cell in common" in capsys.readouterr().err


@pytest.mark.slow
def test_two_runs_of_one_model_match_cell_by_cell(tiny_runs, tmp_path, capsys) -> None:
    a = tiny_runs["a"]
    again = tmp_path / "again"
    shutil.copytree(a, again)
    result = json.loads(compare(capsys, str(a), str(again), "--format", "json"))
    assert result["match"] == "cell"
    assert [p["config"] for p in result["common"]] == ["dense", "sink_local"]
    for pair in result["common"]:  # the same answers: exactly no difference
        assert (pair["delta"], pair["delta_low"], pair["delta_high"]) == (0.0, 0.0, 0.0)
        assert pair["excludes_zero"] is False
    assert result["only_a"] == result["only_b"] == []
    rows = list(csv.DictReader(io.StringIO(compare(capsys, str(a), str(again), "--format", "csv"))))
    assert [r["in"] for r in rows] == ["both", "both"]


def test_a_difference_whose_ci_excludes_zero_is_marked(tmp_path, capsys) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    mock_cell(old, "topk", ["nothing"] * 8)
    mock_cell(old, "dense", GOLD)
    mock_cell(new, "topk", GOLD)
    mock_cell(new, "streaming", GOLD)
    text = compare(capsys, str(old), str(new), "--format", "markdown")
    [line] = [line for line in text.splitlines() if "topk" in line]
    assert "+100 [+100, +100]*" in line and "| 8 |" in line
    assert "only in A" in text and "m / dense / mock_benchmark (100)" in text
    assert "only in B" in text and "m / streaming" in text
    rows = list(csv.DictReader(io.StringIO(compare(capsys, str(old), str(new), "--format", "csv"))))
    assert sorted(r["in"] for r in rows) == ["a", "b", "both"]


def test_a_cell_without_a_ci_says_why(tmp_path, capsys) -> None:
    """A cell whose rows, rescored, do not give its recorded score has no CI: the plain
    difference is shown and a line says why (the JSON carries the note)."""
    old, new = tmp_path / "old", tmp_path / "new"
    mock_cell(old, "topk", ["nothing"] * 8)
    cell = mock_cell(new, "topk", GOLD)
    metrics = json.loads((cell / "metrics.json").read_text())
    metrics["overall_score"] = 50.0  # not what its raw_results.csv scores (100)
    (cell / "metrics.json").write_text(json.dumps(metrics))
    text = compare(capsys, str(old), str(new))
    [line] = [line for line in text.splitlines() if "topk" in line and "+50" in line]
    assert "(no CI)" in line
    assert "no CI:" in text
    assert "B m / topk / mock_benchmark: metrics.json records overall_score 50" in text
    [pair] = json.loads(compare(capsys, str(old), str(new), "--format", "json"))["common"]
    assert pair["note_a"] is None and "score 100" in pair["note_b"]


def test_config_matching_needs_one_model_per_side(tmp_path, capsys) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    mock_cell(a, "dense", GOLD, model="org/x")
    mock_cell(a, "dense", GOLD, model="org/y")
    mock_cell(b, "dense", GOLD, model="org/z")
    assert main(["-q", "compare", str(a), str(b), "--match", "config"]) == 2
    assert "--match config needs one model per directory; A holds 2" in capsys.readouterr().err
    # auto: two models on one side, so cells match on model too: nothing in common
    assert main(["-q", "compare", str(a), str(b)]) == 2
    assert "have no cell in common" in capsys.readouterr().err


def test_bad_directories_are_clear_errors(tmp_path, capsys) -> None:
    good = tmp_path / "good"
    mock_cell(good, "dense", GOLD)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    for other, words in (
        ("missing", "no such results directory"),
        ("file", "not a directory"),
        ("empty", "no result cells found"),
    ):
        assert main(["-q", "compare", str(good), str(tmp_path / other)]) == 2
        assert words in capsys.readouterr().err
