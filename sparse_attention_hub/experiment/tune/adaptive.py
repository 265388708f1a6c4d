"""``searcher: optuna``: an adaptive (Bayesian) search of each method and target on Ray Tune's
``OptunaSearch`` (Optuna's TPE sampler), through Ray Tune's ``search_alg`` flow.

One Optuna study per method and target (its space depends on the target through ``scale``),
its sampler seeded from ``seed``, the method and the target. The searcher reports to Optuna,
per trial, the objective plus a penalty for a realized density outside the target's band:
``objective + 10 * max(0, |density - target| - tolerance)`` (lower is better). The form
follows the reference sparse-attention-hub's ``sparsity_<n>`` objectives (penalty weight 10),
with one deviation: the reference penalizes a density above the target only, this band both
sides (the chosen trial lies within the tolerance either way). A trial whose figures are not
finite (a failed cell) is told to Optuna as failed. TPE's random start is ``min(10,
trials // 2)`` trials (at least 1; Optuna's default is 10), so a small budget is partly guided.

:class:`GuardedSearch` wraps ``OptunaSearch``: each suggested point is checked before it
becomes a Ray trial. An invalid point (a budget above K, sizes that overlap, a masker that
refuses the values) is rejected, its reason counted as with the random searcher, and told to
Optuna as pruned (TPE ranks it with the worst); a point already run in this study (the same
config name) is counted as a duplicate and told its stored value. Neither counts toward
``trials``; asking stops after ``trials * 20`` points or once a finite space is exhausted.

Resume: the trials run one after another (``max_concurrent_trials: 1``, the default), so a
study's points depend only on the seed and the results before them. A rerun replays the
search: each point's trial finds its cells complete in the cell store, runs nothing, and
reports their stored figures, so the searcher sees the same results in the same order and
suggests the same next point; a killed search, run again, replays its finished trials and
goes on where it stopped, ending with the choices of an uninterrupted search. (Optuna's own
storage would keep the trials but not the sampler's random state, so the points after a
resume would differ.) With more concurrent trials the order of results, and so the points,
may vary from run to run.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from typing import Any

from ray.tune.search import Searcher

from sparse_attention_hub.experiment.tune.density import realized_density
from sparse_attention_hub.experiment.tune.objective import objective_of
from sparse_attention_hub.experiment.tune.optuna_space import distributions, point_of, space_size
from sparse_attention_hub.experiment.tune.plan import MAX_DRAWS_PER_TRIAL, trial_row
from sparse_attention_hub.experiment.tune.spec import MethodSpec, SearchSpec
from sparse_attention_hub.experiment.tune.trial import FIGURES

log = logging.getLogger(__name__)

METRIC = "searched"
PENALTY = 10.0  # the reference's penalty_weight


def searched_value(
    figures: dict[str, Any], target: float, search: SearchSpec, phase: str = "decode"
) -> float | None:
    """What Optuna minimizes: the objective plus the penalty of the realized density of
    ``phase`` (the one the method tunes); None if not finite."""
    value = objective_of(figures, search.objective, phase)
    density = realized_density(figures, phase)
    if not (math.isfinite(value) and math.isfinite(density)):
        return None
    return value + PENALTY * max(0.0, abs(density - target) - search.tolerance)


def study_seed(seed: int, method: str, target: float) -> int:
    """The sampler's seed of one study: stable across processes (no ``hash()``)."""
    digest = hashlib.sha256(f"{seed}:{method}:{target}".encode()).hexdigest()
    return int(digest[:8], 16)


def optuna_search(method: MethodSpec, target: float, search: SearchSpec) -> Any:
    """Ray Tune's OptunaSearch over ``method``'s space for ``target``, seeded TPE."""
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    sampler = TPESampler(
        seed=study_seed(search.seed, method.name, target),
        n_startup_trials=max(1, min(10, search.trials // 2)),
    )
    return OptunaSearch(
        space=distributions(method, target), metric=METRIC, mode="min", sampler=sampler
    )


class GuardedSearch(Searcher):  # type: ignore[misc]
    """Ray Tune searcher: OptunaSearch's points, checked, as ``{"trial": <plan row>}``."""

    def __init__(self, method: MethodSpec, target: float, search: SearchSpec) -> None:
        super().__init__(metric=None, mode=None)
        self.method, self.target, self.search = method, target, search
        self._optuna = optuna_search(method, target, search)
        self._asks = 0
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}  # Ray id -> (Optuna id, row)
        self._values: dict[str, float | None] = {}  # config name -> searched value (None: running)
        self._invalid: set[str] = set()  # repr of invalid points
        self._size = space_size(method, target)
        self.rows: list[dict[str, Any]] = []  # finished trials, in order
        self.rejected: Counter[str] = Counter()

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return True  # the space, metric and mode are the study's own

    def suggest(self, trial_id: str) -> Any:  # a trial config, or Searcher.FINISHED
        while self._asks < self.search.trials * MAX_DRAWS_PER_TRIAL:
            if self._size is not None and len(self._values) + len(self._invalid) >= self._size:
                break
            inner_id = f"{trial_id}.{self._asks}"
            self._asks += 1
            params = self._optuna.suggest(inner_id)
            point = point_of(self.method, self.target, params)
            row = trial_row(self.method, self.target, point, self.rejected)
            if row is None:
                self._invalid.add(repr(sorted(point.items())))
                self._optuna.on_trial_complete(inner_id, None, error=False)  # pruned
                continue
            name = row["config_name"]
            if name in self._values:
                self.rejected["duplicate point"] += 1
                value = self._values[name]
                self._optuna.on_trial_complete(
                    inner_id, None if value is None else {METRIC: value}, error=value is None
                )
                continue
            self._values[name] = None
            self._pending[trial_id] = (inner_id, row)
            return {"trial": row}
        return Searcher.FINISHED

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        inner_id, row = self._pending.pop(trial_id)
        figures = {} if (error or result is None) else result
        value = searched_value(figures, self.target, self.search, self.method.density)
        self._values[row["config_name"]] = value
        self._optuna.on_trial_complete(
            inner_id, None if value is None else {METRIC: value}, error=value is None
        )
        self.rows.append({**row, **{k: figures.get(k) for k in FIGURES if k in figures}})
        log.info(
            "%s@%g trial %d/%d: %s %s density %.4g searched %s",
            self.method.name, self.target, len(self.rows), self.search.trials, row["config_name"],
            self.method.density, realized_density(figures, self.method.density), value,
        )  # fmt: skip

    def save(self, checkpoint_path: str) -> None:
        self._optuna.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self._optuna.restore(checkpoint_path)
