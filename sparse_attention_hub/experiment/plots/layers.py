"""Per-layer density and output error, from each cell's micro_metrics.jsonl.

:func:`layer_means` averages the logged ``research_attention_density`` and
``research_attention_output_error`` events per model x config x layer (over every request,
question, step and benchmark of the config's complete cells, each event weighing the same).
:func:`layers_figure` draws them as heatmaps, configs x layers, one row of two panels per model;
the config names on the y axis take the config's colour of every other figure.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparse_attention_hub.experiment.plots.style import Style, pyplot, rc_params
from sparse_attention_hub.metric_logging.reader import load_micro_metrics

log = logging.getLogger(__name__)

DENSITY_METRIC = "research_attention_density"
ERROR_METRIC = "research_attention_output_error"
METRICS = {
    DENSITY_METRIC: "density (fraction of keys attended)",
    ERROR_METRIC: "output error (relative L2 vs dense)",
}
LAYER = "layer_idx"
ANNOTATE_MAX_CELLS = 120  # write the value in each square up to this many squares
CMAP = "viridis"  # perceptually uniform and colour-blind safe


def layer_means(table: pd.DataFrame) -> pd.DataFrame:
    """Columns model, config, metric, layer (int), value: the mean per layer of each logged
    metric of :data:`METRICS` over the complete cells of ``table``; empty when none logged."""
    frames = []
    for row in table.to_dict("records"):
        cell = row.get("result_dir")
        if row.get("status") != "complete" or not isinstance(cell, str):
            continue
        if not (Path(cell) / "micro_metrics.jsonl").is_file():
            continue
        events = load_micro_metrics(cell)
        if LAYER not in events.columns:
            continue
        events = events[events["metric"].isin(list(METRICS)) & events[LAYER].notna()]
        if events.empty:
            continue
        frames.append(
            pd.DataFrame(
                {
                    "model": str(row["model"]),
                    "config": str(row["sparse_config"]),
                    "metric": events["metric"].to_numpy(),
                    "layer": events[LAYER].astype(int).to_numpy(),
                    "value": pd.to_numeric(events["value"], errors="coerce").to_numpy(),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=["model", "config", "metric", "layer", "value"])
    events = pd.concat(frames, ignore_index=True).dropna(subset=["value"])
    keys = ["model", "config", "metric", "layer"]
    return events.groupby(keys, sort=False, as_index=False)["value"].mean()


def _grid(means: pd.DataFrame, configs: list[str]) -> tuple[np.ndarray, list[str], list[int]]:
    """(configs present, layers) values (NaN where not logged), with their row/column names."""
    wide = means.pivot_table(index="config", columns="layer", values="value", aggfunc="mean")
    rows = [c for c in configs if c in wide.index]
    wide = wide.reindex(index=rows, columns=sorted(wide.columns))
    return wide.to_numpy(dtype=np.float64), rows, [int(c) for c in wide.columns]


def _heatmap(ax: Any, fig: Any, grid: np.ndarray, rows: list[str], layers: list[int]) -> Any:
    image = ax.imshow(grid, aspect="auto", cmap=CMAP, interpolation="nearest")
    ax.set_xticks(range(len(layers)), [str(layer) for layer in layers])
    ax.set_yticks(range(len(rows)), rows)
    ax.grid(False)
    if grid.size <= ANNOTATE_MAX_CELLS:
        middle = np.nanmean(grid) if np.isfinite(grid).any() else 0.0
        for (i, j), value in np.ndenumerate(grid):
            if np.isfinite(value):
                colour = "black" if value > middle else "white"
                ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=7, color=colour)
    return image


def layers_figure(means: pd.DataFrame, configs: list[str], styles: dict[str, Style]) -> Any:
    """Heatmaps of :func:`layer_means` (configs in ``configs`` order), one row per model, one
    column per logged metric; None when nothing was logged."""
    if means.empty:
        return None
    plt = pyplot()
    models = list(dict.fromkeys(means["model"]))
    metrics = [m for m in METRICS if m in set(means["metric"])]
    height = max(1.2, 0.35 * len(configs) + 1.0)
    with plt.rc_context(rc_params()):
        fig, axes = plt.subplots(
            len(models),
            len(metrics),
            figsize=(4.6 * len(metrics), height * len(models)),
            squeeze=False,
            constrained_layout=True,
        )
        for i, model in enumerate(models):
            for j, metric in enumerate(metrics):
                ax = axes[i][j]
                part = means[(means["model"] == model) & (means["metric"] == metric)]
                grid, rows, layers = _grid(part, configs)
                image = _heatmap(ax, fig, grid, rows, layers)
                fig.colorbar(image, ax=ax, label=METRICS[metric])
                for tick, name in zip(ax.get_yticklabels(), rows, strict=True):
                    tick.set_color(styles[name].color if name in styles else "black")
                ax.set_xlabel("layer")
                ax.set_title(
                    METRICS[metric].split(" (")[0] + ("" if len(models) == 1 else f" · {model}")
                )
    return fig
