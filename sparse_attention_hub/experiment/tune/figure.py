"""The search figure: objective against realized density, one panel per method; every trial a
point, the chosen ones ringed, each target a band of +- tolerance. The x axis of a panel is the
density its method tunes (decode or prefill, labelled)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sparse_attention_hub.experiment.plots.style import pyplot
from sparse_attention_hub.experiment.tune.density import DENSITY_KEY
from sparse_attention_hub.experiment.tune.spec import SearchSpec


def plot_trials(table: Any, search: SearchSpec, path: Path) -> Path:
    """Draw ``table`` (trials.csv's rows) into ``path`` (a PNG)."""
    plt = pyplot()
    methods = [m.name for m in search.methods]
    fig, axes = plt.subplots(
        1, len(methods), figsize=(4.0 * len(methods), 3.4), squeeze=False, sharey=True
    )
    for ax, method in zip(axes[0], methods, strict=True):
        rows = table[table["method"] == method]
        for target in search.targets:
            ax.axvspan(target - search.tolerance, target + search.tolerance, color="0.9", zorder=0)
            ax.axvline(target, color="0.6", lw=0.8, zorder=1)
        phase = next((m.density for m in search.methods if m.name == method), "decode")
        x = DENSITY_KEY[phase]
        finite = rows[[math.isfinite(v) for v in rows["objective"].astype(float)]]
        ax.scatter(finite[x], finite["objective"], s=14, color="tab:blue", zorder=2)
        chosen = finite[finite["chosen"]]
        ax.scatter(
            chosen[x], chosen["objective"], s=90, facecolors="none",
            edgecolors="tab:red", linewidths=1.6, zorder=3, label="chosen",
        )  # fmt: skip
        ax.set_title(method)
        ax.set_xlabel(f"realized {phase} density")
    axes[0][0].set_ylabel("objective (" + " + ".join(search.objective) + ")")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
