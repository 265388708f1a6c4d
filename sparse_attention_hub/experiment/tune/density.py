"""A trial's realized density, decode and prefill apart.

The density a target is matched against is the **decode** density: the mean logged
``research_attention_density`` of the events of the decode phase. Today the adapter prefills
the context densely (the model's own attention, nothing logged) and every logged event is a
decode step, so the decode density is the mean of all events. The hook for configs with
prefill maskers: an event whose metadata has ``phase: prefill`` counts toward
``prefill_density`` (reported apart in trials.csv, NaN where none was logged) and never toward
the decode density; an event with ``phase: decode`` or no ``phase`` is a decode event.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

DENSITY_METRIC = "research_attention_density"
PREFILL = "prefill"


def phase_densities(cell: Path) -> dict[str, float]:
    """``{"decode": mean, "prefill": mean}`` of one cell's logged densities (NaN: none)."""
    from sparse_attention_hub.cell_store import MICRO_METRICS_FILE

    sums = {"decode": [0.0, 0], PREFILL: [0.0, 0]}
    path = cell / MICRO_METRICS_FILE
    if path.is_file():
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:  # a damaged line is skipped, as the results table does
                    continue
                if not isinstance(record, dict) or record.get("metric") != DENSITY_METRIC:
                    continue
                value = record.get("value")
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if not math.isfinite(value):
                    continue
                metadata = record.get("metadata")
                phase = metadata.get("phase") if isinstance(metadata, dict) else None
                entry = sums[PREFILL if phase == PREFILL else "decode"]
                entry[0] += value
                entry[1] += 1
    return {name: (total / n if n else math.nan) for name, (total, n) in sums.items()}


def mean_phase_densities(cells: list[Path]) -> dict[str, float]:
    """``density`` (decode) and ``prefill_density``: means over ``cells`` of each cell's
    mean; NaN where a cell logged none of that phase."""
    per_cell = [phase_densities(cell) for cell in cells]
    out = {}
    for key, phase in (("density", "decode"), ("prefill_density", PREFILL)):
        values = [d[phase] for d in per_cell]
        finite = bool(values) and all(math.isfinite(v) for v in values)
        out[key] = sum(values) / len(values) if finite else math.nan
    return out
