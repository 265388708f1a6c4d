"""Run an :class:`ExperimentSpec` through the BenchmarkExecutor (``sah run`` and ``sah demo``).

Library code: it logs and returns text; the CLI decides what to print.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store import STATUSES
from sparse_attention_hub.experiment.report import format_grid
from sparse_attention_hub.experiment.spec import ExperimentSpec

logger = logging.getLogger(__name__)

PLAN_STATUSES = STATUSES


@dataclass
class RunOutcome:
    """What ``run_experiment`` did: cell counts by planned status, the executor's results."""

    planned: dict[str, int]
    results: Any = None
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def reused(self) -> int:
        return self.planned.get("complete", 0)

    @property
    def total(self) -> int:
        return sum(self.planned.values())

    def summary_line(self) -> str:
        """``9 cells: 3 reused (already complete), 5 ran, 1 failed``."""
        ran = len(getattr(self.results, "individual_results", None) or [])
        parts = [f"{self.reused} reused (already complete)"] if self.reused else []
        stale = self.planned.get("stale", 0)
        if stale:
            parts.append(f"{stale} re-run because their config changed (old files in stale/)")
        parts.append(f"{ran} ran")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.interrupted:
            parts.append("interrupted")
        return f"{self.total} cells: " + ", ".join(parts)


def build_tiny_models(spec: ExperimentSpec) -> list[str]:
    """Build the tiny models the experiment lists (reusing finished ones); one note per model."""
    notes: list[str] = []
    for tiny, path in spec.tiny_models():
        from sparse_attention_hub.testing import copy_trained_model, make_tiny_model

        existed = (Path(path) / "config.json").exists()
        if tiny.trained:
            copy_trained_model(path)
            notes.append(f"{'reusing' if existed else 'copied'} the trained tiny model at {path}")
            continue
        make_tiny_model(path, arch=tiny.arch, seed=tiny.seed)
        notes.append(f"{'reusing' if existed else 'built'} tiny {tiny.arch} model at {path}")
    return notes


def make_executor(spec: ExperimentSpec, verbose: bool = True) -> Any:
    from sparse_attention_hub.executor import BenchmarkExecutor

    return BenchmarkExecutor(**spec.executor_kwargs(verbose=verbose))


def plan_experiment(spec: ExperimentSpec, executor: Any = None) -> list[tuple[Any, str]]:
    """``[(stub, status), ...]`` with a status of ``cell_store.STATUSES``; runs nothing."""
    executor = executor or make_executor(spec, verbose=False)
    return list(executor.plan_matrix(**spec.matrix_kwargs()))


def missing_gpus_note(spec: ExperimentSpec) -> str | None:
    """For ``--dry-run``: a note when ``executor.gpus`` names GPUs this machine does not show
    (a study written for a GPU server, checked on a laptop), else None. The run refuses them."""
    if not spec.executor.gpus:
        return None
    from sparse_attention_hub.executor.validation import visible_gpu_count

    count = visible_gpu_count()
    missing = [gpu for gpu in spec.executor.gpus if gpu >= count]
    if not missing:
        return None
    return (
        f"note: executor.gpus {list(spec.executor.gpus)}: GPU(s) {missing} are not visible on "
        f"this machine ({count} visible); the cells are listed all the same, but `sah run` "
        "without --dry-run refuses to start here (run it where the GPUs are, or with --gpus cpu)"
    )


def preflight_experiment(
    spec: ExperimentSpec, executor: Any = None, plan: list[tuple[Any, str]] | None = None
) -> Any:
    """The executor's preflight report for the study (``--dry-run``); tiny models not built
    yet are listed, not checked. Call after :func:`plan_experiment` (which validates); with
    its ``plan``, the settings are checked against each model's config too."""
    executor = executor or make_executor(spec, verbose=False)
    skip = {
        path: f"tiny {tiny.arch} model, built when the run starts"
        for tiny, path in spec.tiny_models()
        if not (Path(path) / "config.json").exists()
    }
    kwargs = spec.matrix_kwargs()
    return executor.preflight_matrix(
        kwargs["model_names"],
        kwargs["benchmark_configs"],
        kwargs["adapter_config"],
        skip,
        stubs=[stub for stub, _ in plan or []],
    )


def format_preflight(report: Any) -> str:
    """``preflight (0.4 s): every model and dataset is there`` and one line per item."""
    head = f"{len(report.problems)} missing" if report.problems else "every model and dataset found"
    lines = [f"preflight ({report.seconds:.1f} s): {head}"]
    notes = [f"  note: {note}" for note in getattr(report, "notes", [])]
    return "\n".join(lines + [f"  {line}" for line in report.lines] + notes)


def count_statuses(plan: list[tuple[Any, str]]) -> dict[str, int]:
    counts = Counter(status for _, status in plan)
    return {status: counts.get(status, 0) for status in (*PLAN_STATUSES, *sorted(counts))}


def describe_counts(counts: dict[str, int]) -> str:
    """``9 cells: 3 complete, 6 pending`` (zero counts left out)."""
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    total = sum(counts.values())
    return f"{total} cell{'s' if total != 1 else ''}: " + (", ".join(parts) or "none")


def format_plan(spec: ExperimentSpec, plan: list[tuple[Any, str]]) -> str:
    """The totals, then the expanded matrix: one line per cell with its status."""
    headers = ["model", "config", "benchmark", "status"]
    rows = []
    for stub, status in plan:
        bench = (
            stub.benchmark_name if stub.subset is None else f"{stub.benchmark_name}_{stub.subset}"
        )
        rows.append([stub.model_name, stub.sparse_config_name, bench, status])
    head = f"{spec.source}: {describe_counts(count_statuses(plan))} under {spec.result_dir}"
    return head + "\n" + format_grid(headers, rows, numeric_from=len(headers))


def run_experiment(spec: ExperimentSpec, verbose: bool = True) -> RunOutcome:
    """Plan, build tiny models, run the matrix. KeyboardInterrupt is caught and reported."""
    executor = make_executor(spec, verbose=verbose)
    for note in build_tiny_models(spec):  # first: a local model's cells are named by content
        logger.info("%s", note)
    plan = plan_experiment(spec, executor)
    outcome = RunOutcome(planned=count_statuses(plan))
    try:
        outcome.results = executor.run_benchmark_matrix(**spec.matrix_kwargs())
    except KeyboardInterrupt as exc:  # the executor's ExecutionInterrupted carries results
        outcome.interrupted = True
        outcome.results = getattr(exc, "results", None)
    for failure in getattr(outcome.results, "failed_executions", None) or []:
        stub = getattr(failure, "stub", None)
        outcome.failed.append(getattr(stub, "result_dir", None) or str(failure))
    outcome.interrupted = outcome.interrupted or bool(
        getattr(outcome.results, "interrupted", False)
    )
    return outcome
