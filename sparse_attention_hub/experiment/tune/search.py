"""Run a tune file's trials on Ray Tune and choose one config per method and target.

Ray Tune runs one trial per distinct config (``tune.grid_search`` over the planned trials,
:mod:`.plan`; ``searcher: optuna``: Ray Tune's OptunaSearch suggests them, :mod:`.adaptive`);
each trial runs or reuses its cells (:mod:`.trial`). Ray is started locally
(``address`` None) or joined (``auto``, ``host:port``), as the executor's Ray backend does.
The chosen config of a method and target has the lowest objective among its trials whose
realized density lies within the tolerance: the mean logged ``research_attention_density`` of
the decode phase, or ``prefill_density`` for a method that tunes its prefill (:mod:`.density`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.experiment.tune.density import realized_density
from sparse_attention_hub.experiment.tune.objective import objective_of
from sparse_attention_hub.experiment.tune.plan import TrialPlan, plan_trials
from sparse_attention_hub.experiment.tune.spec import SearchSpec, TuneSpec
from sparse_attention_hub.experiment.tune.trial import FIGURES

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
    """The best row per (method, target) among those whose realized density (of the phase the
    method tunes) lies within tolerance of the target."""
    chosen: dict[tuple[str, float], dict[str, Any]] = {}
    for row in rows:
        density = realized_density(row, row.get("tuned_phase", "decode"))
        value = row.get("objective", math.nan)
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
    (and resumes a partial one); the plan is fixed by the seed (``searcher: optuna``: the
    search replays its finished trials, :mod:`.adaptive`), so it ends with the choices of an
    uninterrupted search."""
    from sparse_attention_hub.experiment.runner import build_tiny_models
    from sparse_attention_hub.experiment.tune.guard import hold_result_dir, preflight_study

    adaptive = spec.search.searcher == "optuna"
    plan = TrialPlan() if adaptive else plan_trials(spec.search)
    _log_rejected(plan.rejected)
    if not adaptive and not plan.rows:
        raise ValueError("every point of the search was rejected: " + str(dict(plan.rejected)))
    with hold_result_dir(spec.study.result_dir, address):
        for note in build_tiny_models(spec.study):
            log.info("%s", note)
        preflight_study(spec.study)
        if adaptive:
            plan.rows, plan.rejected = _run_adaptive(spec, address)
            _log_rejected(plan.rejected)
            figures = {}
        else:
            figures = _run_on_ray(spec, plan, address)
    rows = []
    for row in plan.rows:
        merged = {**row, **figures.get(row["config_name"], {})}
        merged.setdefault("density", math.nan)
        merged["objective"] = objective_of(
            merged, spec.search.objective, merged.get("tuned_phase", "decode")
        )
        rows.append(merged)
    return TuneOutcome(rows=rows, chosen=choose(rows, spec.search), rejected=plan.rejected)


def _log_rejected(rejected: Counter[str]) -> None:
    for reason, n in sorted(rejected.items()):
        log.info("rejected %d point(s): %s", n, reason)


def _run_on_ray(spec: TuneSpec, plan: TrialPlan, address: str | None) -> dict[str, Any]:
    """config name -> the trial's figures, run through ``tune.Tuner``."""
    from ray import tune

    from sparse_attention_hub.experiment.tune.progress import ProgressLog

    trials = plan.unique_trials()
    with _ray_session(address):
        results = _fit(
            spec,
            param_space={"trial": tune.grid_search(trials)},
            tune_config=tune.TuneConfig(max_concurrent_trials=spec.search.max_concurrent_trials),
            callbacks=[ProgressLog(plan, spec.search)],
            name=time.strftime("search-%Y%m%d-%H%M%S"),
        )
    figures: dict[str, Any] = {}
    for index in range(len(results)):
        result = results[index]
        if result.error is not None:
            log.warning("a trial failed: %s", result.error)
            continue
        config, metrics = result.config or {}, result.metrics or {}
        figures[config["trial"]["config_name"]] = {k: metrics.get(k) for k in FIGURES}
    return figures


def _run_adaptive(spec: TuneSpec, address: str | None) -> tuple[list[dict[str, Any]], Counter[str]]:
    """``searcher: optuna``: one Ray Tune search per method and target (:mod:`.adaptive`);
    the finished trials' rows (in order) and the rejected points' reasons."""
    from ray import tune

    from sparse_attention_hub.experiment.tune.adaptive import GuardedSearch

    rows: list[dict[str, Any]] = []
    rejected: Counter[str] = Counter()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with _ray_session(address):
        for method in spec.search.methods:
            for i, target in enumerate(spec.search.targets):
                searcher = GuardedSearch(method, target, spec.search)
                tune_config = tune.TuneConfig(
                    search_alg=searcher,
                    num_samples=spec.search.trials,
                    max_concurrent_trials=spec.search.max_concurrent_trials,
                )
                name = f"optuna-{stamp}-{method.name}-{i}"
                _fit(spec, param_space={}, tune_config=tune_config, callbacks=[], name=name)
                rows.extend(searcher.rows)
                rejected.update(searcher.rejected)
    return rows, rejected


@contextlib.contextmanager
def _ray_session(address: str | None) -> Iterator[None]:
    """Ray started locally (``address`` None) or joined, and shut down if started here."""
    from sparse_attention_hub.executor.ray_session import forwarded_environment, import_ray

    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            runtime_env={"env_vars": forwarded_environment()},
        )
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _fit(spec: TuneSpec, param_space: Any, tune_config: Any, callbacks: Any, name: str) -> Any:
    """``tune.Tuner(...).fit()`` of the trial trainable; its ResultGrid."""
    from ray import tune

    from sparse_attention_hub.experiment.tune.trial import tune_trainable

    gpus = spec.study.executor.gpus
    resources: dict[str, float] = {"cpu": 1.0, "gpu": 1.0} if gpus else {"cpu": 1.0}
    trainable = tune.with_resources(
        tune.with_parameters(tune_trainable, study=spec.study), resources
    )
    storage = os.path.abspath(os.path.join(spec.study.result_dir, "ray_tune"))
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(storage_path=storage, name=name, verbose=0, callbacks=callbacks),
    )
    return tuner.fit()
