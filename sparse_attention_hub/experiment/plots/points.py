"""The numbers the figures draw, read from the per-cell results table and the cell folders.

A quality point is one complete cell: its overall score with the bootstrap interval
(``score_ci_low``/``score_ci_high``, experiment/cell_stats.py) and its density, the mean
fraction of keys each query attended to. The density is the logged one (``mean_density``, from
the ``research_attention_density`` micro metric) when the cell logged it; otherwise the
config's nominal budget (:func:`nominal_density`), flagged ``nominal``; dense is 1.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub.cell_store import CONFIG_FILE, PREDICTIONS_FILE, read_json
from sparse_attention_hub.experiment.report import cell_label

log = logging.getLogger(__name__)

DENSE = "dense"
# Masker parameters that are a key budget (int tokens or float fraction of K).
BUDGET_PARAMS = ("sink_size", "window_size", "heavy_size", "token_budget", "sampling_rate")


@dataclass(frozen=True)
class QualityPoint:
    """One complete cell: ``label`` is ``benchmark[_subset]``; ``low``/``high`` bound the
    score's 95 % CI (None without one); ``density`` is in (0, 1], ``nominal`` when it is the
    config's budget rather than a measured mean."""

    model: str
    config: str
    label: str
    score: float
    low: float | None
    high: float | None
    density: float | None
    nominal: bool


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def cell_maskers(cell_dir: str | Path) -> list[dict[str, dict[str, Any]]] | None:
    """The masker list of a cell's resolved config (``[{"sink": {"sink_size": 4}}, ...]``);
    None for dense (or an unreadable config.json)."""
    config = read_json(Path(cell_dir) / CONFIG_FILE) or {}
    resolved = config.get("resolved_config") or {}
    sparse = resolved.get("sparse_attention_config") if isinstance(resolved, dict) else None
    maskers = sparse.get("maskers") if isinstance(sparse, dict) else None
    return maskers if isinstance(maskers, list) and maskers else None


def budget_sizes(maskers: list[dict[str, dict[str, Any]]]) -> list[int | float]:
    """The key budgets of a masker list (:data:`BUDGET_PARAMS`), in order."""
    sizes: list[int | float] = []
    for entry in maskers:
        for params in entry.values() if isinstance(entry, dict) else ():
            for name, value in (params or {}).items():
                if name in BUDGET_PARAMS and isinstance(value, (int, float)):
                    sizes.append(value)
    return sizes


def _key_lengths(cell_dir: Path) -> list[int]:
    """Prompt lengths in tokens (context + question) of each answered request."""
    lengths: list[int] = []
    path = cell_dir / PREDICTIONS_FILE
    if not path.is_file():
        return lengths
    with open(path, encoding="utf-8", errors="replace") as handle:  # damage: skipped
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            context, question = record.get("context_tokens"), record.get("question_tokens")
            if isinstance(context, int) and isinstance(question, int) and context + question > 0:
                lengths.append(context + question)
    return lengths


def budget_tokens(size: int | float, k: int) -> int:
    """Tokens of a budget at key length ``k``: the rule of
    ``sparse_attention.maskers.base.resolve_size`` (an int is tokens, capped at k; a float a
    fraction, floor(size * k), at least 1), restated here so as not to import torch."""
    if isinstance(size, float):
        return min(k, max(1, int(size * k))) if k > 0 else 0
    return min(int(size), k)


def nominal_density(cell_dir: str | Path) -> float | None:
    """The config's budget as a fraction of the keys: for each request, the budgets
    (:data:`BUDGET_PARAMS`, an int is tokens, a float a fraction of K) summed over the maskers
    at K = its context + question tokens, capped at 1, then the mean over requests. 1 for
    dense; None when no budget or no request length is known. Overlap between maskers (a sink
    inside the local window) and the causal mask are ignored: an upper bound of the density."""
    maskers = cell_maskers(cell_dir)
    if maskers is None:
        return 1.0
    sizes = budget_sizes(maskers)
    lengths = _key_lengths(Path(cell_dir))
    if not sizes or not lengths:
        return None
    per_request = [min(1.0, sum(budget_tokens(s, k) for s in sizes) / k) for k in lengths]
    return sum(per_request) / len(per_request)


def quality_points(table: pd.DataFrame) -> list[QualityPoint]:
    """One point per complete cell with a score in ``table`` (the per-cell results table), in
    table order."""
    points = []
    for row in table.to_dict("records"):
        score = _float(row.get("overall_score"))
        if row.get("status") != "complete" or score is None:
            continue
        config = str(row["sparse_config"])
        density, nominal = _float(row.get("mean_density")), False
        if config == DENSE:
            density = 1.0
        elif density is None and isinstance(row.get("result_dir"), str):
            density, nominal = nominal_density(row["result_dir"]), True
        points.append(
            QualityPoint(
                model=str(row["model"]),
                config=config,
                label=cell_label(row["benchmark"], row.get("subset")),
                score=score,
                low=_float(row.get("score_ci_low")),
                high=_float(row.get("score_ci_high")),
                density=density,
                nominal=nominal,
            )
        )
    return points
