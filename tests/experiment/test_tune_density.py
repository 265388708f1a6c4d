"""The realized density of a trial: decode and prefill apart (the target is matched against the
decode density; events tagged ``phase: prefill`` never count toward it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from sparse_attention_hub.cell_store import MICRO_METRICS_FILE
from sparse_attention_hub.experiment.tune.density import mean_phase_densities, phase_densities


def _cell(root: Path, events: list[tuple[str, float, dict[str, object]]]) -> Path:
    root.mkdir(parents=True)
    lines = [json.dumps({"metric": m, "value": v, "metadata": meta}) for m, v, meta in events]
    (root / MICRO_METRICS_FILE).write_text("\n".join([*lines, "{damaged"]) + "\n")
    return root


def test_prefill_events_are_reported_apart(tmp_path: Path) -> None:
    cell = _cell(
        tmp_path / "a",
        [
            ("research_attention_density", 0.1, {"layer_idx": 0}),  # untagged: decode
            ("research_attention_density", 0.3, {"layer_idx": 1, "phase": "decode"}),
            ("research_attention_density", 0.9, {"layer_idx": 0, "phase": "prefill"}),
            ("research_attention_output_error", 5.0, {"layer_idx": 0}),
        ],
    )
    assert phase_densities(cell) == {"decode": 0.2, "prefill": 0.9}


def test_no_prefill_events_give_nan_and_the_decode_mean(tmp_path: Path) -> None:
    a = _cell(tmp_path / "a", [("research_attention_density", 0.2, {"layer_idx": 0})])
    b = _cell(tmp_path / "b", [("research_attention_density", 0.4, {"layer_idx": 0})])
    out = mean_phase_densities([a, b])
    assert math.isclose(out["density"], 0.3) and math.isnan(out["prefill_density"])
    assert math.isnan(mean_phase_densities([a, tmp_path / "none"])["density"])
