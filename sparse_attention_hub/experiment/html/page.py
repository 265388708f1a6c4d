"""The HTML report: one self-contained file (CSS, figures and data inline; no script, no
network), every text escaped with :func:`html.escape`.

>>> text = render_page(result_dir, table, figures, config_order)   # doctest: +SKIP
>>> Path("report.html").write_text(text)                            # doctest: +SKIP

Sections: setup (setup.py), the results table with its CIs (experiment/report.py's cells),
the figures (base64 PNG), a few predictions per cell beside the gold answers, and the failed
cells with their error text (samples.py). The per-cell table is embedded as JSON in a
``<script type="application/json" id="results-data">`` block for scripts that read the file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from sparse_attention_hub.experiment import report, report_notes
from sparse_attention_hub.experiment.html.samples import (
    CellSamples,
    Failure,
    cell_samples,
    failures,
)
from sparse_attention_hub.experiment.html.setup import StudySetup, study_setup

CAPTIONS = {
    "quality_vs_density": "Score against density, per benchmark: error bars are 95% bootstrap "
    "CIs; the dashed line is dense; hollow markers mark a nominal density (the config's budget).",
    "layers": "Mean density and output error per layer and config (logged micro metrics).",
    "task_scores": "Per-task scores with 95% bootstrap CIs.",
}

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em}
pre{background:#f7f7f7;padding:.6em;overflow-x:auto;white-space:pre-wrap}
figure{margin:1em 0}figure img{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
details{margin:.3em 0}summary{cursor:pointer;font-weight:600}.notes{color:#555;font-size:.85em}
.failed{color:#a00}.wide{overflow-x:auto}
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$style</style>
</head>
<body>
<h1>$title</h1>
$body
<script type="application/json" id="results-data">$data</script>
</body>
</html>
""")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric_from: int = 99) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = []
    for row in rows:
        cells = [
            f'<td class="num">{escape(str(v))}</td>'
            if i >= numeric_from
            else f"<td>{escape(str(v))}</td>"
            for i, v in enumerate(row)
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _mapping(title: str, values: dict[str, Any]) -> str:
    """A two-column table of ``name -> value`` (a dict value becomes one row per key)."""
    rows: list[tuple[str, str, str]] = []
    for name, value in values.items():
        if isinstance(value, dict):
            rows += [(name, str(k), "" if v is None else str(v)) for k, v in value.items()]
        else:
            rows.append((name, "", "" if value is None else str(value)))
    if not rows:
        return f"<h3>{escape(title)}</h3><p>not recorded</p>"
    return f"<h3>{escape(title)}</h3>" + _table(["name", "setting", "value"], rows)


def setup_section(setup: StudySetup) -> str:
    """The study's setup: models, configs, benchmarks, generation, run, versions."""
    parts = [
        _mapping("Models", setup.models),
        _mapping("Sparse configs (expanded masker lists)", setup.configs),
        _mapping("Benchmarks", setup.benchmarks),
        _mapping("Generation settings", setup.generation),
        _mapping("Run", {k: v for k, v in setup.run.items() if v is not None}),
        _mapping("Versions", setup.versions),
    ]
    return "<h2>Setup</h2>" + "".join(parts)


def results_section(table: pd.DataFrame, config_order: list[str] | None) -> str:
    """The report's table (score ± CI half-width, Δ vs dense [CI]) with its notes."""
    ordered = report.order_configs(report.with_output_error(table), config_order or ["dense"])
    columns, rows = report_notes.with_notes(*report.summarize(ordered), ordered)
    headers, cells = report.display_cells(columns, rows)
    notes = [text for col, text in report.LEGEND.items() if col in columns]
    if any(report.stat_column(col, "ci_low") in columns for col in headers):
        notes = [report.CI_NOTE, report.DELTA_NOTE, *notes]
    notes += report_notes.note_lines(rows)
    note_html = "".join(f"<li>{escape(n)}</li>" for n in notes)
    grid = _table(headers, cells, numeric_from=len(report.ROW_KEYS))
    return f'<h2>Results</h2><div class="wide">{grid}</div><ul class="notes">{note_html}</ul>'


def figure_png(figure: Any) -> str:
    """``figure`` as base64 PNG text (for an ``<img src="data:image/png;base64,...">``)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def figures_section(figures: dict[str, Any]) -> str:
    """Every figure inline, with its caption."""
    if not figures:
        return "<h2>Figures</h2><p>no figures (no complete cell with a score)</p>"
    parts = ["<h2>Figures</h2>"]
    for name, figure in figures.items():
        caption = escape(CAPTIONS.get(name, name))
        parts.append(
            f'<figure id="fig-{escape(name)}"><img alt="{escape(name)}" '
            f'src="data:image/png;base64,{figure_png(figure)}"><figcaption>{caption}</figcaption></figure>'
        )
    return "".join(parts)


def samples_section(cells: list[CellSamples]) -> str:
    """Per complete cell, a folded table of its first predictions and their gold answers."""
    parts = ["<h2>Predictions</h2>"]
    for cell in cells:
        name = f"{cell.model} / {cell.config} / {cell.label}"
        rows = [(s.row_id, s.task, s.question, s.predicted, s.gold) for s in cell.samples]
        inner = (
            _table(["row", "task", "question", "prediction", "gold"], rows)
            if rows
            else "<p>no scored rows</p>"
        )
        parts.append(f"<details><summary>{escape(name)}</summary>{inner}</details>")
    return "".join(parts) if cells else parts[0] + "<p>no complete cells</p>"


def failures_section(failed: list[Failure]) -> str:
    """The cells that did not complete, each with its error text."""
    if not failed:
        return "<h2>Failures</h2><p>none: every cell completed</p>"
    parts = [f'<h2 class="failed">Failures ({len(failed)})</h2>']
    for cell in failed:
        name = f"{cell.model} / {cell.config} / {cell.label}: {cell.status}"
        text = f"<pre>{escape(cell.error)}</pre>" if cell.error else "<p>no error.txt</p>"
        parts.append(
            f'<details open><summary class="failed">{escape(name)}</summary>{text}</details>'
        )
    return "".join(parts)


def table_json(table: pd.DataFrame) -> str:
    """The per-cell table as JSON safe inside a ``<script>`` element (no ``<`` characters)."""
    text = table.to_json(orient="records", force_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(
    result_dir: str | Path,
    table: pd.DataFrame,
    figures: dict[str, Any],
    config_order: list[str] | None = None,
) -> str:
    """The whole HTML document of the study under ``result_dir``; every section lists its
    configs in ``config_order`` (dense first by default)."""
    table = report.order_configs(table, config_order or ["dense"])
    body = "".join(
        [
            setup_section(study_setup(result_dir, table)),
            results_section(table, config_order),
            figures_section(figures),
            samples_section(cell_samples(table)),
            failures_section(failures(table)),
        ]
    )
    title = f"Results: {Path(result_dir).resolve().name}"
    return PAGE.substitute(title=escape(title), style=STYLE, body=body, data=table_json(table))
