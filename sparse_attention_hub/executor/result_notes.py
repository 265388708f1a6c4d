"""The gaps of a results table, each said in the cell's ``note`` (a column of results.csv).

A report must not hide a cell, nor a value computed without some of its data:

- a cell folder whose config.json is gone while its results remain (:func:`orphan_cells`) is
  listed (its status ``stale``: the next run moves its files aside and runs it again), named
  after its folders, with the model, config and benchmark of its sibling cells where they
  tell them (:func:`name_from_siblings`);
- a corrupt cell says why (the status function's reason);
- metric events whose value is NaN (or not a number) are left out of the means, and counted;
- a complete cell without density or output-error events, in a config whose other complete
  cells have them (its micro_metrics.jsonl deleted or emptied), is noted
  (:func:`note_missing_events`): the row's density comes from its other cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store import (
    COMPLETE,
    CONFIG_FILE,
    METRICS_FILE,
    PREDICTIONS_FILE,
    STALE_DIR,
)

NOTE_COLUMN = "note"
BY_FOLDER = "_named_by_folder"  # a row named after its folders, renamed from its siblings
EVENT_COLUMNS = ("mean_density", "mean_output_error")


def add_note(row: dict[str, Any], note: str) -> None:
    """Append ``note`` to the row's ``note`` (entries joined by ``; ``)."""
    current = row.get(NOTE_COLUMN)
    row[NOTE_COLUMN] = f"{current}; {note}" if isinstance(current, str) and current else note


def _folders(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and p.name != STALE_DIR)


def orphan_cells(base: Path) -> list[Path]:
    """Cell folders of the run ``base`` (``<model>/<config>/<benchmark[_subset]>``) that hold
    results (predictions.jsonl or metrics.json) but no config.json."""
    return [
        leaf
        for model in _folders(base)
        for config in _folders(model)
        for leaf in _folders(config)
        if not (leaf / CONFIG_FILE).exists()
        and ((leaf / PREDICTIONS_FILE).is_file() or (leaf / METRICS_FILE).is_file())
    ]


def folder_row(cell: Path, status: str, note: str) -> dict[str, Any]:
    """The row of a cell whose config.json cannot be read: named after its folders."""
    return {
        "model": cell.parent.parent.name,
        "sparse_config": cell.parent.name,
        "benchmark": cell.name,
        "subset": None,
        "status": status,
        "overall_score": None,
        NOTE_COLUMN: note,
        "result_dir": str(cell),
        BY_FOLDER: True,
    }


def name_from_siblings(rows: list[dict[str, Any]]) -> None:
    """Give the rows named after their folders the model, config, benchmark and subset that
    the cells of the same folders say (in place), so that they land in the right row and
    column of the report."""
    models: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    leaves: dict[str, tuple[Any, Any]] = {}
    for row in rows:
        if row.get(BY_FOLDER):
            continue
        cell = Path(row["result_dir"])
        models.setdefault(str(cell.parent.parent), row["model"])
        configs.setdefault(str(cell.parent), row["sparse_config"])
        leaves.setdefault(cell.name, (row["benchmark"], row["subset"]))
    for row in rows:
        if not row.pop(BY_FOLDER, False):
            continue
        cell = Path(row["result_dir"])
        row["model"] = models.get(str(cell.parent.parent), row["model"])
        row["sparse_config"] = configs.get(str(cell.parent), row["sparse_config"])
        row["benchmark"], row["subset"] = leaves.get(cell.name, (row["benchmark"], None))


def _has_events(row: dict[str, Any]) -> bool:
    return any(row.get(column) is not None for column in EVENT_COLUMNS)


def note_missing_events(rows: list[dict[str, Any]]) -> None:
    """Note the complete cells without events in a config whose other complete cells have
    some (in place)."""
    logged = {
        (row["model"], row["sparse_config"])
        for row in rows
        if row["status"] == COMPLETE and _has_events(row)
    }
    for row in rows:
        key = (row["model"], row["sparse_config"])
        if row["status"] == COMPLETE and key in logged and not _has_events(row):
            add_note(
                row,
                "no density or output-error events (micro_metrics.jsonl missing or empty): "
                "the row's density and output_error come from its other cells",
            )


def skipped_events_note(skipped: dict[str, tuple[int, int]]) -> str | None:
    """The note of events left out of the means: ``{metric: (left out, of all)}``."""
    parts = [f"{bad} of {total} {metric} events" for metric, (bad, total) in skipped.items() if bad]
    if not parts:
        return None
    return f"{' and '.join(parts)} are NaN or not a number: left out of the mean"
