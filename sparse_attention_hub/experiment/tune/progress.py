"""Progress of a search, logged from Ray Tune's driver: trials done / total, and the best
objective so far per method and target (among trials within tolerance)."""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.tune import Callback

from sparse_attention_hub.experiment.tune.density import realized_density
from sparse_attention_hub.experiment.tune.objective import objective_of
from sparse_attention_hub.experiment.tune.plan import TrialPlan
from sparse_attention_hub.experiment.tune.spec import SearchSpec

log = logging.getLogger(__name__)


class ProgressLog(Callback):  # type: ignore[misc]
    """A Ray Tune callback: one log line per finished trial."""

    def __init__(self, plan: TrialPlan, search: SearchSpec) -> None:
        self.plan = plan
        self.search = search
        self.total = len(plan.unique_trials())
        self.done = 0
        self.best: dict[tuple[str, float], float] = {}

    def on_trial_result(
        self, iteration: int, trials: Any, trial: Any, result: Any, **info: Any
    ) -> None:
        self.done += 1
        name = trial.config["trial"]["config_name"]
        phase = trial.config["trial"].get("tuned_phase", "decode")
        density = realized_density(result, phase)
        value = objective_of(result, self.search.objective, phase)
        for row in self.plan.rows:
            if row["config_name"] != name or not math.isfinite(value):
                continue
            key = (row["method"], row["target"])
            if abs(density - row["target"]) <= self.search.tolerance and value < self.best.get(
                key, math.inf
            ):
                self.best[key] = value
        best = ", ".join(f"{m}@{t:g}: {v:.4g}" for (m, t), v in sorted(self.best.items()))
        log.info(
            "trial %d/%d done: %s %s density %.4g objective %.4g (ran %s cells, reused %s); best: %s",
            self.done, self.total, name, phase, density, value,
            result.get("ran"), result.get("reused"), best or "none within tolerance yet",
        )  # fmt: skip
