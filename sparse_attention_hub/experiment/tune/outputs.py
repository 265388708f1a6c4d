"""What ``sah tune`` writes: ``tuned.yaml``, ``trials.csv`` and ``tune.png``.

``tuned.yaml`` is the tune file's study with ``sparse_configs`` holding ``dense`` and one
config per method and target, named ``<method>.at_<target>`` (``quest.at_0.05``; a config
name is a folder name, and ``@`` is not one of its characters), ready for ``sah run`` (swap
in the full benchmarks first).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from sparse_attention_hub.experiment.tune.density import realized_density
from sparse_attention_hub.experiment.tune.search import TuneOutcome
from sparse_attention_hub.experiment.tune.spec import TuneSpec

# density: the decode density, prefill_density the prefill's; tuned_phase: the one the
# target refers to (decode or prefill)
CSV_COLUMNS = (
    "method", "target", "tuned_phase", "config_name", "density", "prefill_density",
    "output_error", "prefill_output_error", "score", "objective", "within_tolerance", "chosen", "ran", "reused", "failed", "params", "cells",
)  # fmt: skip


def tuned_name(method: str, target: float) -> str:
    """``quest.at_0.05``: the tuned config of ``method`` for ``target``."""
    return f"{method}.at_{target:g}"


def tuned_study(spec: TuneSpec, outcome: TuneOutcome) -> dict[str, Any]:
    """The study mapping of ``tuned.yaml``."""
    configs: dict[str, Any] = {"dense": "dense"}
    for (method, target), row in sorted(outcome.chosen.items()):
        config: dict[str, Any] = {"dense_layers": list(row["dense_layers"])}
        prefill = copy.deepcopy(row.get("prefill") or {})
        if row["maskers"] or not prefill:  # a prefill-only config decodes densely
            config["maskers"] = copy.deepcopy(row["maskers"])
        configs[tuned_name(method, target)] = {**config, **prefill}
    study = copy.deepcopy(spec.raw_study)
    study["sparse_configs"] = configs
    return study


def write_tuned(path: Path, spec: TuneSpec, outcome: TuneOutcome) -> Path:
    missing = [
        tuned_name(m.name, t)
        for m in spec.search.methods
        for t in spec.search.targets
        if (m.name, t) not in outcome.chosen
    ]
    head = f"# written by sah tune from {spec.study.source}\n"
    if missing:
        head += "# no trial within tolerance (not listed): " + ", ".join(missing) + "\n"
    text = yaml.safe_dump(tuned_study(spec, outcome), sort_keys=False)
    path.write_text(head + text, encoding="utf-8")
    return path


def trial_table(spec: TuneSpec, outcome: TuneOutcome) -> Any:
    """One row per method x target x trial (pandas DataFrame)."""
    import pandas as pd

    chosen = {id(row) for row in outcome.chosen.values()}
    records = []
    for row in outcome.rows:
        phase = row.get("tuned_phase", "decode")
        density = realized_density(row, phase)
        within = math.isfinite(density) and abs(density - row["target"]) <= spec.search.tolerance
        records.append(
            {
                **{k: row.get(k) for k in CSV_COLUMNS},
                "tuned_phase": phase,
                "within_tolerance": within,
                "chosen": id(row) in chosen,
                "params": yaml.safe_dump(row["params"], default_flow_style=True).strip(),
            }
        )
    return pd.DataFrame.from_records(records, columns=list(CSV_COLUMNS))


def write_outputs(result_dir: str, spec: TuneSpec, outcome: TuneOutcome) -> dict[str, Path]:
    """Write tuned.yaml, trials.csv and tune.png under ``result_dir``; their paths."""
    from sparse_attention_hub.experiment.tune.figure import plot_trials

    out = Path(result_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = trial_table(spec, outcome)
    table.to_csv(out / "trials.csv", index=False)
    return {
        "tuned": write_tuned(out / "tuned.yaml", spec, outcome),
        "trials": out / "trials.csv",
        "figure": plot_trials(table, spec.search, out / "tune.png"),
    }
