"""Run a tune file's trials on Ray Tune and choose one config per method and target.

Ray Tune runs one trial per distinct config (``tune.grid_search`` over the planned trials,
:mod:`.plan`); each trial runs or reuses its cells (:mod:`.trial`). Ray is started locally
(``address`` None) or joined (``auto``, ``host:port``), as the executor's Ray backend does.
The chosen config of a method and target has the lowest objective among its trials whose
realized density (the mean logged ``research_attention_density`` of the decode phase,
:mod:`.density`) lies within the tolerance.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.experiment.tune.objective import objective_of
from sparse_attention_hub.experiment.tune.plan import TrialPlan, plan_trials
from sparse_attention_hub.experiment.tune.spec import SearchSpec, TuneSpec

log = logging.getLogger(__name__)


@dataclass
class TuneOutcome:
    """``rows``: one per method x target x trial, with its figures and ``objective``;
    ``chosen``: (method, target) -> the chosen row (absent: no trial within tolerance)."""

    rows: list[dict[str, Any]]
    chosen: dict[tuple[str, float], dict[str, Any]]
    rejected: Counter[str] = field(default_factory=Counter)

    def count(self, key: str) -> int:
        """Cells ``ran``, ``reused`` or ``failed`` over the distinct trials."""
        seen = {row["config_name"]: row.get(key, 0) for row in self.rows}
        return int(sum(v for v in seen.values() if isinstance(v, (int, float))))


def choose(rows: list[dict[str, Any]], search: SearchSpec) -> dict[tuple[str, float], Any]:
    """The best row per (method, target) among those within tolerance of the target."""
    chosen: dict[tuple[str, float], dict[str, Any]] = {}
    for row in rows:
        density, value = row.get("density", math.nan), row.get("objective", math.nan)
        if not (math.isfinite(density) and math.isfinite(value)):
            continue
        if abs(density - row["target"]) > search.tolerance + 1e-12:
            continue
        key = (row["method"], row["target"])
        if key not in chosen or value < chosen[key]["objective"]:
            chosen[key] = row
    return chosen


def run_tune(spec: TuneSpec, address: str | None = None) -> TuneOutcome:
    """Plan, hold the results directory, preflight, run the trials on Ray Tune, choose; the
    outcome's rows carry every trial. A killed search run again reuses its complete cells
    (and resumes a partial one); the plan is fixed by the seed, so it ends with the choices
    of an uninterrupted search."""
    from sparse_attention_hub.experiment.runner import build_tiny_models
    from sparse_attention_hub.experiment.tune.guard import hold_result_dir, preflight_study

    plan = plan_trials(spec.search)
    for reason, n in sorted(plan.rejected.items()):
        log.info("rejected %d point(s): %s", n, reason)
    if not plan.rows:
        raise ValueError("every point of the search was rejected: " + str(dict(plan.rejected)))
    with hold_result_dir(spec.study.result_dir, address):
        for note in build_tiny_models(spec.study):
            log.info("%s", note)
        preflight_study(spec.study)
        figures = _run_on_ray(spec, plan, address)
    rows = []
    for row in plan.rows:
        merged = {**row, **figures.get(row["config_name"], {})}
        merged.setdefault("density", math.nan)
        merged["objective"] = objective_of(merged, spec.search.objective)
        rows.append(merged)
    return TuneOutcome(rows=rows, chosen=choose(rows, spec.search), rejected=plan.rejected)


def _run_on_ray(spec: TuneSpec, plan: TrialPlan, address: str | None) -> dict[str, Any]:
    """config name -> the trial's figures, run through ``tune.Tuner``."""
    from ray import tune

    from sparse_attention_hub.executor.ray_session import forwarded_environment, import_ray
    from sparse_attention_hub.experiment.tune.progress import ProgressLog
    from sparse_attention_hub.experiment.tune.trial import tune_trainable

    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            runtime_env={"env_vars": forwarded_environment()},
        )
    trials = plan.unique_trials()
    gpus = spec.study.executor.gpus
    resources: dict[str, float] = {"cpu": 1.0, "gpu": 1.0} if gpus else {"cpu": 1.0}
    trainable = tune.with_resources(
        tune.with_parameters(tune_trainable, study=spec.study), resources
    )
    storage = os.path.abspath(os.path.join(spec.study.result_dir, "ray_tune"))
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.search.max_concurrent_trials),
        run_config=tune.RunConfig(
            storage_path=storage,
            name=time.strftime("search-%Y%m%d-%H%M%S"),
            verbose=0,
            callbacks=[ProgressLog(plan, spec.search)],
        ),
    )
    try:
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    figures: dict[str, Any] = {}
    for index in range(len(results)):
        result = results[index]
        if result.error is not None:
            log.warning("a trial failed: %s", result.error)
            continue
        config, metrics = result.config or {}, result.metrics or {}
        figures[config["trial"]["config_name"]] = {k: metrics.get(k) for k in _FIGURES}
    return figures


_FIGURES = (
    "density", "prefill_density", "output_error", "score",
    "ran", "reused", "failed", "complete", "cells",
)  # fmt: skip
