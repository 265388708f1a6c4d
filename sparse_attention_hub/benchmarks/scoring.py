"""Scoring helpers shared by benchmarks: RULER's string matching and per-task aggregation.

RULER's metrics (``scripts/eval/synthetic/constants.py`` of NVIDIA/RULER), per sample:

- ``string_match_all``: the fraction of the references found in the prediction,
- ``string_match_part``: 1 if any reference is found, else 0,

where "found" is a case-insensitive substring test; a task's score is the mean x 100, rounded to
2 decimals. Predictions are first post-processed as RULER does: strip, replace control
characters (\\x00-\\x1f) by newlines, strip again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd

_CONTROL_CHARS = re.compile(r"[\x00-\x1f]")


def ruler_postprocess(prediction: Any) -> str:
    """RULER's postprocess_pred: strip, control characters to newlines, strip."""
    text = (
        ""
        if prediction is None or (isinstance(prediction, float) and pd.isna(prediction))
        else str(prediction)
    )
    return _CONTROL_CHARS.sub("\n", text.strip()).strip()


def as_answer_list(answer: Any) -> list[str]:
    """A label cell as a list of gold strings (a single str or number: a one-element list;
    None or NaN: empty)."""
    if isinstance(answer, str):
        return [answer]
    if answer is None or (isinstance(answer, float) and pd.isna(answer)):
        return []
    if isinstance(answer, (int, float)) or getattr(answer, "ndim", 1) == 0:
        return [str(answer)]  # a bare number (e.g. a count read from JSON) is one gold
    return [str(a) for a in answer]


def match_all_sample(prediction: str, references: Sequence[str]) -> float:
    """Fraction of ``references`` contained (case-insensitively) in ``prediction``."""
    if not references:
        raise ValueError("string_match_all needs at least one reference")
    lowered = prediction.lower()
    return sum(1.0 if r.lower() in lowered else 0.0 for r in references) / len(references)


def match_part_sample(prediction: str, references: Sequence[str]) -> float:
    """1.0 if any of ``references`` is contained (case-insensitively) in ``prediction``."""
    if not references:
        raise ValueError("string_match_part needs at least one reference")
    lowered = prediction.lower()
    return max(1.0 if r.lower() in lowered else 0.0 for r in references)


def string_match_all(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """RULER string_match_all over a task: mean fraction of references found, x100, 2 decimals."""
    if not predictions:
        raise ValueError("string_match_all needs at least one prediction")
    scores = [match_all_sample(p, r) for p, r in zip(predictions, references, strict=True)]
    return round(sum(scores) / len(scores) * 100, 2)


def string_match_part(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """RULER string_match_part over a task: share of samples with any reference found, x100."""
    if not predictions:
        raise ValueError("string_match_part needs at least one prediction")
    scores = [match_part_sample(p, r) for p, r in zip(predictions, references, strict=True)]
    return round(sum(scores) / len(scores) * 100, 2)


def score_by_task(
    results_df: pd.DataFrame,
    metric_for_task: Callable[[str], Callable[[Sequence[str], Sequence[Sequence[str]]], float]],
    answer_column: str = "answer",
    task_column: str = "task",
) -> dict[str, float]:
    """``{task: metric(predictions, references)}`` with RULER post-processing, tasks sorted.

    A row without any gold answer (None, NaN, empty list) is a ValueError naming it.
    """
    scores: dict[str, float] = {}
    for task, part in results_df.groupby(task_column, sort=True):
        predictions = [ruler_postprocess(p) for p in part["predicted_answer"]]
        references = [as_answer_list(a) for a in part[answer_column]]
        ids = part.get("row_id", part.index)
        empty = [i for i, refs in zip(ids, references, strict=True) if not refs]
        if empty:
            raise ValueError(
                f"task {task!r}: row(s) {empty[:10]} have no gold answer in column "
                f"{answer_column!r}; fix the data (every row needs at least one answer)"
            )
        scores[str(task)] = float(metric_for_task(str(task))(predictions, references))
    return scores


def mean_score(scores: Iterable[float | None]) -> float | None:
    """Mean of the non-None scores rounded to 2 decimals, or None when there are none."""
    values = [float(s) for s in scores if s is not None]
    return round(sum(values) / len(values), 2) if values else None
