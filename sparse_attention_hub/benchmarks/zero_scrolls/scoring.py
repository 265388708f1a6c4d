"""ZeroSCROLLS's per-task aggregation: each row the best over its references, the mean x100."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks.zero_scrolls.metrics import (
    ROUGE_KEYS,
    accuracy_score,
    concordance_index_score,
    exp_similarity_score,
    f1_score,
    rouge_scores,
    sentence_splitter_reason,
)
from sparse_attention_hub.benchmarks.zero_scrolls.tasks import TASK_METRIC

_ROW_METRICS: dict[str, Callable[[str, str], float]] = {
    "f1": f1_score,
    "accuracy": accuracy_score,
    "exp_similarity": exp_similarity_score,
    "concordance_index": concordance_index_score,
}


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _references(value: Any) -> list[str]:
    refs = [value] if isinstance(value, str) else list(value if value is not None else [])
    if not refs:
        raise ValueError("a ZeroSCROLLS validation row has no reference output")
    return [str(r) for r in refs]


def _rouge(
    predictions: Sequence[str], references: Sequence[list[str]]
) -> tuple[dict[str, float], dict[str, str]]:
    reason = sentence_splitter_reason()
    per_key: dict[str, list[float]] = {}
    for pred, refs in zip(predictions, references, strict=True):
        scores = [rouge_scores(pred, ref, with_lsum=reason is None) for ref in refs]
        for key in scores[0]:
            per_key.setdefault(key, []).append(max(s[key] for s in scores))
    means = {f"rouge/{k}": 100 * sum(v) / len(v) for k, v in per_key.items()}
    product = 1.0
    for key in ROUGE_KEYS:
        product *= means[f"rouge/{key}"]
    means["rouge/geometric_mean"] = product ** (1 / 3)
    unavailable = {"rouge/rougeLsum": reason} if reason is not None else {}
    return {k: round(v, 2) for k, v in means.items()}, unavailable


def _row_names(frame: pd.DataFrame) -> list[str]:
    """Each row's ``id`` (the dataset's), or its index label where the frame has no ids."""
    if "id" in frame.columns:
        return [f"id {str(i)!r}" for i in frame["id"]]
    return [f"row {i!r}" for i in frame.index]


def _best_over_references(
    row_metric: Callable[[str, str], float], task: str, row: str, pred: str, refs: list[str]
) -> float:
    """The row's best value over its references; a malformed gold names the task and row."""
    try:
        return max(row_metric(pred, ref) for ref in refs)
    except ValueError as error:
        raise ValueError(f"zero_scrolls {task} {row}: {error}") from error


def score_task(task: str, frame: pd.DataFrame) -> dict[str, Any]:
    """{"score", "metrics", "unavailable"} of one task's validation rows."""
    predictions = [_text(p) for p in frame["predicted_answer"]]
    references = [_references(r) for r in frame["outputs"]]
    metric = TASK_METRIC[task]
    if metric.startswith("rouge/"):
        metrics, unavailable = _rouge(predictions, references)
        return {"score": metrics[metric], "metrics": metrics, "unavailable": unavailable}
    row_metric = _ROW_METRICS[metric]
    values = [
        _best_over_references(row_metric, task, row, pred, refs)
        for row, pred, refs in zip(_row_names(frame), predictions, references, strict=True)
    ]
    score = round(100 * sum(values) / len(values), 2)
    return {"score": score, "metrics": {metric: score}, "unavailable": {}}
