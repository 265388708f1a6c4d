"""``sah report --plot`` and ``--html``: figures and the HTML report of a results directory.

Both start from the per-cell table with its confidence intervals, the one ``sah report`` has
just written to ``results.csv`` (:func:`load_report_table` rebuilds it when that file is older
than the command, e.g. on a read-only tree).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from sparse_attention_hub.executor.results import RESULTS_CSV, build_results_table
from sparse_attention_hub.experiment.cell_stats import add_intervals

log = logging.getLogger(__name__)

FIGURES_DIR = "figures"


def load_report_table(
    result_dir: str | Path, written_after: float, resamples: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """The per-cell table with intervals: ``results.csv`` when it was written at or after
    ``written_after`` (a ``time.time()``), else rebuilt from the cells."""
    path = Path(result_dir) / RESULTS_CSV
    if path.is_file() and os.path.getmtime(path) >= written_after:
        return pd.read_csv(path, dtype={"subset": str})  # "1024", not 1024.0; NaN when none
    table = build_results_table(result_dir)
    return add_intervals(table, resamples, seed) if resamples and not table.empty else table


def plot_report(
    table: pd.DataFrame,
    out_dir: str | Path,
    config_order: list[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """Write the figures of ``table`` under ``out_dir`` (PNG and SVG); the paths written."""
    from sparse_attention_hub.experiment.plots import build_figures, write_figures

    return write_figures(build_figures(table, config_order, resamples, seed), Path(out_dir))


def html_report(
    result_dir: str | Path,
    table: pd.DataFrame,
    target: str | Path,
    config_order: list[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> Path:
    """Write the self-contained HTML report of ``result_dir`` to ``target``; its path."""
    from sparse_attention_hub.cell_store import write_text_atomic
    from sparse_attention_hub.experiment.html import render_page
    from sparse_attention_hub.experiment.plots import build_figures
    from sparse_attention_hub.experiment.plots.style import pyplot

    figures = build_figures(table, config_order, resamples, seed)
    try:
        text = render_page(result_dir, table, figures, config_order)
    finally:
        for figure in figures.values():
            pyplot().close(figure)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, text)
    return target
