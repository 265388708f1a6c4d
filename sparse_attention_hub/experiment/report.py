"""The results table of a study, rendered for a terminal, a paper draft or a script.

Input: the per-cell table (one row per model x config x benchmark x subset, the columns of
``results.csv``). Output: one row per model x sparse config, one column per benchmark[_subset]
holding its overall score, then the row's mean score and, where it was logged, the mean
attention density (and output error), and where a dense baseline ran, the fraction of answers
identical to the dense config's.

>>> print(render_report(cells, "markdown"))     # doctest: +SKIP
| model | config | mock_benchmark | synthetic_ruler_1024 | mean | density |
| ...
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

FORMATS = ("table", "markdown", "csv", "json")

# Columns of the per-cell table (results.csv) this module reads.
MODEL = "model"
CONFIG = "sparse_config"
BENCHMARK = "benchmark"
SUBSET = "subset"
STATUS = "status"
SCORE = "overall_score"
DENSITY = "mean_density"
OUTPUT_ERROR = "mean_output_error"
AGREEMENT = "dense_agreement"
RESULT_DIR = "result_dir"
COMPLETE = "complete"
OUTPUT_ERROR_METRIC = "research_attention_output_error"

# Row labels and summary columns of the report.
ROW_KEYS = ("model", "config")
MEAN_COL = "mean"
DENSITY_COL = "density"
ERROR_COL = "output_error"
AGREEMENT_COL = "agreement"
SUMMARY_SOURCES = ((DENSITY_COL, DENSITY), (ERROR_COL, OUTPUT_ERROR), (AGREEMENT_COL, AGREEMENT))
LEGEND = {
    MEAN_COL: "mean: the row's overall scores averaged over its complete cells",
    DENSITY_COL: "density: mean fraction of keys each query attends to (sparse configs only)",
    ERROR_COL: "output_error: mean relative L2 error of the attention output against dense",
    AGREEMENT_COL: "agreement: fraction of answers identical to the dense config's, per row",
}


def cell_label(benchmark: str, subset: Any) -> str:
    """``benchmark`` or ``benchmark_subset`` (the cell folder name)."""
    if subset is None or (isinstance(subset, float) and math.isnan(subset)) or subset == "":
        return str(benchmark)
    return f"{benchmark}_{subset}"


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None  # NaN/inf: not a score (and not JSON)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def mean_logged(cell_dir: str | Path, metric: str) -> float | None:
    """Mean value of ``metric`` in a cell's micro_metrics.jsonl, or None if never logged."""
    path = Path(cell_dir) / "micro_metrics.jsonl"
    if not path.is_file():
        return None
    total, count = 0.0, 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if metric not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            value = _number(record.get("value")) if isinstance(record, dict) else None
            if value is not None and record.get("metric") == metric:
                total, count = total + value, count + 1
    return total / count if count else None


def with_output_error(cells: pd.DataFrame) -> pd.DataFrame:
    """Add ``mean_output_error`` from each cell's micro metrics when the table lacks it."""
    if cells.empty or OUTPUT_ERROR in cells.columns or RESULT_DIR not in cells.columns:
        return cells
    values = [
        mean_logged(d, OUTPUT_ERROR_METRIC) if isinstance(d, str) else None
        for d in cells[RESULT_DIR]
    ]
    out = cells.copy()
    out[OUTPUT_ERROR] = pd.Series(values, index=cells.index, dtype="float64")
    return out


def order_configs(cells: pd.DataFrame, config_order: list[str] | None) -> pd.DataFrame:
    """Rows grouped by model (in order of first appearance); within a model, configs in
    ``config_order`` first (in that order), the rest after, stably."""
    if cells.empty:
        return cells
    models = {name: i for i, name in enumerate(pd.unique(cells[MODEL]))}
    rank = {name: i for i, name in enumerate(config_order or [])}
    keys = {
        "_model": cells[MODEL].map(models),
        "_rank": cells[CONFIG].map(lambda name: rank.get(name, len(rank))),
    }
    ordered = cells.assign(**keys).sort_values(["_model", "_rank"], kind="stable")
    return ordered.drop(columns=list(keys))


def summarize(cells: pd.DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    """The report as ``(columns, rows)``; each row maps a column to a value.

    Score cells hold a float, or the cell's status (``failed``, ``pending``...) when it has no
    score. ``mean`` averages the row's scores; ``density``/``output_error``/``agreement``
    average the per-cell values (each benchmark weighs the same); all use complete cells only.
    A summary column appears when some cell has a value for it. Rows and columns keep the
    order in which they first appear in ``cells``.
    """
    labels: list[str] = []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    logged = {col: False for col, _ in SUMMARY_SOURCES}
    extra: dict[tuple[str, str], dict[str, list[float | None]]] = {}
    for record in cells.to_dict("records"):
        label = cell_label(record[BENCHMARK], record.get(SUBSET))
        if label not in labels:
            labels.append(label)
        key = (str(record[MODEL]), str(record[CONFIG]))
        row = rows.setdefault(key, {"model": key[0], "config": key[1]})
        score = _number(record.get(SCORE))
        status = str(record.get(STATUS) or "")
        row[label] = score if score is not None and status in ("", COMPLETE) else (status or "-")
        acc = extra.setdefault(key, {col: [] for col in (MEAN_COL, *logged)})
        acc[MEAN_COL].append(row[label] if isinstance(row[label], float) else None)
        for col, source in SUMMARY_SOURCES:
            value = _number(record.get(source))
            logged[col] = logged[col] or value is not None
            acc[col].append(value if status in ("", COMPLETE) else None)
    columns = [*ROW_KEYS, *labels]
    if len(labels) > 1:
        columns.append(MEAN_COL)
    columns += [col for col in logged if logged[col]]
    for key, row in rows.items():
        for col in (MEAN_COL, *logged):
            row[col] = _mean(extra[key][col])
    return columns, [{col: row.get(col, "-") for col in columns} for row in rows.values()]


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def format_grid(
    headers: list[str], rows: list[list[str]], numeric_from: int = 0, markdown: bool = False
) -> str:
    """Aligned text (or a markdown pipe table); columns from ``numeric_from`` on align right."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    numeric = [i >= numeric_from for i in range(len(headers))]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |" if markdown else "  ".join(parts).rstrip()

    if markdown:
        marks = [
            ("-" * (w + 1) + ":") if n else "-" * (w + 2)
            for w, n in zip(widths, numeric, strict=True)
        ]
        rule = "|" + "|".join(marks) + "|"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def render_report(
    cells: pd.DataFrame, fmt: str = "table", config_order: list[str] | None = None
) -> str:
    """Render the per-cell table as ``table``, ``markdown``, ``csv`` or ``json`` text.

    ``config_order`` puts those sparse configs first (e.g. the order of the experiment file).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if cells.empty:
        return "[]" if fmt == "json" else "no result cells found"
    columns, rows = summarize(order_configs(with_output_error(cells), config_order or ["dense"]))
    if fmt == "json":
        clean = [{k: (None if v == "-" else v) for k, v in row.items()} for row in rows]
        return json.dumps(clean, indent=2)
    if fmt == "csv":
        frame = pd.DataFrame(
            [{k: (None if v == "-" else v) for k, v in r.items()} for r in rows], columns=columns
        )
        return frame.to_csv(index=False).rstrip("\n")
    cells_text = [[_text(row[col]) for col in columns] for row in rows]
    grid = format_grid(columns, cells_text, numeric_from=len(ROW_KEYS), markdown=fmt == "markdown")
    notes = [text for col, text in LEGEND.items() if col in columns]
    return grid + "\n" + "\n".join(notes) if fmt == "table" and notes else grid


def status_counts(cells: pd.DataFrame) -> dict[str, int]:
    """``{"complete": 7, "failed": 1, ...}`` over the cells (empty when there is no status)."""
    if cells.empty or STATUS not in cells.columns:
        return {}
    return {str(k): int(v) for k, v in cells[STATUS].fillna("unknown").value_counts().items()}
