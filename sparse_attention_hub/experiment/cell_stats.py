"""Confidence intervals for a results table: per cell, and paired against dense.

:func:`add_intervals` adds five columns to the per-cell table (``results.csv``):

- ``score_ci_low``, ``score_ci_high``: the 95 % bootstrap interval of the cell's overall
  score over its samples;
- ``delta_vs_dense``, ``delta_ci_low``, ``delta_ci_high``: for a sparse cell, its score minus
  the score of the complete ``dense`` cell of the same model, benchmark and subset, both on the
  rows the two share (matched by ``row_id``), with a paired bootstrap interval (the same
  resampled rows score both cells).

Per-task scores (``score.<task>``) get ``score.<task>.ci_low`` and ``score.<task>.ci_high``
(see task_stats.py). Cells whose rows or scorer cannot be read again (or whose rescored total differs from
metrics.json) get empty columns; a rescored total that differs is said in the cell's
``note``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sparse_attention_hub.experiment import stats
from sparse_attention_hub.experiment.cell_scores import CellScores, load_cell
from sparse_attention_hub.experiment.task_stats import task_intervals

CI_LOW, CI_HIGH = "score_ci_low", "score_ci_high"
DELTA, DELTA_LOW, DELTA_HIGH = "delta_vs_dense", "delta_ci_low", "delta_ci_high"
INTERVAL_COLUMNS = (CI_LOW, CI_HIGH, DELTA, DELTA_LOW, DELTA_HIGH)
DENSE = "dense"
NOTE = "note"  # the results table's column of what a cell's values lack (executor.results)


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    subset = row.get("subset")
    missing = subset is None or (isinstance(subset, float) and math.isnan(subset))
    return row["model"], row["benchmark"], None if missing else str(subset)


def cell_interval(cell: CellScores, resamples: int, seed: int) -> stats.Interval:
    """The cell's overall score with its bootstrap interval over its rows."""
    if cell.is_row_mean and cell.per_row is not None:
        return stats.mean_ci(cell.per_row, resamples, seed)
    return stats.statistic_ci(len(cell.row_ids), cell.score, resamples, seed)


def _positions(row_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions in ``row_ids`` (n,) of each id in ``wanted`` (m,): int array (m,)."""
    where = {int(r): i for i, r in enumerate(row_ids)}
    return np.array([where[int(r)] for r in wanted], dtype=np.int64)


def paired_interval(
    cell: CellScores, dense: CellScores, resamples: int, seed: int
) -> stats.Interval | None:
    """``cell - dense`` on the rows both scored (matched by row id); None if they share none."""
    common = np.intersect1d(cell.row_ids, dense.row_ids)
    if not len(common):
        return None
    mine = _positions(cell.row_ids, common)
    theirs = _positions(dense.row_ids, common)
    if (
        cell.is_row_mean
        and dense.is_row_mean
        and cell.per_row is not None
        and dense.per_row is not None
    ):
        return stats.paired_mean_ci(cell.per_row[mine], dense.per_row[theirs], resamples, seed)
    return stats.statistic_ci(
        len(common),
        lambda idx: cell.score(mine[idx]) - dense.score(theirs[idx]),
        resamples,
        seed,
    )


def trusted_cell(row: dict[str, Any]) -> CellScores | None:
    """The cell's scores when it is complete and rescoring gives its recorded score."""
    return checked_cell(row)[0]


def checked_cell(row: dict[str, Any]) -> tuple[CellScores | None, str | None]:
    """:func:`trusted_cell`, and a note when the cell's rows, rescored, do not give the score
    its metrics.json records (the cell then has no interval: neither score is to be trusted)."""
    if row.get("status") != "complete" or not isinstance(row.get("result_dir"), str):
        return None, None
    recorded = row.get("overall_score")
    cell = load_cell(row["result_dir"])
    if cell is None or not isinstance(recorded, (int, float)):
        return None, None
    if math.isclose(cell.overall, recorded, rel_tol=1e-6, abs_tol=1e-9):
        return cell, None
    note = (
        f"metrics.json records overall_score {recorded:.6g} but its rows (raw_results.csv) "
        f"score {cell.overall:.6g}: no confidence interval"
    )
    return None, note


def add_intervals(
    table: pd.DataFrame, resamples: int = stats.RESAMPLES, seed: int = stats.SEED
) -> pd.DataFrame:
    """``table`` (the per-cell results table) with :data:`INTERVAL_COLUMNS` added."""
    out = table.copy()
    for column in INTERVAL_COLUMNS:
        out[column] = pd.Series(np.nan, index=table.index, dtype="float64")
    if table.empty:
        return out
    records: list[dict[str, Any]] = [
        {str(k): v for k, v in row.items()} for row in table.to_dict("records")
    ]
    checked = [checked_cell(row) for row in records]
    cells = [cell for cell, _ in checked]
    _add_notes(out, [note for _, note in checked])
    dense = {
        _key(row): cell
        for row, cell in zip(records, cells, strict=True)
        if row["sparse_config"] == DENSE and cell is not None
    }
    for index, row, cell in zip(table.index, records, cells, strict=True):
        if cell is None:
            continue
        interval = cell_interval(cell, resamples, seed)
        out.loc[index, [CI_LOW, CI_HIGH]] = [interval.low, interval.high]
        for column, value in task_intervals(cell, row, resamples, seed).items():
            out.loc[index, column] = value
        baseline = dense.get(_key(row))
        if baseline is None or row["sparse_config"] == DENSE:
            continue
        delta = paired_interval(cell, baseline, resamples, seed)
        if delta is not None:
            out.loc[index, [DELTA, DELTA_LOW, DELTA_HIGH]] = [delta.estimate, delta.low, delta.high]
    return out


def _add_notes(table: pd.DataFrame, notes: list[str | None]) -> None:
    """Append each row's note (if any) to its ``note`` column (in place)."""
    if not any(notes):
        return
    if NOTE not in table.columns:
        table[NOTE] = pd.Series(None, index=table.index, dtype=object)
    table[NOTE] = table[NOTE].astype(object)
    for index, note in zip(table.index, notes, strict=True):
        if note:
            current = table.at[index, NOTE]
            has = isinstance(current, str) and bool(current)
            table.at[index, NOTE] = f"{current!s}; {note}" if has else note
