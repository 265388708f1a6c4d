"""The self-contained HTML report of a results directory (page.py)."""

from sparse_attention_hub.experiment.html.page import render_page

__all__ = ["render_page"]
