"""Quality against density: the figure every sparse-attention paper shows.

One panel per model x benchmark[_subset]; in each, one point per sparse config at (density,
score) with its 95 % CI as a vertical error bar, the points of one sweep joined in order of
density, and the dense config as a dashed reference line (its CI shaded) with its point at
density 1. A hollow marker is a nominal density (the config's budget, the cell logged none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparse_attention_hub.experiment.plots.points import DENSE, QualityPoint
from sparse_attention_hub.experiment.plots.style import (
    Style,
    figure_legend,
    panel_grid,
    pyplot,
    rc_params,
)

X_LABEL = "density (fraction of keys attended)"
Y_LABEL = "score (benchmark metric)"
NOMINAL_NOTE = "hollow: nominal density (config budget)"
PANEL_SIZE = (3.6, 2.9)  # inches per panel


def _errors(points: Sequence[QualityPoint]) -> list[list[float]] | None:
    """Error bar lengths below and above each score: (2, n); None when no point has a CI."""
    if all(p.low is None or p.high is None for p in points):
        return None
    below = [p.score - p.low if p.low is not None else 0.0 for p in points]
    above = [p.high - p.score if p.high is not None else 0.0 for p in points]
    return [[max(0.0, v) for v in below], [max(0.0, v) for v in above]]


def _draw_dense(ax: Any, point: QualityPoint, style: Style) -> None:
    ax.axhline(point.score, color=style.color, linestyle="--", linewidth=1.0, zorder=1)
    if point.low is not None and point.high is not None and point.high > point.low:
        ax.axhspan(point.low, point.high, color=style.color, alpha=0.08, linewidth=0, zorder=0)
    ax.errorbar(
        [1.0],
        [point.score],
        yerr=_errors([point]),
        color=style.color,
        marker=style.marker,
        markersize=9,
        linestyle="none",
        capsize=3,
        label=DENSE,
        zorder=3,
    )


def _draw_config(ax: Any, point: QualityPoint, style: Style) -> None:
    ax.errorbar(
        [point.density],
        [point.score],
        yerr=_errors([point]),
        color=style.color,
        marker=style.marker,
        markerfacecolor="none" if point.nominal else style.color,
        markersize=6,
        linestyle="none",
        capsize=3,
        label=point.config,
        zorder=3,
    )


def draw_panel(
    ax: Any, points: Sequence[QualityPoint], styles: dict[str, Style], bases: dict[str, str]
) -> None:
    """Draw one model x benchmark panel: points (with densities), sweep lines, dense."""
    groups: dict[str, list[QualityPoint]] = {}
    for point in points:
        if point.config == DENSE:
            _draw_dense(ax, point, styles[DENSE])
        elif point.density is not None:
            _draw_config(ax, point, styles[point.config])
            groups.setdefault(bases.get(point.config, point.config), []).append(point)
    for members in groups.values():
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda p: p.density or 0.0)
        ax.plot(
            [p.density for p in members],
            [p.score for p in members],
            color=styles[members[0].config].color,
            linewidth=1.2,
            zorder=2,
        )
    ax.set_xlim(0.0, 1.05)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)


def quality_figure(
    points: Sequence[QualityPoint], styles: dict[str, Style], bases: dict[str, str]
) -> Any:
    """The figure: one panel per model x benchmark (up to 3 a row), one legend underneath."""
    plt = pyplot()
    panels = list(dict.fromkeys((p.model, p.label) for p in points))
    several_models = len({model for model, _ in panels}) > 1
    nominal = any(p.nominal and p.density is not None for p in points)
    entries = len({p.config for p in points}) + int(nominal)
    with plt.rc_context(rc_params()):
        fig, axes = panel_grid(len(panels), PANEL_SIZE, entries)
        for ax, (model, label) in zip(axes, panels, strict=True):
            draw_panel(
                ax, [p for p in points if (p.model, p.label) == (model, label)], styles, bases
            )
            ax.set_title(f"{model}\n{label}" if several_models else label)
        figure_legend(fig, axes, _nominal_note() if nominal else None)
    return fig


def _nominal_note() -> dict[str, Any]:
    """The legend entry that explains hollow markers."""
    from matplotlib.lines import Line2D

    note = Line2D([], [], color="grey", marker="o", markerfacecolor="none", linestyle="none")
    return {NOMINAL_NOTE: note}
