"""The trial plan: every method x target gets its points (random or grid), invalid points are
rejected with their reason counted, and each valid point becomes a named sparse config.

A trial's config name is ``<method>.t<hash>``, the hash of its masker list, dense layers and
prefill settings (where it has prefill maskers): the same point is the same cell folder in
every run, so a rerun reuses it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.cell_store.atomic import fingerprint_of
from sparse_attention_hub.experiment.tune.space import (
    build_config,
    grid_points,
    invalid_reason,
    random_point,
)
from sparse_attention_hub.experiment.tune.spec import MethodSpec, SearchSpec

MAX_DRAWS_PER_TRIAL = 20


@dataclass
class TrialPlan:
    """``rows``: one per method x target x point; ``rejected``: reason -> count."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)

    def unique_trials(self) -> list[dict[str, Any]]:
        """One per config name (two targets may share a point): what Ray Tune runs."""
        seen: dict[str, dict[str, Any]] = {}
        for row in self.rows:
            seen.setdefault(row["config_name"], row)
        return list(seen.values())


def _points(method: MethodSpec, target: float, search: SearchSpec) -> list[dict[str, Any]]:
    if search.searcher == "grid":
        return grid_points(method, target)
    rng = random.Random(f"{search.seed}:{method.name}:{target}")
    return [random_point(method, target, rng) for _ in range(search.trials * MAX_DRAWS_PER_TRIAL)]


def plan_trials(search: SearchSpec) -> TrialPlan:
    """Every valid trial of the search; the random searcher keeps the first ``trials`` valid
    distinct points of its seeded draws, the grid every valid point."""
    plan = TrialPlan()
    for method in search.methods:
        for target in search.targets:
            names: set[str] = set()
            for point in _points(method, target, search):
                if search.searcher == "random" and len(names) == search.trials:
                    break
                row = trial_row(method, target, point, plan.rejected)
                if row is None:
                    continue
                if row["config_name"] in names:
                    plan.rejected["duplicate point"] += 1
                    continue
                names.add(row["config_name"])
                plan.rows.append(row)
    return plan


def trial_row(
    method: MethodSpec, target: float, point: dict[str, Any], rejected: Counter[str]
) -> dict[str, Any] | None:
    """The plan row of ``point`` (its config built and named), or None: invalid, the reason
    counted in ``rejected``."""
    reason = invalid_reason({**method.fixed, **point})
    if reason is None:
        try:
            config = build_config(method, point)
        except (ValueError, TypeError) as exc:
            reason = str(exc).split(";")[0][:120]
    if reason is not None:
        rejected[f"{method.name}: {reason}"] += 1
        return None
    identity = {"maskers": config["maskers"], "dense_layers": config["dense_layers"]}
    if config["prefill"]:  # a decode-only trial keeps the name it always had
        identity["prefill"] = config["prefill"]
    return {
        "method": method.name,
        "target": target,
        "params": point,
        "config_name": f"{method.name}.t{fingerprint_of(identity)[:10]}",
        "maskers": config["maskers"],
        "dense_layers": config["dense_layers"],
        "prefill": config["prefill"],
        "tuned_phase": method.density,
    }
