"""A trial's realized density, decode and prefill apart, and which one a target refers to.

The **decode** density is the mean logged ``research_attention_density`` (the research
attention's decode steps). The **prefill** density is the mean logged ``prefill_density`` (the
fraction of causal query-key pairs the sparse prefill computes, logged per layer by a config
with prefill maskers); an event of ``research_attention_density`` whose metadata has
``phase: prefill`` counts toward it too, never toward the decode density. Each is reported
apart in trials.csv (NaN where none was logged).

A method's targets refer to its ``density`` (:class:`~.spec.MethodSpec`): ``decode``, or
``prefill`` for a config of prefill maskers only (or one with both that says so). With
``prefill``, the ``output_error`` of the objective is the logged ``prefill_output_error``
(the decode error of a dense decode says nothing about the prefill).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

DENSITY_METRIC = "research_attention_density"
PREFILL_DENSITY_METRIC = "prefill_density"  # prefill.metrics.PREFILL_DENSITY_METRIC
PREFILL_ERROR_METRIC = "prefill_output_error"  # prefill.metrics.PREFILL_OUTPUT_ERROR_METRIC
PREFILL = "prefill"
# the trial figure holding each phase's realized density and output error
DENSITY_KEY = {"decode": "density", PREFILL: "prefill_density"}
ERROR_KEY = {"decode": "output_error", PREFILL: "prefill_output_error"}


def _phase_of(record: dict[str, Any]) -> str | None:
    """The figure an event counts toward: ``decode``, ``prefill``, ``prefill_error`` or None."""
    metric = record.get("metric")
    if metric == PREFILL_DENSITY_METRIC:
        return PREFILL
    if metric == PREFILL_ERROR_METRIC:
        return "prefill_error"
    if metric != DENSITY_METRIC:
        return None
    metadata = record.get("metadata")
    phase = metadata.get("phase") if isinstance(metadata, dict) else None
    return PREFILL if phase == PREFILL else "decode"


def phase_figures(cell: Path) -> dict[str, float]:
    """``{"decode": mean, "prefill": mean, "prefill_error": mean}`` of one cell's logged
    densities and prefill output error (NaN: none logged)."""
    from sparse_attention_hub.cell_store import MICRO_METRICS_FILE

    sums = {"decode": [0.0, 0], PREFILL: [0.0, 0], "prefill_error": [0.0, 0]}
    path = cell / MICRO_METRICS_FILE
    if path.is_file():
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:  # a damaged line is skipped, as the results table does
                    continue
                phase = _phase_of(record) if isinstance(record, dict) else None
                value = record.get("value") if phase is not None else None
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if math.isfinite(value):
                    assert phase is not None
                    sums[phase][0] += value
                    sums[phase][1] += 1
    return {name: (total / n if n else math.nan) for name, (total, n) in sums.items()}


def phase_densities(cell: Path) -> dict[str, float]:
    """``{"decode": mean, "prefill": mean}`` of one cell's logged densities (NaN: none)."""
    figures = phase_figures(cell)
    return {"decode": figures["decode"], PREFILL: figures[PREFILL]}


def mean_phase_densities(cells: list[Path]) -> dict[str, float]:
    """``density`` (decode), ``prefill_density`` and ``prefill_output_error``: means over
    ``cells`` of each cell's mean; NaN where a cell logged none of it."""
    per_cell = [phase_figures(cell) for cell in cells]
    out = {}
    for key, phase in (
        ("density", "decode"),
        ("prefill_density", PREFILL),
        ("prefill_output_error", "prefill_error"),
    ):
        values = [d[phase] for d in per_cell]
        finite = bool(values) and all(math.isfinite(v) for v in values)
        out[key] = sum(values) / len(values) if finite else math.nan
    return out


def realized_density(figures: dict[str, Any], phase: str) -> float:
    """The realized density of ``phase`` (``decode`` or ``prefill``) in a trial's figures;
    NaN where it is missing."""
    value = figures.get(DENSITY_KEY[phase])
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)
