"""The results table of a study, rendered for a terminal, a paper draft or a script.

Input: the per-cell table (one row per model x config x benchmark x subset, the columns of
``results.csv``). Output: one row per model x sparse config, one column per benchmark[_subset]
holding its overall score, then the row's mean score and, where it was logged, the mean
attention density (the realized eviction ratio, the output error), and where a dense baseline
ran, the fraction of answers identical to the dense config's.

>>> print(render_report(cells, "markdown"))     # doctest: +SKIP
| model | config | mock_benchmark | synthetic_ruler_1024 | mean | density |
| ...
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub.experiment import report_notes
from sparse_attention_hub.experiment.report_columns import column_notes, with_extra_columns
from sparse_attention_hub.experiment.report_notes import cell_label as cell_label

FORMATS = ("table", "markdown", "csv", "json")

# Columns of the per-cell table (results.csv) this module reads.
MODEL = "model"
CONFIG = "sparse_config"
BENCHMARK = "benchmark"
SUBSET = "subset"
STATUS = "status"
SCORE = "overall_score"
DENSITY = "mean_density"
COMPRESSION = "mean_compression_ratio"
OUTPUT_ERROR = "mean_output_error"
AGREEMENT = "dense_agreement"
RESULT_DIR = "result_dir"
COMPLETE = "complete"
OUTPUT_ERROR_METRIC = "research_attention_output_error"
# Interval columns (experiment/cell_stats.py) -> the suffix of the report column they fill.
STAT_SOURCES = (
    ("ci_low", "score_ci_low"),
    ("ci_high", "score_ci_high"),
    ("delta", "delta_vs_dense"),
    ("delta_low", "delta_ci_low"),
    ("delta_high", "delta_ci_high"),
)

# Row labels and summary columns of the report.
ROW_KEYS = ("model", "config")
MEAN_COL = "mean"
DENSITY_COL = "density"
COMPRESSION_COL = "compression_ratio"
ERROR_COL = "output_error"
AGREEMENT_COL = "agreement"
PREFILL_DENSITY_COL = "prefill_density"
SUMMARY_SOURCES = (
    (DENSITY_COL, DENSITY),
    (PREFILL_DENSITY_COL, "mean_prefill_density"),
    (COMPRESSION_COL, COMPRESSION),
    (ERROR_COL, OUTPUT_ERROR),
    (AGREEMENT_COL, AGREEMENT),
)
LEGEND = {
    MEAN_COL: "mean: the row's overall scores averaged over its complete cells",
    DENSITY_COL: "density: mean fraction of keys each query attends to (sparse configs only)",
    PREFILL_DENSITY_COL: "prefill_density: mean fraction of causal pairs the sparse prefill "
    "computes (configs with prefill_maskers only)",
    COMPRESSION_COL: "compression_ratio: realized fraction of the context's KV pairs evicted "
    "(eviction configs only)",
    ERROR_COL: "output_error: mean relative L2 error of the attention output against dense",
    AGREEMENT_COL: "agreement: fraction of answers identical to the dense config's, per row",
}
CI_NOTE = "score ± h: overall score and the half-width h of its 95% bootstrap CI over samples"
DELTA_NOTE = (
    "Δ: score minus dense on the same samples [paired bootstrap 95% CI]; * the CI excludes 0"
)


def stat_column(label: str, suffix: str) -> str:
    """The report column of one interval value of a benchmark column: ``label.ci_low``..."""
    return f"{label}.{suffix}"


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
    with open(path, encoding="utf-8", errors="replace") as handle:  # damage: skipped
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
    score. ``mean`` averages the row's scores; ``density``/``compression_ratio``/
    ``output_error``/``agreement``
    average the per-cell values (each benchmark weighs the same); all use complete cells only.
    A summary column appears when some cell has a value for it. Rows and columns keep the
    order in which they first appear in ``cells``. Where ``cells`` holds confidence intervals
    (``cell_stats.add_intervals``), each benchmark column is followed by
    ``<label>.ci_low``, ``.ci_high``, ``.delta``, ``.delta_low`` and ``.delta_high``.
    """
    labels: list[str] = []
    with_stats: set[str] = set()
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
        for suffix, source in STAT_SOURCES:
            value = _number(record.get(source))
            if value is not None and isinstance(row[label], float):
                row[stat_column(label, suffix)] = value
                with_stats.add(label)
        acc = extra.setdefault(key, {col: [] for col in (MEAN_COL, *logged)})
        acc[MEAN_COL].append(row[label] if isinstance(row[label], float) else None)
        for col, source in SUMMARY_SOURCES:
            value = _number(record.get(source))
            logged[col] = logged[col] or value is not None
            acc[col].append(value if status in ("", COMPLETE) else None)
    columns = list(ROW_KEYS)
    for label in labels:
        columns.append(label)
        if label in with_stats:
            columns += [stat_column(label, suffix) for suffix, _ in STAT_SOURCES]
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
    cells: pd.DataFrame,
    fmt: str = "table",
    config_order: list[str] | None = None,
    extra_columns: Sequence[str] = (),
) -> str:
    """Render the per-cell table as ``table``, ``markdown``, ``csv`` or ``json`` text.

    ``config_order`` puts those sparse configs first (e.g. the order of the experiment file).
    ``extra_columns`` (names of ``report_columns.EXTRA_COLUMNS``) are added at the end.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if cells.empty:
        return "[]" if fmt == "json" else "no result cells found"
    columns, rows = summarize(order_configs(with_output_error(cells), config_order or ["dense"]))
    columns, rows = with_extra_columns(columns, rows, cells, extra_columns)
    columns, rows = report_notes.with_notes(columns, rows, cells)
    if fmt == "json":
        clean = [{k: (None if v == "-" else v) for k, v in row.items()} for row in rows]
        return json.dumps(clean, indent=2)
    if fmt == "csv":
        texts = [{**r, report_notes.NOTES_COL: report_notes.csv_text(r.get("notes"))} for r in rows]
        frame = pd.DataFrame(
            [{k: (None if v == "-" else v) for k, v in r.items()} for r in texts], columns=columns
        )
        return frame.to_csv(index=False).rstrip("\n")
    headers, cells_text = display_cells(columns, rows)
    grid = format_grid(headers, cells_text, numeric_from=len(ROW_KEYS), markdown=fmt == "markdown")
    gaps = report_notes.note_lines(rows)  # which cells lack data, and why: in both formats
    if gaps:
        grid += "\n\n" + "\n".join(gaps) if fmt == "markdown" else "\n" + "\n".join(gaps)
    notes = [text for col, text in LEGEND.items() if col in columns]
    if any(stat_column(col, "ci_low") in columns for col in headers):  # folded intervals
        notes = [
            CI_NOTE,
            *([DELTA_NOTE] if any(h.startswith("Δ ") for h in headers) else []),
            *notes,
        ]
    notes += column_notes(extra_columns)
    return grid + "\n" + "\n".join(notes) if fmt == "table" and notes else grid


def _floats(row: dict[str, Any], label: str, *suffixes: str) -> list[float] | None:
    """The row's interval values of ``label`` (``label.<suffix>``), or None if one is missing."""
    values = [row.get(stat_column(label, suffix)) for suffix in suffixes]
    return (
        [v for v in values if isinstance(v, float)]
        if all(isinstance(v, float) for v in values)
        else None
    )


def _interval_text(row: dict[str, Any], label: str) -> tuple[str, str]:
    """``("0.5 ± 0.1", "-0.2 [-0.3, -0.1]*")`` for one benchmark column of one row."""
    score = row.get(label)
    text = _text(score)
    bounds = _floats(row, label, "ci_low", "ci_high")
    if isinstance(score, float) and bounds is not None:
        text = f"{score:.4g} ± {(bounds[1] - bounds[0]) / 2:.2g}"
    delta = _floats(row, label, "delta", "delta_low", "delta_high")
    if delta is None:
        return text, "-"
    mark = "*" if delta[1] > 0 or delta[2] < 0 else ""
    return text, f"{delta[0]:+.3g} [{delta[1]:+.3g}, {delta[2]:+.3g}]{mark}"


def display_cells(
    columns: list[str], rows: list[dict[str, Any]]
) -> tuple[list[str], list[list[str]]]:
    """Headers and text of the table/markdown formats: interval columns folded into
    ``score ± h`` and a ``Δ <label>`` column (when some row has a Δ) after each benchmark;
    a value with a note (``report_notes``) marked ``†``, the ``notes`` column left out."""
    folded = {
        stat_column(col, suffix)
        for col in columns
        if stat_column(col, "ci_low") in columns
        for suffix, _ in STAT_SOURCES
    }
    headers: list[str] = []
    getters: list[Any] = []
    mark = report_notes.marked
    for col in columns:
        if col in folded or col == report_notes.NOTES_COL:
            continue
        if stat_column(col, "ci_low") not in columns:
            headers.append(col)
            getters.append(lambda row, col=col: mark(row, col, _text(row[col])))
            continue
        headers.append(col)
        getters.append(lambda row, col=col: mark(row, col, _interval_text(row, col)[0]))
        if any(isinstance(row.get(stat_column(col, "delta")), float) for row in rows):
            headers.append(f"Δ {col}")
            getters.append(lambda row, col=col: _interval_text(row, col)[1])
    return headers, [[get(row) for get in getters] for row in rows]


def recorded_config_order(result_dir: str | Path) -> list[str] | None:
    """The sparse configs in the order the last run planned them (the experiment file's),
    from ``execution_summary.json``; None when it is missing or unreadable."""
    try:
        with open(Path(result_dir) / "execution_summary.json", encoding="utf-8") as handle:
            names = json.load(handle).get("sparse_configs")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(names, list):
        return None
    return [n for n in names if isinstance(n, str)] or None


def status_counts(cells: pd.DataFrame) -> dict[str, int]:
    """``{"complete": 7, "failed": 1, ...}`` over the cells (empty when there is no status)."""
    if cells.empty or STATUS not in cells.columns:
        return {}
    return {str(k): int(v) for k, v in cells[STATUS].fillna("unknown").value_counts().items()}
