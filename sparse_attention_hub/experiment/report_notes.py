"""The marks of a report: cells whose values are missing or were computed without some of
their data, from the ``note`` column of the per-cell table (executor/result_notes.py and
cell_stats.py write it).

In the ``table`` and ``markdown`` formats the cell's value (its score, or its status word)
carries :data:`MARK`, and one line under the table says which cell and why; in ``json`` and
``csv`` each such row has a ``notes`` entry (``{benchmark column: why}``; in CSV the text
``column: why; ...``). Rows without notes have none; a report without notes has no column.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

NOTE = "note"  # the per-cell table's column
NOTES_COL = "notes"  # the report's column
MARK = "†"
NOTES_HEAD = f"{MARK} a value missing or computed without some of its data; per cell, why:"


def cell_label(benchmark: str, subset: Any) -> str:
    """``benchmark`` or ``benchmark_subset`` (the cell folder name)."""
    if subset is None or (isinstance(subset, float) and math.isnan(subset)) or subset == "":
        return str(benchmark)
    return f"{benchmark}_{subset}"


def cell_notes(cells: pd.DataFrame) -> dict[tuple[str, str], dict[str, str]]:
    """``{(model, config): {benchmark column: note}}`` over the cells with a note."""
    if cells.empty or NOTE not in cells.columns:
        return {}
    out: dict[tuple[str, str], dict[str, str]] = {}
    for record in cells.to_dict("records"):
        note = record.get(NOTE)
        if isinstance(note, str) and note.strip():
            label = cell_label(record["benchmark"], record.get("subset"))
            out.setdefault((str(record["model"]), str(record["sparse_config"])), {})[label] = note
    return out


def with_notes(
    columns: list[str], rows: list[dict[str, Any]], cells: pd.DataFrame
) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` with a ``notes`` column when some cell of ``cells`` has a note."""
    notes = cell_notes(cells)
    if not notes:
        return columns, rows
    out = [{**row, NOTES_COL: notes.get((str(row["model"]), str(row["config"])))} for row in rows]
    return [*columns, NOTES_COL], out


def csv_text(notes: Any) -> str | None:
    """A row's notes as one CSV field: ``column: why; column: why``."""
    if not isinstance(notes, dict) or not notes:
        return None
    return "; ".join(f"{label}: {note}" for label, note in notes.items())


def marked(row: dict[str, Any], label: str, text: str) -> str:
    """``text`` with :data:`MARK` when the row has a note on the column ``label``."""
    notes = row.get(NOTES_COL)
    return f"{text}{MARK}" if isinstance(notes, dict) and label in notes else text


def note_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The lines under a table: the heading, then ``† model config column: why`` per cell."""
    lines = [
        f"{MARK} {row['model']} {row['config']} {label}: {note}"
        for row in rows
        if isinstance(row.get(NOTES_COL), dict)
        for label, note in row[NOTES_COL].items()
    ]
    return [NOTES_HEAD, *lines] if lines else []
