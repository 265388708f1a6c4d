"""Confidence intervals of a cell's per-task scores (the ``score.<task>`` columns of
results.csv): ``score.<task>.ci_low`` and ``score.<task>.ci_high``, a 95 % bootstrap interval
over the task's rows.

When the task's recorded score is the mean of its rows' own scores (up to the scorer's
rounding), those are resampled (fast); otherwise each resample of the task's rows is rescored
by the benchmark's ``post_run_evaluate`` and its ``task_scores[task]`` taken. Tasks whose
score is a dict of metrics (``score.<task>.<metric>``) get no interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sparse_attention_hub.experiment import stats
from sparse_attention_hub.experiment.cell_scores import ROUNDING, CellScores

PREFIX = "score."


def task_column(task: str, suffix: str) -> str:
    """``score.<task>.<suffix>``: the results.csv column of one bound of a task's interval."""
    return f"{PREFIX}{task}.{suffix}"


def _task_score(cell: CellScores, positions: np.ndarray, task: str) -> float:
    """The benchmark's score of ``task`` on the rows at ``positions``; NaN when it has none."""
    frame = cell.frame.iloc[positions].reset_index(drop=True)
    try:
        value = cell.benchmark.post_run_evaluate(frame).get("task_scores", {}).get(task)
    except Exception:  # a resample the scorer cannot score: left out of the quantiles
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def task_interval(
    cell: CellScores, task: str, recorded: float, resamples: int, seed: int
) -> stats.Interval | None:
    """The interval of ``task``'s score over its rows of ``cell``; None without rows."""
    if "task" not in cell.frame.columns:
        return None
    rows = np.flatnonzero(cell.frame["task"].astype(str).to_numpy() == task)  # (n_task,)
    if not len(rows):
        return None
    if cell.per_row is not None:
        values = cell.per_row[rows]
        if math.isclose(float(values.mean()), recorded, rel_tol=1e-9, abs_tol=ROUNDING):
            return stats.mean_ci(values, resamples, seed)
    return stats.statistic_ci(
        len(rows), lambda idx: _task_score(cell, rows[idx], task), resamples, seed
    )


def task_intervals(
    cell: CellScores, row: dict[str, Any], resamples: int, seed: int
) -> dict[str, float]:
    """``{score.<task>.ci_low: .., score.<task>.ci_high: ..}`` for each task of ``cell`` whose
    score ``row`` (a results.csv row) records as a number."""
    if "task" not in cell.frame.columns:
        return {}
    out: dict[str, float] = {}
    for task in sorted(set(cell.frame["task"].astype(str))):
        recorded = row.get(PREFIX + task)
        if isinstance(recorded, bool) or not isinstance(recorded, (int, float)):
            continue
        if not math.isfinite(recorded):
            continue
        interval = task_interval(cell, task, float(recorded), resamples, seed)
        if interval is not None and math.isfinite(interval.low):
            out[task_column(task, "ci_low")] = interval.low
            out[task_column(task, "ci_high")] = interval.high
    return out
