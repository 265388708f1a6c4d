"""Confidence intervals of the per-task scores in results.csv (``score.<task>.ci_low`` and
``.ci_high``), on cells of the real mock benchmark."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks.mock_benchmark.benchmark import mock_rows
from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment.cell_scores import load_cell
from sparse_attention_hub.experiment.task_stats import task_interval
from tests.support.cells import mock_cell

ROWS = mock_rows()
GOLD = [answers[0] for answers in ROWS["answer"]]
TASKS = list(dict.fromkeys(ROWS["task"]))  # 3 tasks of 3, 2 and 3 rows


def test_each_task_score_gets_its_interval(tmp_path: Path, capsys) -> None:
    base = tmp_path / "results"
    mock_cell(base, "dense", GOLD)
    mock_cell(base, "one_wrong", ["nothing", *GOLD[1:]])  # row 0 belongs to the first task
    assert main(["-q", "report", str(base), "--format", "csv", "--resamples", "300"]) == 0
    capsys.readouterr()
    table = pd.read_csv(base / "results.csv").set_index("sparse_config")
    for task in TASKS:
        low, high = f"score.{task}.ci_low", f"score.{task}.ci_high"
        assert (table.loc["dense", low], table.loc["dense", high]) == (100.0, 100.0)
        wrong = table.loc["one_wrong"]
        assert wrong[low] <= wrong[f"score.{task}"] <= wrong[high]
    first = table.loc["one_wrong"]
    assert first[f"score.{TASKS[0]}"] == pytest.approx(200 / 3, abs=0.01)
    assert first[f"score.{TASKS[0]}.ci_low"] == 0.0 and first[f"score.{TASKS[0]}.ci_high"] == 100.0
    assert first[f"score.{TASKS[1]}.ci_low"] == 100.0  # the other tasks are all right


def test_rescoring_resamples_gives_the_fast_interval(tmp_path: Path) -> None:
    cell = load_cell(mock_cell(tmp_path, "one_wrong", ["nothing", *GOLD[1:]]))
    assert cell is not None and cell.per_row is not None
    fast = task_interval(cell, TASKS[0], 200 / 3, 300, 1)
    slow = task_interval(replace(cell, per_row=None, groups=None), TASKS[0], 200 / 3, 300, 1)
    assert fast is not None and slow is not None
    assert (slow.low, slow.high) == pytest.approx((fast.low, fast.high), abs=0.01)
    assert task_interval(cell, "no such task", 1.0, 10, 0) is None
    assert math.isclose(fast.estimate, 200 / 3, abs_tol=0.01)


def test_an_answer_holding_a_carriage_return_stays_one_row(tmp_path: Path) -> None:
    answers = [f"{GOLD[0]}\r", *GOLD[1:]]  # the CSV writer leaves a lone \r unquoted
    cell = load_cell(mock_cell(tmp_path, "dense", answers))
    assert cell is not None and list(cell.row_ids) == list(range(8))
    assert cell.overall == 100.0
