"""The searched value of a trial: lower is better."""

from __future__ import annotations

import math
from typing import Any

from sparse_attention_hub.experiment.tune.density import ERROR_KEY


def objective_of(
    figures: dict[str, Any], weights: dict[str, float], phase: str = "decode"
) -> float:
    """``w_error * output_error - w_score * score`` (NaN where a figure with weight is NaN).

    ``phase``: the density the method tunes; with ``prefill`` the output error is the logged
    ``prefill_output_error`` (:mod:`.density`)."""
    total = 0.0
    for key, sign in (("output_error", 1.0), ("score", -1.0)):
        weight = weights.get(key, 0.0)
        if weight:
            value = figures.get(ERROR_KEY[phase] if key == "output_error" else key)
            if value is None or not math.isfinite(value):
                return math.nan
            total += sign * weight * value
    return total
