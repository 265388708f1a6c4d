"""A :class:`~sparse_attention_hub.experiment.compare.Comparison` as a table, markdown, CSV or
JSON text.

Table and markdown: one line per matched pair (``score ± half-width`` of each side, then
``Δ B−A [low, high]``, ``*`` where the CI excludes 0, and the rows paired), then the cells
found in one directory only. CSV: one row per cell, matched or not (column ``in``: ``both``,
``a`` or ``b``). JSON: the whole comparison.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pandas as pd

from sparse_attention_hub.experiment.compare import CONFIG, Comparison
from sparse_attention_hub.experiment.report import FORMATS, format_grid

DELTA_NOTE = (
    "Δ: B minus A on the rows both scored (matched by row id) [paired bootstrap 95% CI]; "
    "* the CI excludes 0; n: rows paired"
)
SCORE_NOTE = "score ± h: overall score and the half-width h of its 95% bootstrap CI over samples"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _score_text(row: dict[str, Any], side: str) -> str:
    score = row[f"score_{side}"]
    if score is None:
        return row[f"status_{side}"] or "-"
    low, high = row[f"ci_low_{side}"], row[f"ci_high_{side}"]
    if low is None or high is None:
        return f"{score:.4g}"
    return f"{score:.4g} ± {(high - low) / 2:.2g}"


def _delta_text(row: dict[str, Any]) -> str:
    if row["delta"] is None:
        return "-"
    if row["delta_low"] is None:
        return f"{row['delta']:+.3g} (no CI)"
    mark = "*" if row["excludes_zero"] else ""
    return f"{row['delta']:+.3g} [{row['delta_low']:+.3g}, {row['delta_high']:+.3g}]{mark}"


def _grid(comparison: Comparison, markdown: bool) -> str:
    by_model = comparison.match != CONFIG
    keys = (["model"] if by_model else []) + ["config", "benchmark"]
    headers = [*keys, "A", "B", "Δ B−A", "n"]
    lines = [
        [
            *([row["model_a"]] if by_model else []),
            row["config"],
            row["benchmark"],
            _score_text(row, "a"),
            _score_text(row, "b"),
            _delta_text(row),
            _number(row["paired_rows"]),
        ]
        for row in comparison.common
    ]
    return format_grid(headers, lines, numeric_from=len(keys), markdown=markdown)


def _unmatched_lines(name: str, directory: str, cells: list[dict[str, Any]]) -> list[str]:
    if not cells:
        return []
    head = f"only in {name} ({directory}): {len(cells)} cell(s)"
    return [head] + [
        f"  {c['model']} / {c['config']} / {c['benchmark']} "
        f"({_number(c['score']) if c['score'] is not None else c['status']})"
        for c in cells
    ]


def _note_lines(comparison: Comparison) -> list[str]:
    """One line per side of a matched pair that has a score but no CI, saying why."""
    lines = []
    for row in comparison.common:
        for side in ("a", "b"):
            note = row.get(f"note_{side}")
            if note:
                cell = f"{row[f'model_{side}']} / {row['config']} / {row['benchmark']}"
                lines.append(f"  {side.upper()} {cell}: {note}")
    return ["no CI:", *lines] if lines else []


def _text(comparison: Comparison, markdown: bool) -> str:
    header = [
        f"A: {comparison.dir_a} ({', '.join(comparison.models_a)})",
        f"B: {comparison.dir_b} ({', '.join(comparison.models_b)})",
        comparison.note,
        "",
    ]
    tail = [
        *_note_lines(comparison),
        *_unmatched_lines("A", comparison.dir_a, comparison.only_a),
        *_unmatched_lines("B", comparison.dir_b, comparison.only_b),
    ]
    blocks = ["\n".join(header) + _grid(comparison, markdown)]
    if tail:
        blocks.append("\n".join(tail))
    if not markdown:
        blocks.append(f"{SCORE_NOTE}\n{DELTA_NOTE}")
    return "\n\n".join(blocks)


def _csv(comparison: Comparison) -> str:
    rows = [{"in": "both", **row} for row in comparison.common]
    for side, cells in (("a", comparison.only_a), ("b", comparison.only_b)):
        rows += [
            {
                "in": side,
                "config": c["config"],
                "benchmark": c["benchmark"],
                f"model_{side}": c["model"],
                f"status_{side}": c["status"],
                f"score_{side}": c["score"],
            }
            for c in cells
        ]
    columns = ["in", *comparison.common[0]] if comparison.common else None
    return pd.DataFrame(rows, columns=columns).to_csv(index=False).rstrip("\n")


def render_comparison(comparison: Comparison, fmt: str = "table") -> str:
    """The comparison as ``table``, ``markdown``, ``csv`` or ``json`` text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(dataclasses.asdict(comparison), indent=2)
    if fmt == "csv":
        return _csv(comparison)
    return _text(comparison, markdown=fmt == "markdown")
