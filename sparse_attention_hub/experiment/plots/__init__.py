"""Figures of a results directory: quality against density, per-layer density and output
error, per-task scores; one colour-blind-safe style per config shared by all (style.py).

matplotlib is imported only when a figure is drawn, on the Agg backend.
"""

from sparse_attention_hub.experiment.plots.figures import build_figures, styles_for, write_figures

__all__ = ["build_figures", "styles_for", "write_figures"]
