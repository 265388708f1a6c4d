"""The results table of a results tree: one row per cell, rebuilt from the files alone.

``build_results_table(base_dir)`` walks ``<base>/<model>/<config>/<cell>/`` (cells under a
``stale/`` folder, and those of another run nested deeper in the tree, are left out;
:func:`results_dirs` lists the runs under a folder) and reads each cell's config.json (its
resolved config and execution record), metrics.json, when present micro_metrics.jsonl for the
mean density, and predictions.jsonl (once per cell) for the agreement of a sparse config's
answers with the dense config's. ``write_results_csv(base_dir)`` writes it to
``<base>/results.csv``. Nothing is run. What the table cannot show in full (a cell without
its config.json, a corrupt cell, NaN events, a cell without events) is said in its ``note``
column (see result_notes.py).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub.cell_store import (
    COMPLETE,
    CONFIG_FILE,
    CORRUPT,
    METRICS_FILE,
    MICRO_METRICS_FILE,
    PREDICTIONS_FILE,
    STALE,
    STALE_DIR,
    cell_status,
    read_json,
    read_predictions,
    read_resources,
)
from sparse_attention_hub.cell_store.atomic import write_atomic
from sparse_attention_hub.executor.resources import RESOURCE_COLUMNS
from sparse_attention_hub.executor.result_notes import (
    NOTE_COLUMN,
    add_note,
    folder_row,
    name_from_siblings,
    note_missing_events,
    orphan_cells,
    skipped_events_note,
)

log = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
DENSITY_METRIC = "research_attention_density"
OUTPUT_ERROR_METRIC = "research_attention_output_error"
COMPRESSION_METRIC = "eviction_compression_ratio"  # maskers.eviction.RATIO_METRIC
PREFILL_DENSITY_METRIC = "prefill_density"
MEAN_COLUMNS = {
    DENSITY_METRIC: "mean_density",
    COMPRESSION_METRIC: "mean_compression_ratio",
    OUTPUT_ERROR_METRIC: "mean_output_error",
    PREFILL_DENSITY_METRIC: "mean_prefill_density",
}
CELL_DEPTH = 3  # a cell is <results dir>/<model>/<config>/<benchmark[_subset]>
DENSE_CONFIG = "dense"  # the executor's name for the model's own attention: the baseline
AGREEMENT_COLUMN = "dense_agreement"
BASE_COLUMNS = [
    "model",
    "sparse_config",
    "benchmark",
    "subset",
    "status",
    "overall_score",
    "mean_density",
    "mean_prefill_density",
    "mean_compression_ratio",
    "mean_output_error",
    AGREEMENT_COLUMN,
    "seconds",
    *RESOURCE_COLUMNS,
    "error_category",
    NOTE_COLUMN,
    "result_dir",
]


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
    """Means of the logged density, realized eviction ratio and output error of a cell (None
    where none was logged)."""
    return logged_means(cell)[0]


def logged_means(cell: Path) -> tuple[dict[str, float | None], dict[str, tuple[int, int]]]:
    """The means of :func:`mean_metrics`, and per metric ``(left out, of all)``: the events
    whose value is NaN or not a number, which the means leave out."""
    sums = {name: [0.0, 0] for name in MEAN_COLUMNS}
    seen = dict.fromkeys(MEAN_COLUMNS, 0)
    path = cell / MICRO_METRICS_FILE
    if path.is_file():
        with open(path, encoding="utf-8", errors="replace") as handle:  # damage: skipped
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                metric = record.get("metric") if isinstance(record, dict) else None
                if metric not in sums:
                    continue
                seen[metric] += 1
                number = _number(record.get("value"))
                if number is not None:
                    sums[metric][0] += number
                    sums[metric][1] += 1
    means = {
        MEAN_COLUMNS[m]: (total / count if count else None) for m, (total, count) in sums.items()
    }
    return means, {m: (seen[m] - int(sums[m][1]), seen[m]) for m in MEAN_COLUMNS}


def _resource_columns(cell: Path | None) -> dict[str, float | None]:
    """The resource figures of a complete cell's resources.json (None where absent)."""
    figures = (read_resources(cell) or {}) if cell is not None else {}
    return {name: _number(figures.get(name)) for name in RESOURCE_COLUMNS}


def _corrupt_row(cell: Path) -> dict[str, Any]:
    """The row of a cell whose config.json cannot be read: named after its folders."""
    reason = f"{cell / CONFIG_FILE} is not a valid JSON object"
    log.warning("%s: the cell is listed as corrupt", reason)
    return folder_row(cell, CORRUPT, reason)


def _orphan_row(cell: Path) -> dict[str, Any]:
    """The row of a cell whose results remain but whose config.json is gone."""
    state = cell_status(cell)
    note = f"{state.reason}: the next run moves its files to stale/ and runs it again"
    log.warning("%s", note)
    return folder_row(cell, state.status, note)


def cell_row(cell: Path) -> dict[str, Any] | None:
    """The results row of one cell directory, or None if it is not an executor cell.

    The status is :func:`sparse_attention_hub.cell_store.cell_status`'s word; a score is
    shown only for a complete cell (a corrupt metrics.json is not trusted).
    """
    config = read_json(cell / CONFIG_FILE)
    if config is None:
        return _corrupt_row(cell)
    if not isinstance(config.get("resolved_config"), dict):
        return None
    resolved = config["resolved_config"]
    execution = config.get("execution") or {}
    state = cell_status(cell)
    if state.status == CORRUPT:
        log.warning("%s: %s", cell, state.reason)
    metrics = (read_json(cell / METRICS_FILE) or {}) if state.status == COMPLETE else {}
    means, skipped = logged_means(cell)
    row: dict[str, Any] = {
        "model": resolved.get("model") or resolved.get("model_name"),
        "sparse_config": resolved.get("sparse_config_name"),
        "benchmark": resolved.get("benchmark_name"),
        "subset": resolved.get("subset"),
        "status": state.status,
        "overall_score": _number(metrics.get("overall_score")),
        **means,
        "seconds": _number(execution.get("seconds")),
        **_resource_columns(cell if state.status == COMPLETE else None),
        "error_category": execution.get("category"),
        "result_dir": str(cell),
    }
    row.update(_task_columns(metrics))
    if state.status == CORRUPT:
        add_note(row, state.reason)
    note = skipped_events_note(skipped)
    if note is not None:
        add_note(row, note)
    return row


def _answers(cell: Path) -> dict[int, Any]:
    """Row id -> predicted answer from a cell's predictions.jsonl (read only; {} if unreadable)."""
    try:
        records = read_predictions(cell / PREDICTIONS_FILE, repair=False)
    except (OSError, ValueError) as exc:
        log.warning("%s: predictions not readable, no dense agreement (%s)", cell, exc)
        return {}
    return {
        record["row_id"]: record["predicted_answer"]
        for record in records
        if isinstance(record, dict)
        and isinstance(record.get("row_id"), int)
        and "predicted_answer" in record
    }


def agreement(answers: dict[int, Any], dense: dict[int, Any]) -> float | None:
    """Fraction of the rows answered in both whose answers are identical; None if none are."""
    common = answers.keys() & dense.keys()
    if not common:
        return None
    return sum(answers[row] == dense[row] for row in common) / len(common)


def _benchmark_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["model"], row["benchmark"], row["subset"]


def add_dense_agreement(cells: list[tuple[Path, dict[str, Any]]]) -> None:
    """Set ``dense_agreement`` on each row: its answers' agreement with the complete dense cell
    of the same model, benchmark and subset (None without one, and on dense rows themselves).

    Only cells that have such a dense cell are read, each once.
    """
    dense_cells = {
        _benchmark_key(row): cell
        for cell, row in reversed(cells)
        if row["sparse_config"] == DENSE_CONFIG and row["status"] == COMPLETE
    }
    dense_answers = {key: _answers(cell) for key, cell in dense_cells.items()}
    for cell, row in cells:
        dense = dense_answers.get(_benchmark_key(row))
        is_sparse = row["sparse_config"] != DENSE_CONFIG
        ours = is_sparse and row["status"] != STALE  # a stale cell's answers are of no config
        row[AGREEMENT_COLUMN] = agreement(_answers(cell), dense) if ours and dense else None


def _walk_cells(base: Path) -> list[Path]:
    """Every folder under ``base`` (itself included) with a config.json, not under stale/."""
    cells = []
    for root, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d != STALE_DIR)
        if CONFIG_FILE in files:
            cells.append(Path(root))
    return cells


def results_dir_of(cell: Path, base: Path) -> Path:
    """The results directory of a cell found under ``base``: the folder ``CELL_DEPTH`` levels
    above it (``<results dir>/<model>/<config>/<benchmark[_subset]>``), or ``base`` when the
    cell lies fewer levels below ``base`` (``base`` is then a model or config folder of a run)."""
    parts = cell.relative_to(base).parts
    return base.joinpath(*parts[:-CELL_DEPTH]) if len(parts) > CELL_DEPTH else base


def _is_cell(folder: Path) -> bool:
    """An executor cell: its config.json has a resolved config, or is unreadable (corrupt)."""
    config = read_json(folder / CONFIG_FILE)
    return config is None or isinstance(config.get("resolved_config"), dict)


def results_dirs(base_dir: str | os.PathLike[str]) -> list[Path]:
    """The results directories (one per run) whose cells lie under ``base_dir``, sorted.

    ``[base_dir]`` for a run's own folder (or a folder inside one); each run for a folder of
    runs (``runs/`` holding ``runs/a/<model>/...`` and ``runs/b/<model>/...``); a run nested
    in another is its own. [] when no cell lies under ``base_dir``.
    """
    base = Path(base_dir)
    return sorted({results_dir_of(c, base) for c in _walk_cells(base) if _is_cell(c)})


def _cell_dirs(base: Path) -> list[Path]:
    """The cells of the run ``base`` (not those of a run nested in it)."""
    return [cell for cell in _walk_cells(base) if results_dir_of(cell, base) == base]


def build_results_table(base_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per executor cell of the run ``base_dir``, sorted by model, config, benchmark,
    subset. The cells of a run nested in it are not its own (see :func:`results_dirs`).

    Columns: model, sparse_config, benchmark, subset, status (a word of
    ``cell_store.STATUSES``), overall_score (complete cells only), one ``score.<task>`` column per task score found, then
    mean_density, mean_output_error (means of the logged micro metrics), dense_agreement
    (fraction of the rows answered in both this cell and the complete ``dense`` cell of the same
    model, benchmark and subset whose predicted answers are identical; empty on dense rows and
    where there is no such cell or row), seconds, the resource figures of
    ``executor.resources.RESOURCE_COLUMNS`` (complete cells with a resources.json),
    error_category, note (why a value is missing or was computed without some of its data,
    see ``result_notes``; empty when nothing is), result_dir. A cell folder whose
    config.json is gone while its results remain is listed too (``stale``).
    """
    base = Path(base_dir)
    if not base.is_dir():
        raise FileNotFoundError(f"results directory {str(base)!r} does not exist")
    cells = [(cell, row) for cell in _cell_dirs(base) if (row := cell_row(cell)) is not None]
    cells += [(cell, _orphan_row(cell)) for cell in orphan_cells(base)]
    name_from_siblings([row for _, row in cells])
    note_missing_events([row for _, row in cells])
    add_dense_agreement(cells)
    frame = pd.DataFrame([row for _, row in cells])
    for column in BASE_COLUMNS:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=object)
    frame[AGREEMENT_COLUMN] = pd.to_numeric(frame[AGREEMENT_COLUMN]).astype("float64")
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
    write_atomic(target, lambda handle: frame.to_csv(handle, index=False))
    return target
