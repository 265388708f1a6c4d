"""One trial: the cells of one sparse config (every model x benchmark x subset of the study),
run with the executor's own cell runner (``CellRunner``, as a worker runs them) into the
study's cell store. A complete cell is reused, never run again; a partial one resumes.

The trial's figures are means over its cells: ``density`` (the decode phase's logged
``research_attention_density``) and ``prefill_density`` apart (:mod:`.density`),
``output_error`` (``research_attention_output_error``), ``prefill_output_error`` and ``score``
(the overall scores).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from sparse_attention_hub.experiment.spec import ExperimentSpec
from sparse_attention_hub.experiment.tune.density import mean_phase_densities

_NO_DENSITY = {"density": math.nan, "prefill_density": math.nan, "prefill_output_error": math.nan}

log = logging.getLogger(__name__)

DENSITY_METRIC = "research_attention_density"
ERROR_METRIC = "research_attention_output_error"
# logged by a config with prefill maskers (sparse_attention.prefill.metrics)
PREFILL_METRICS = ("prefill_density", "prefill_output_error")
# what a trial reports to Ray Tune, kept in the trial's row
FIGURES = (
    "density", "prefill_density", "output_error", "prefill_output_error", "score",
    "ran", "reused", "failed", "complete", "cells",
)  # fmt: skip
_RUNNERS: dict[Any, Any] = {}  # one CellRunner per process: the model stays loaded


def trial_spec(
    study: ExperimentSpec,
    name: str,
    maskers: Any,
    layers: list[int],
    prefill: dict[str, Any] | None = None,
) -> ExperimentSpec:
    """The study with one sparse config, logging density and output error (and, with
    ``prefill`` settings, the prefill's; a config of prefill maskers only decodes densely, its
    masker list None as a study file's)."""
    metrics = study.executor.enabled_metrics
    if metrics != "all":
        wanted = [*(metrics or []), DENSITY_METRIC, ERROR_METRIC]
        wanted += list(PREFILL_METRICS) if prefill else []
        metrics = list(dict.fromkeys(wanted))
    executor = replace(study.executor, enabled_metrics=metrics)
    decode = None if prefill and not maskers else maskers
    return replace(
        study,
        sparse_configs=[(name, decode)],
        dense_layers={name: layers},
        prefill={name: prefill} if prefill else {},
        executor=executor,
    )


def _runner(spec: ExperimentSpec) -> Any:
    from sparse_attention_hub.executor.protocol import WorkerSettings
    from sparse_attention_hub.executor.worker_cell import CellRunner

    ex = spec.executor
    key = (bool(ex.gpus), repr(ex.enabled_metrics), ex.max_records, ex.sampling_factor)
    if key not in _RUNNERS:
        settings = WorkerSettings(
            worker_index=0,
            gpu_id=0 if ex.gpus else None,  # the GPU Ray gave the trial
            num_threads=None,
            enabled_metrics=ex.enabled_metrics,
            max_records=ex.max_records,
            sampling_factor=ex.sampling_factor,
        )
        _RUNNERS.clear()
        _RUNNERS[key] = CellRunner(settings)
    return _RUNNERS[key]


def run_trial_cells(spec: ExperimentSpec) -> dict[str, Any]:
    """Run (or reuse) every cell of ``spec`` (one sparse config); the trial's figures."""
    from sparse_attention_hub.cell_store import COMPLETE, cell_status
    from sparse_attention_hub.executor.planning import drop_interrupted_writes, move_stale_cells
    from sparse_attention_hub.executor.protocol import CellTask
    from sparse_attention_hub.experiment.runner import make_executor

    executor = make_executor(spec, verbose=False)
    plan = executor.plan_matrix(**spec.matrix_kwargs())
    counts = {"ran": 0, "reused": 0, "failed": 0}
    for stub, status in plan:
        if status == COMPLETE:
            counts["reused"] += 1
            continue
        drop_interrupted_writes([stub])
        move_stale_cells([(stub, cell_status(stub.result_dir, stub.fingerprint))])
        outcome = _runner(spec).run(CellTask(stub))
        counts["ran" if outcome.success else "failed"] += 1
        if not outcome.success:
            log.warning("%s failed: %s", stub.cell_id, outcome.error_message)
    return {**cell_means([Path(stub.result_dir) for stub, _ in plan]), **counts}


def cell_means(cells: list[Path]) -> dict[str, Any]:
    """Means over complete cells of their decode and prefill densities, decode and prefill
    output errors and score (NaN unless every cell is complete and logged it)."""
    from sparse_attention_hub.cell_store import COMPLETE
    from sparse_attention_hub.executor.results import cell_row

    rows = [row for cell in cells if (row := cell_row(cell)) and row["status"] == COMPLETE]
    out: dict[str, Any] = {"cells": ";".join(str(c) for c in cells), "complete": len(rows)}
    for key, column in (
        ("output_error", "mean_output_error"),
        ("score", "overall_score"),
    ):
        values = [row[column] for row in rows if row.get(column) is not None]
        out[key] = sum(values) / len(values) if values and len(values) == len(cells) else math.nan
    done = [Path(row["result_dir"]) for row in rows]
    out.update(mean_phase_densities(done) if len(done) == len(cells) else _NO_DENSITY)
    return out


def tune_trainable(config: dict[str, Any], study: ExperimentSpec) -> dict[str, Any]:
    """The Ray Tune function trainable: ``config["trial"]`` is one row of the trial plan."""
    trial = config["trial"]
    spec = trial_spec(
        study, trial["config_name"], trial["maskers"], trial["dense_layers"], trial.get("prefill")
    )
    return run_trial_cells(spec)
