"""The report's figures from a results table, drawn with one config -> style mapping.

>>> figures = build_figures(table, config_order=["dense", "streaming"])   # doctest: +SKIP
>>> write_figures(figures, Path("results/figures"))                      # doctest: +SKIP
[PosixPath('results/figures/quality_vs_density.png'), ...]

``table`` is the per-cell results table (executor/results.py) with the interval columns of
experiment/cell_stats.py. The figures: ``quality_vs_density`` (quality.py), ``layers``
(layers.py, when micro metrics were logged per layer) and ``task_scores`` (tasks.py, when a
benchmark reports per-task scores).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub.experiment.plots.layers import layer_means, layers_figure
from sparse_attention_hub.experiment.plots.points import cell_maskers, quality_points
from sparse_attention_hub.experiment.plots.quality import quality_figure
from sparse_attention_hub.experiment.plots.style import (
    Style,
    config_styles,
    pyplot,
    save,
    sweep_base,
)
from sparse_attention_hub.experiment.plots.tasks import task_scores, tasks_figure

log = logging.getLogger(__name__)

QUALITY = "quality_vs_density"
LAYERS = "layers"
TASKS = "task_scores"


def ordered_configs(table: pd.DataFrame, config_order: list[str] | None) -> list[str]:
    """The configs of ``table``: ``config_order``'s first (those present), then the rest in
    table order; ``dense`` first when no order is given."""
    present = list(dict.fromkeys(str(c) for c in table["sparse_config"]))
    first = [c for c in (config_order or ["dense"]) if c in present]
    return first + [c for c in present if c not in first]


def sweep_bases(table: pd.DataFrame) -> dict[str, str]:
    """``{config: the config its sweep was generated from}`` (itself when not swept); masker
    names read from one cell's config.json tell ``name.masker.param=`` labels apart."""
    bases: dict[str, str] = {}
    for row in table.to_dict("records"):
        config = str(row["sparse_config"])
        if config in bases or not isinstance(row.get("result_dir"), str):
            bases.setdefault(config, sweep_base(config))
            continue
        maskers = cell_maskers(row["result_dir"]) or []
        names = [name for entry in maskers if isinstance(entry, dict) for name in entry]
        bases[config] = sweep_base(config, names)
    return bases


def styles_for(table: pd.DataFrame, config_order: list[str] | None = None) -> dict[str, Style]:
    """The one config -> (colour, marker) mapping every figure of ``table`` uses."""
    return config_styles(ordered_configs(table, config_order), sweep_bases(table))


def build_figures(table: pd.DataFrame, config_order: list[str] | None = None) -> dict[str, Any]:
    """``{name: matplotlib Figure}``: the figures the table has data for (close them after)."""
    configs = ordered_configs(table, config_order)
    bases = sweep_bases(table)
    styles = config_styles(configs, bases)
    figures: dict[str, Any] = {}
    points = quality_points(table)
    points.sort(key=lambda p: configs.index(p.config))
    if points:
        figures[QUALITY] = quality_figure(points, styles, bases)
    without = sorted({p.config for p in points if p.density is None})
    if without:
        log.warning("no density known for %s: left out of %s", ", ".join(without), QUALITY)
    layers = layers_figure(layer_means(table), configs, styles)
    if layers is not None:
        figures[LAYERS] = layers
    tasks = tasks_figure(task_scores(table), configs, styles)
    if tasks is not None:
        figures[TASKS] = tasks
    return figures


def write_figures(figures: dict[str, Any], out_dir: Path) -> list[Path]:
    """Save each figure as ``<out_dir>/<name>.png`` and ``.svg``, close it; the paths written."""
    paths: list[Path] = []
    plt = pyplot()
    for name, figure in figures.items():
        paths += save(figure, out_dir, name)
        plt.close(figure)
    return paths
