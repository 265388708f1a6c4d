"""``sah report`` on a folder of several runs: each results directory on its own, never a row
that mixes cells of two runs; ``--plot``/``--html`` refuse a folder of runs; output paths of
the wrong kind are one-line errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.executor.results import build_results_table, results_dirs
from tests.cli.test_report_tree import cell


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two runs of the same study under one folder: scores, densities and statuses differ."""
    folder = tmp_path / "runs"
    first, second = folder / "r1", folder / "r2"
    cell(first, "org/a", "dense", "mock_benchmark", 30.0, answers="abxy")
    cell(first, "org/a", "streaming", "mock_benchmark", 10.0, density=0.25, answers="abcd")
    cell(second, "org/a", "dense", "mock_benchmark", None, failed=True)
    cell(second, "org/a", "streaming", "mock_benchmark", 20.0, density=0.75, answers="abxy")
    return folder


def run_report(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["-q", "report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_results_dirs_are_found_by_the_cell_layout(runs: Path, tmp_path: Path) -> None:
    (runs / "r1" / "notes").mkdir()
    (runs / "r1" / "notes" / "config.json").write_text("{}")  # not a cell: no resolved config
    assert results_dirs(runs) == [runs / "r1", runs / "r2"]
    assert results_dirs(runs / "r1") == [runs / "r1"]
    assert results_dirs(runs / "r1" / "org_a") == [runs / "r1" / "org_a"]  # below a run: itself
    assert results_dirs(tmp_path / "runs" / "r1" / "notes") == []
    # a run's own table never takes in the cells of a run nested in it
    cell(runs / "r1" / "older", "org/a", "dense", "mock_benchmark", 99.0)
    assert list(build_results_table(runs / "r1")["overall_score"]) == [30.0, 10.0]
    assert results_dirs(runs / "r1") == [runs / "r1", runs / "r1" / "older"]


def test_json_reports_each_run_on_its_own(runs: Path, capsys) -> None:
    code, out, _ = run_report([str(runs), "--format", "json", "--resamples", "0"], capsys)
    assert code == 0
    rows = {(r["results_dir"], r["config"]): r for r in json.loads(out)}
    assert list(rows) == [
        (str(runs / "r1"), "dense"),
        (str(runs / "r1"), "streaming"),
        (str(runs / "r2"), "dense"),
        (str(runs / "r2"), "streaming"),
    ]
    first, second = rows[str(runs / "r1"), "streaming"], rows[str(runs / "r2"), "streaming"]
    assert (first["mock_benchmark"], first["density"], first["agreement"]) == (10.0, 0.25, 0.5)
    assert (second["mock_benchmark"], second["density"]) == (20.0, 0.75)
    assert second.get("agreement") is None  # r2 has no complete dense cell: no agreement
    assert rows[str(runs / "r2"), "dense"]["mock_benchmark"] == "failed"
    assert rows[str(runs / "r1"), "dense"]["mock_benchmark"] == 30.0
    # each run's results.csv holds its own cells; none is written over the folder of runs
    assert not (runs / "results.csv").exists()
    for run, scores in (("r1", {"30.0", "10.0"}), ("r2", {"", "20.0"})):
        written = list(csv.DictReader((runs / run / "results.csv").open()))
        assert {r["overall_score"] for r in written} == scores


def test_csv_has_one_parseable_document(runs: Path, capsys) -> None:
    code, out, _ = run_report([str(runs), "--format", "csv", "--resamples", "0"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(Path(r["results_dir"]).name, r["config"], r["density"]) for r in rows] == [
        ("r1", "dense", ""),
        ("r1", "streaming", "0.25"),
        ("r2", "dense", ""),
        ("r2", "streaming", "0.75"),
    ]


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_text_formats_print_one_table_per_run_headed_by_its_path(
    runs: Path, capsys, fmt: str
) -> None:
    code, out, _ = run_report([str(runs), "--format", fmt, "--resamples", "0"], capsys)
    assert code == 0
    first_at, second_at = out.index(str(runs / "r1")), out.index(str(runs / "r2"))
    first, second = out[first_at:second_at], out[second_at:]
    assert "0.25" in first and "0.75" not in first and "failed" not in first
    assert "0.75" in second and "failed" in second and "0.25" not in second


@pytest.mark.parametrize("option", [["--plot"], ["--html", "page.html"]])
def test_plot_and_html_refuse_a_folder_of_runs(
    runs: Path, capsys, option: list[str], tmp_path: Path
) -> None:
    option = [str(tmp_path / o) if o.endswith(".html") else o for o in option]
    code, out, err = run_report([str(runs), *option], capsys)
    assert code == 2 and out == ""
    assert str(runs / "r1") in err and str(runs / "r2") in err and "pass one" in err
    assert not (tmp_path / "page.html").exists() and not list(runs.rglob("figures"))
    assert not list(runs.rglob("results.csv"))  # refused before any work


def test_one_run_below_the_folder_is_reported_where_it_lies(runs: Path, capsys) -> None:
    shutil.rmtree(runs / "r2")
    code, out, _ = run_report([str(runs), "--format", "json", "--resamples", "0"], capsys)
    assert code == 0
    assert [r["mock_benchmark"] for r in json.loads(out)] == [30.0, 10.0]
    assert (runs / "r1" / "results.csv").is_file() and not (runs / "results.csv").exists()


def test_html_to_a_directory_is_a_one_line_error(runs: Path, capsys, tmp_path: Path) -> None:
    target = tmp_path / "out_dir"
    target.mkdir()
    code, out, err = run_report([str(runs / "r1"), "--html", str(target)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"--html {target}" in err and "is a directory" in err


def test_plot_out_to_a_file_is_a_one_line_error(runs: Path, capsys, tmp_path: Path) -> None:
    target = tmp_path / "figures.png"
    target.write_text("")
    code, out, err = run_report([str(runs / "r1"), "--plot", "--out", str(target)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"--out {target}" in err and "is a file" in err
    below = target / "sub"  # a folder below a file cannot be made either
    code, _, err = run_report([str(runs / "r1"), "--plot", "--out", str(below)], capsys)
    assert code == 2 and f"--out {below}" in err and str(target) in err


def test_compare_refuses_a_folder_of_runs(runs: Path, tmp_path: Path, capsys) -> None:
    assert main(["-q", "compare", str(runs), str(runs / "r1")]) == 2
    err = capsys.readouterr().err
    assert "holds 2 results directories" in err and str(runs / "r2") in err
    shutil.rmtree(runs / "r2")  # a folder holding one run compares as that run
    assert main(["-q", "compare", str(runs), str(runs / "r1"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)
