"""``sah report --plot`` and ``--html``: figures and the HTML report of a results directory.

:func:`write_outputs` draws the figures once for both, from the per-cell table with its
confidence intervals: the one ``sah report`` has just written to ``results.csv``
(:func:`load_report_table` rebuilds it when that file is older than the command, e.g. on a
read-only tree).
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


def write_outputs(
    result_dir: str | Path,
    table: pd.DataFrame,
    plot_dir: str | Path | None = None,
    html_path: str | Path | None = None,
    config_order: list[str] | None = None,
) -> tuple[list[Path], Path | None]:
    """Draw the figures of ``table`` once; save them under ``plot_dir`` (PNG and SVG) and/or
    write the self-contained HTML report of ``result_dir`` to ``html_path``.
    Returns (the figure files written, the HTML file or None)."""
    from sparse_attention_hub.cell_store import write_text_atomic
    from sparse_attention_hub.experiment.html import render_page
    from sparse_attention_hub.experiment.plots import build_figures
    from sparse_attention_hub.experiment.plots.style import pyplot, save

    figures = build_figures(table, config_order)
    paths: list[Path] = []
    page: Path | None = None
    try:
        if plot_dir is not None:
            for name, figure in figures.items():
                paths += save(figure, Path(plot_dir), name)
        if html_path is not None:
            page = Path(html_path)
            text = render_page(result_dir, table, figures, config_order)
            write_text_atomic(page, text)
    finally:
        for figure in figures.values():
            pyplot().close(figure)
    return paths, page
