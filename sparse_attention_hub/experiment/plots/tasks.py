"""Per-task scores with their 95 % bootstrap CIs, one panel per model x benchmark[_subset].

A task's score is the ``score.<task>`` column of the results table (the benchmark's own
``task_scores``); its interval is the table's ``score.<task>.ci_low`` / ``.ci_high``
(experiment/task_stats.py, written with results.csv). A task without them is drawn without an
interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sparse_attention_hub.experiment.plots.style import (
    Style,
    figure_legend,
    panel_grid,
    pyplot,
    rc_params,
)
from sparse_attention_hub.experiment.report import cell_label

TASK_PREFIX = "score."
CI_ENDS = ("ci_low", "ci_high")
Y_LABEL = "task score (benchmark metric)"
PANEL_SIZE = (4.2, 3.0)


@dataclass(frozen=True)
class TaskScore:
    """One task of one complete cell; ``low``/``high`` None without an interval."""

    model: str
    config: str
    label: str
    task: str
    score: float
    low: float | None
    high: float | None


def _finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else None (NaN: no interval)."""
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _task_columns(table: pd.DataFrame) -> list[str]:
    """``score.<task>`` columns (nested ``score.<task>.<metric>`` ones are left out)."""
    return [c for c in table.columns if c.startswith(TASK_PREFIX) and c.count(".") == 1]


def task_scores(table: pd.DataFrame) -> list[TaskScore]:
    """Every task score of the complete cells of ``table``, with the table's intervals."""
    columns = _task_columns(table)
    out: list[TaskScore] = []
    for row in table.to_dict("records"):
        present = {
            c.removeprefix(TASK_PREFIX): float(row[c])
            for c in columns
            if isinstance(row.get(c), (int, float)) and math.isfinite(row[c])
        }
        if row.get("status") != "complete" or not present:
            continue
        for task, score in present.items():
            low, high = (_finite(row.get(f"{TASK_PREFIX}{task}.{end}")) for end in CI_ENDS)
            out.append(
                TaskScore(
                    model=str(row["model"]),
                    config=str(row["sparse_config"]),
                    label=cell_label(row["benchmark"], row.get("subset")),
                    task=task,
                    score=score,
                    low=low if high is not None else None,
                    high=high if low is not None else None,
                )
            )
    return out


def draw_panel(
    ax: Any, scores: list[TaskScore], configs: list[str], styles: dict[str, Style]
) -> None:
    """Tasks along x; each config a point (offset within the task's slot) with its interval."""
    tasks = list(dict.fromkeys(s.task for s in scores))
    present = [c for c in configs if any(s.config == c for s in scores)]
    width = 0.7 / max(1, len(present))
    for k, config in enumerate(present):
        mine = {s.task: s for s in scores if s.config == config}
        items = [(i, mine[t]) for i, t in enumerate(tasks) if t in mine]
        offset = (k - (len(present) - 1) / 2) * width
        err = [
            [max(0.0, s.score - s.low) if s.low is not None else 0.0 for _, s in items],
            [max(0.0, s.high - s.score) if s.high is not None else 0.0 for _, s in items],
        ]
        style = styles[config]
        ax.errorbar(
            [i + offset for i, _ in items],
            [s.score for _, s in items],
            yerr=err,
            color=style.color,
            marker=style.marker,
            linestyle="none",
            capsize=2,
            markersize=8 if style.marker == "*" else 5,
            label=config,
        )
    ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
    ax.set_xlabel("task")
    ax.set_ylabel(Y_LABEL)


def tasks_figure(scores: list[TaskScore], configs: list[str], styles: dict[str, Style]) -> Any:
    """One panel per model x benchmark with tasks, in a grid of up to 3 columns; None when
    no cell has task scores."""
    panels = list(dict.fromkeys((s.model, s.label) for s in scores))
    if not panels:
        return None
    plt = pyplot()
    several_models = len({model for model, _ in panels}) > 1
    with plt.rc_context(rc_params()):
        fig, axes = panel_grid(len(panels), PANEL_SIZE, len({s.config for s in scores}))
        for ax, (model, label) in zip(axes, panels, strict=True):
            draw_panel(
                ax, [s for s in scores if (s.model, s.label) == (model, label)], configs, styles
            )
            ax.set_title(f"{model}\n{label}" if several_models else label)
        figure_legend(fig, axes)
    return fig
