"""The scored rows of a finished cell and its benchmark's scorer, for confidence intervals.

A complete cell holds ``raw_results.csv`` (the rows its benchmark scored, list-like cells as
JSON text) and ``config.json`` (the benchmark name, subset and kwargs). :func:`load_cell`
rebuilds the frame and the benchmark, and scores each row alone: when the overall score is the
mean of those per-row scores, or the mean over tasks of their mean, a bootstrap resamples them
(fast); otherwise (an F1 over the set, say) each resample is rescored by the benchmark's own
``post_run_evaluate``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparse_attention_hub.cell_store import CONFIG_FILE, RAW_RESULTS_FILE, read_json

log = logging.getLogger(__name__)

# Free text the model or the file wrote: never decoded from JSON.
TEXT_COLUMNS = ("predicted_answer", "first_answer", "question", "answer_prefix", "task")


@dataclass
class CellScores:
    """One cell's scored rows: ``frame`` (n rows, with ``row_id``), ``row_ids`` (n,), the
    overall score, ``per_row`` (n,) when the overall score is their mean or the mean of their
    task means (else None), ``groups`` (n,) the task index of each row in the latter case, and
    the benchmark whose ``post_run_evaluate`` scores any subset of the rows."""

    frame: pd.DataFrame
    row_ids: np.ndarray
    overall: float
    per_row: np.ndarray | None
    benchmark: Any
    groups: np.ndarray | None = None

    @property
    def is_row_mean(self) -> bool:
        """True when the overall score is the plain mean of ``per_row``."""
        return self.per_row is not None and self.groups is None

    def score(self, positions: np.ndarray) -> float:
        """The benchmark's overall score on the rows at ``positions`` (repeats allowed); NaN
        when it has none."""
        if self.per_row is None:
            return _overall(self.benchmark, self.frame.iloc[positions].reset_index(drop=True))
        if self.groups is None:
            return float(self.per_row[positions].mean())
        return task_mean(self.per_row[positions], self.groups[positions])


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def read_scored_rows(cell: Path) -> pd.DataFrame:
    """raw_results.csv with its JSON cells (gold answers, classes) decoded again.

    Lines end at ``\n`` only: a model's answer may hold a ``\r``, which the CSV writer does
    not quote (it is not in its line terminator) and pandas' default reader would take for a
    line end."""
    frame = pd.read_csv(
        cell / RAW_RESULTS_FILE, keep_default_na=False, na_values=[""], lineterminator="\n"
    )
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]) and column not in TEXT_COLUMNS:
            frame[column] = [_decode(v) for v in frame[column]]
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = ["" if _missing(v) else str(v) for v in frame[column]]
    return frame


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _overall(benchmark: Any, frame: pd.DataFrame) -> float:
    score = benchmark.post_run_evaluate(frame).get("overall_score")
    if isinstance(score, bool) or not isinstance(score, (int, float)):
        return math.nan
    return float(score)


# Scorers round their totals (``mean_score``: 2 decimals): a mean of per-row scores within
# this distance of the total is taken as the total.
ROUNDING = 0.006


def task_mean(scores: np.ndarray, groups: np.ndarray) -> float:
    """Mean over the groups present of the mean score in each: scores, groups (n,)."""
    counts = np.bincount(groups)
    sums = np.bincount(groups, weights=scores)
    present = counts > 0
    return float((sums[present] / counts[present]).mean())


def _close(value: float, overall: float) -> bool:
    return math.isclose(value, overall, rel_tol=1e-9, abs_tol=ROUNDING)


def _per_row(
    benchmark: Any, frame: pd.DataFrame, overall: float
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(scores, groups)``: each row scored alone (n,) and, when the overall score is the
    mean of task means, each row's task index (n,); ``(None, None)`` when neither mean gives
    the overall score (up to the scorer's rounding)."""
    scores = np.array(
        [_overall(benchmark, frame.iloc[[i]].reset_index(drop=True)) for i in range(len(frame))]
    )
    if np.isnan(scores).any():
        return None, None
    if _close(float(scores.mean()), overall):
        return scores, None
    if "task" in frame.columns:
        groups = pd.factorize(frame["task"].astype(str))[0].astype(np.int64)
        if _close(task_mean(scores, groups), overall):
            return scores, groups
    return None, None


def load_cell(cell: str | Path) -> CellScores | None:
    """The scored rows of a complete cell, or None (with a debug note) when its rows, its
    benchmark or its scorer cannot be had again."""
    from sparse_attention_hub.benchmarks import create_benchmark_instance

    cell = Path(cell)
    config = read_json(cell / CONFIG_FILE) or {}
    resolved = config.get("resolved_config") or {}
    try:
        frame = read_scored_rows(cell)
        subset = resolved.get("subset")
        benchmark = create_benchmark_instance(
            resolved["benchmark_name"],
            subsets=None if subset is None else [subset],
            **(resolved.get("benchmark_kwargs") or {}),
        )
        overall = _overall(benchmark, frame)
        if frame.empty or "row_id" not in frame.columns or math.isnan(overall):
            return None
        per_row, groups = _per_row(benchmark, frame, overall)
    except Exception as exc:  # a plugin benchmark gone, a scorer that needs more rows, ...
        log.debug("%s: no confidence interval (%s: %s)", cell, type(exc).__name__, exc)
        return None
    row_ids = frame["row_id"].to_numpy(dtype=np.int64)
    return CellScores(frame, row_ids, overall, per_row, benchmark, groups)
