"""One look for every figure: the colour-blind-safe palette, one style per config, fonts.

Colours are the Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008), safe for the
common forms of colour blindness. :func:`config_styles` gives each config one
``(colour, marker)``, used by every figure of a report: the points of one sweep
(``topk.heavy_size=0.02``, ``topk.heavy_size=0.05``, ...) share their sweep's colour and differ
by marker; ``dense`` is black. matplotlib is imported only inside functions, with the Agg
backend (no display), so importing this module has no side effect.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DENSE = "dense"
DENSE_COLOR = "#000000"
# Okabe–Ito without black (kept for dense); yellow last, it is the faintest on white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
FONT_SIZE = 10
FORMATS = ("png", "svg")
DPI = 150
# ``name.param=value`` (sweep.py): the text before the first swept parameter's ``=``.
_SWEPT = re.compile(r"^(?P<prefix>[^=]+)=")


@dataclass(frozen=True)
class Style:
    """How one config is drawn in every figure."""

    color: str
    marker: str


def sweep_base(name: str, masker_names: Iterable[str] = ()) -> str:
    """The config a sweep point was generated from: ``topk.heavy_size=0.02`` -> ``topk``,
    ``topk.sink.size=4+local.size=8`` -> ``topk`` when ``sink`` is in ``masker_names``; a
    name without ``=`` is its own base. A config name that itself holds ``.`` and ``=`` (an
    unusual hand-written name) may be split where it was not swept."""
    match = _SWEPT.match(name)
    if match is None or "." not in match["prefix"]:
        return name
    head, _, _param = match["prefix"].rpartition(".")
    base, _, masker = head.rpartition(".")
    return base if base and masker in set(masker_names) else head


def config_styles(configs: Sequence[str], bases: dict[str, str] | None = None) -> dict[str, Style]:
    """``{config: Style}`` for ``configs`` in order: one colour per sweep base (``bases`` maps a
    config to it; default :func:`sweep_base`), the next marker for each config of a base;
    colours and markers cycle when there are more bases or points than they hold."""
    bases = bases or {}
    colors: dict[str, str] = {}
    used: dict[str, int] = {}
    out: dict[str, Style] = {}
    for config in configs:
        if config in out:
            continue
        if config == DENSE:
            out[config] = Style(DENSE_COLOR, "*")
            continue
        base = bases.get(config) or sweep_base(config)
        if base not in colors:
            colors[base] = PALETTE[len(colors) % len(PALETTE)]
        index = used.get(base, 0)
        used[base] = index + 1
        out[config] = Style(colors[base], MARKERS[index % len(MARKERS)])
    return out


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def rc_params() -> dict[str, Any]:
    """Readable fonts and clean axes for a paper column (``plt.rc_context(rc_params())``)."""
    return {
        "font.size": FONT_SIZE,
        "axes.titlesize": FONT_SIZE + 1,
        "axes.labelsize": FONT_SIZE,
        "legend.fontsize": FONT_SIZE - 1,
        "xtick.labelsize": FONT_SIZE - 1,
        "ytick.labelsize": FONT_SIZE - 1,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "svg.fonttype": "none",  # text stays text in the SVG (searchable, editable)
        "figure.dpi": DPI,
    }


LEGEND_COLUMNS = 3


def legend_height(entries: int) -> float:
    """Inches to add under the panels for a legend of ``entries`` (see :func:`figure_legend`)."""
    return 0.25 * -(-entries // LEGEND_COLUMNS) + 0.3


def figure_legend(fig: Any, axes: list[Any], extra: dict[str, Any] | None = None) -> int:
    """One legend under the panels: each label of ``axes`` once (in drawing order), then
    ``extra`` (label -> handle); the number of entries."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    handles.update(extra or {})
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="outside lower center",
            ncols=min(LEGEND_COLUMNS, len(handles)),
            frameon=False,
        )
    return len(handles)


MAX_COLUMNS = 3  # panels per row


def panel_grid(
    count: int, panel_size: tuple[float, float], legend_entries: int
) -> tuple[Any, list[Any]]:
    """A figure of ``count`` panels, up to :data:`MAX_COLUMNS` a row, with room for a legend
    of ``legend_entries`` underneath (call inside ``rc_context``); (figure, the used axes)."""
    plt = pyplot()
    columns = max(1, min(MAX_COLUMNS, count))
    rows = -(-count // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(
            max(panel_size[0] * columns, 5.0),
            panel_size[1] * rows + legend_height(legend_entries),
        ),
        squeeze=False,
        constrained_layout=True,
    )
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def save(figure: Any, out_dir: Path, stem: str) -> list[Path]:
    """Write ``figure`` as ``<out_dir>/<stem>.png`` and ``.svg`` (each atomically: a full
    disk leaves no partial file); the paths written."""
    from sparse_attention_hub.cell_store import write_bytes_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in FORMATS:
        path = out_dir / f"{stem}.{fmt}"
        buffer = io.BytesIO()  # drawn in memory, then written whole: never a torn file
        figure.savefig(buffer, format=fmt, dpi=DPI, bbox_inches="tight")
        write_bytes_atomic(path, buffer.getvalue())
        paths.append(path)
    return paths
