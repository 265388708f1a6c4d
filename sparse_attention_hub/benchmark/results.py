"""The results table of a results tree: one row per cell, rebuilt from the files alone.

``build_results_table(base_dir)`` walks ``<base>/<model>/<config>/<cell>/`` (cells under a
``stale/`` folder are left out) and reads each cell's config.json (its resolved config and
execution record), metrics.json and, when present, micro_metrics.jsonl for the mean density.
``write_results_csv(base_dir)`` writes it to ``<base>/results.csv``. Nothing is run.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
DENSITY_METRIC = "research_attention_density"
OUTPUT_ERROR_METRIC = "research_attention_output_error"
MEAN_COLUMNS = {DENSITY_METRIC: "mean_density", OUTPUT_ERROR_METRIC: "mean_output_error"}
BASE_COLUMNS = [
    "model",
    "sparse_config",
    "benchmark",
    "subset",
    "status",
    "overall_score",
    "mean_density",
    "mean_output_error",
    "seconds",
    "error_category",
    "result_dir",
]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _task_columns(metrics: dict[str, Any]) -> dict[str, float]:
    """Per-task scores: ``score.<task>`` (and ``score.<task>.<metric>`` for nested dicts)."""
    columns: dict[str, float] = {}
    task_scores = metrics.get("task_scores")
    if not isinstance(task_scores, dict):
        return columns
    for task, score in sorted(task_scores.items()):
        if isinstance(score, dict):
            for name, value in sorted(score.items()):
                number = _number(value)
                if number is not None:
                    columns[f"score.{task}.{name}"] = number
        else:
            number = _number(score)
            if number is not None:
                columns[f"score.{task}"] = number
    return columns


def mean_metrics(cell: Path) -> dict[str, float | None]:
    """Means of the logged density and output error of a cell (None where none was logged)."""
    sums = {name: [0.0, 0] for name in MEAN_COLUMNS}
    path = cell / "micro_metrics.jsonl"
    if path.is_file():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                metric = record.get("metric") if isinstance(record, dict) else None
                number = _number(record.get("value")) if metric in sums else None
                if metric in sums and number is not None:
                    sums[metric][0] += number
                    sums[metric][1] += 1
    return {
        MEAN_COLUMNS[m]: (total / count if count else None) for m, (total, count) in sums.items()
    }


def _status(cell: Path, config: dict[str, Any]) -> str:
    if (cell / "metrics.json").is_file():
        return "complete"
    execution = config.get("execution") or {}
    status = execution.get("status")
    if (cell / "error.txt").is_file() or status == "failed":
        return "failed"
    if status == "interrupted":
        return "interrupted"
    return "partial"


def cell_row(cell: Path) -> dict[str, Any] | None:
    """The results row of one cell directory, or None if it is not an executor cell."""
    config = _read_json(cell / "config.json")
    if config is None or not isinstance(config.get("resolved_config"), dict):
        return None
    resolved = config["resolved_config"]
    execution = config.get("execution") or {}
    metrics = _read_json(cell / "metrics.json") or {}
    row: dict[str, Any] = {
        "model": resolved.get("model_name"),
        "sparse_config": resolved.get("sparse_config_name"),
        "benchmark": resolved.get("benchmark_name"),
        "subset": resolved.get("subset"),
        "status": _status(cell, config),
        "overall_score": _number(metrics.get("overall_score")),
        **mean_metrics(cell),
        "seconds": _number(execution.get("seconds")),
        "error_category": execution.get("category"),
        "result_dir": str(cell),
    }
    row.update(_task_columns(metrics))
    return row


def _cell_dirs(base: Path) -> list[Path]:
    cells = []
    for root, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d != "stale")
        if "config.json" in files:
            cells.append(Path(root))
    return cells


def build_results_table(base_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per executor cell under ``base_dir``, sorted by model, config, benchmark, subset.

    Columns: model, sparse_config, benchmark, subset, status (complete | failed | interrupted
    | partial), overall_score, one ``score.<task>`` column per task score found, then
    mean_density, mean_output_error (means of the logged micro metrics), seconds,
    error_category, result_dir.
    """
    base = Path(base_dir)
    if not base.is_dir():
        raise FileNotFoundError(f"results directory {str(base)!r} does not exist")
    rows = [row for cell in _cell_dirs(base) if (row := cell_row(cell)) is not None]
    frame = pd.DataFrame(rows)
    for column in BASE_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=object)
    task_columns = sorted(c for c in frame.columns if c not in BASE_COLUMNS)
    frame = frame[BASE_COLUMNS[:6] + task_columns + BASE_COLUMNS[6:]]
    if len(frame):
        frame = frame.sort_values(
            ["model", "sparse_config", "benchmark", "subset"], na_position="first", kind="stable"
        ).reset_index(drop=True)
    return frame


def write_results_csv(base_dir: str | os.PathLike[str]) -> Path:
    """Rebuild ``<base_dir>/results.csv`` from the tree (atomically) and return its path."""
    base = Path(base_dir)
    frame = build_results_table(base)
    target = base / RESULTS_CSV
    tmp = base / f".{RESULTS_CSV}.{os.getpid()}.tmp"
    frame.to_csv(tmp, index=False)
    os.replace(tmp, target)
    return target
