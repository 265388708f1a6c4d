"""``sah report`` with confidence intervals on cells of the real mock benchmark: per cell,
and paired against the dense cell on the same rows."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks.mock_benchmark.benchmark import mock_rows
from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment.cell_scores import load_cell
from sparse_attention_hub.experiment.cell_stats import cell_interval, paired_interval
from tests.support.cells import mock_cell

GOLD = [answers[0] for answers in mock_rows()["answer"]]  # 8 rows, tasks of 3, 2 and 3


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    base = tmp_path / "results"
    mock_cell(base, "dense", GOLD)
    mock_cell(base, "same", GOLD)
    mock_cell(base, "broken", ["nothing"] * 8)
    mock_cell(base, "one_wrong", ["nothing", *GOLD[1:]])
    return base


def records(tree: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, dict]:
    assert main(["-q", "report", str(tree), "--format", "json", *extra]) == 0
    return {row["config"]: row for row in json.loads(capsys.readouterr().out)}


def test_intervals_and_paired_deltas_in_the_report(tree: Path, capsys) -> None:
    rows = records(tree, capsys)
    dense, same, broken = rows["dense"], rows["same"], rows["broken"]
    assert dense["mock_benchmark"] == 100.0
    assert (dense["mock_benchmark.ci_low"], dense["mock_benchmark.ci_high"]) == (100.0, 100.0)
    assert dense["mock_benchmark.delta"] is None  # dense is the baseline
    assert (same["mock_benchmark.delta"], same["mock_benchmark.delta_low"]) == (0.0, 0.0)
    assert same["mock_benchmark.delta_high"] == 0.0
    assert broken["mock_benchmark.delta"] == -100.0
    assert broken["mock_benchmark.delta_high"] == -100.0
    # one wrong row of 8: a mean of task means, rescored on each resample
    wrong = rows["one_wrong"]
    assert wrong["mock_benchmark"] == pytest.approx(88.89)
    assert wrong["mock_benchmark.delta"] == pytest.approx(88.89 - 100.0, abs=0.01)
    assert wrong["mock_benchmark.delta_low"] < wrong["mock_benchmark.delta"] <= 0.0
    assert wrong["mock_benchmark.delta_high"] == 0.0  # resamples without the row lose nothing
    assert records(tree, capsys) == rows  # seeded: the same numbers every time
    table = pd.read_csv(tree / "results.csv")
    assert {"score_ci_low", "delta_vs_dense", "delta_ci_high"} <= set(table.columns)


def test_table_shows_half_widths_and_marks_deltas_that_exclude_zero(tree: Path, capsys) -> None:
    assert main(["-q", "report", str(tree)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["model", "config", "mock_benchmark", "Δ", "mock_benchmark"]
    by_config = {line.split()[1]: line for line in lines[2:6]}
    assert list(by_config) == ["dense", "broken", "one_wrong", "same"]
    assert "100 ± 0" in by_config["dense"]
    assert "-100 [-100, -100]*" in by_config["broken"]
    assert "+0 [+0, +0]" in by_config["same"] and "*" not in by_config["same"]
    assert any(line.startswith("Δ: score minus dense") for line in lines)


def test_no_intervals_with_zero_resamples(tree: Path, capsys) -> None:
    rows = records(tree, capsys, "--resamples", "0")
    assert "mock_benchmark.ci_low" not in rows["dense"]


def test_per_row_scores_are_used_when_they_average_to_the_total(tree: Path) -> None:
    dense = load_cell(tree / "m" / "dense" / "mock_benchmark")
    wrong = load_cell(tree / "m" / "one_wrong" / "mock_benchmark")
    assert dense is not None and dense.is_row_mean and list(dense.row_ids) == list(range(8))
    # 87.5 as a mean over rows, 88.89 as the scorer's mean of task means
    assert wrong is not None and wrong.per_row is not None and wrong.groups is not None
    # rescoring every resample with the benchmark's scorer gives the same interval
    slow = replace(wrong, per_row=None, groups=None)
    fast_ci, slow_ci = cell_interval(wrong, 200, 3), cell_interval(slow, 200, 3)
    assert (slow_ci.low, slow_ci.high) == pytest.approx((fast_ci.low, fast_ci.high), abs=0.01)
    fast_d, slow_d = paired_interval(wrong, dense, 200, 3), paired_interval(slow, dense, 200, 3)
    assert fast_d is not None and slow_d is not None
    assert (slow_d.estimate, slow_d.low) == pytest.approx((fast_d.estimate, fast_d.low), abs=0.01)
