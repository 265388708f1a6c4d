"""``sah run`` and ``sah demo``: run a study, then print its table."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from sparse_attention_hub.cli.common import (
    EXIT_DISK,
    add_quiet,
    one_line,
    positive_int_arg,
    result_dir_arg,
    write,
)
from sparse_attention_hub.cli.report import report_text


def _load_spec(path: str, args: argparse.Namespace) -> Any:
    from sparse_attention_hub.experiment import load_experiment, parse_gpus
    from sparse_attention_hub.experiment.checks import Source

    spec = load_experiment(path)
    gpus = None if args.gpus is None else parse_gpus(args.gpus, "", Source("--gpus"))
    backend, address = getattr(args, "backend", None), getattr(args, "address", None)
    if address is not None and (backend or spec.executor.backend) != "ray":
        raise ValueError(f"{path}: --address is a Ray address: add --backend ray")
    return spec.with_overrides(
        result_dir=args.result_dir,
        gpus=gpus,
        max_concurrent_runs=args.max_concurrent_runs,
        backend=backend,
        address=address,
    )


def _run_and_report(spec: Any, args: argparse.Namespace, what: str) -> int:
    from sparse_attention_hub.cell_store import disk_error_line
    from sparse_attention_hub.experiment.runner import run_experiment

    start = time.monotonic()
    outcome = run_experiment(spec, verbose=not args.quiet)
    elapsed = time.monotonic() - start
    if outcome.reused == outcome.total:
        write(
            f"{what}: all {outcome.total} cells were already complete in {spec.result_dir}; reusing them"
        )
    elif outcome.reused:
        write(
            f"{what}: reusing {outcome.reused} finished cell(s) of {outcome.total} in {spec.result_dir}"
        )
    report = report_text(spec.result_dir, "table", [name for name, _ in spec.sparse_configs])
    write(report.text)
    write(f"{what}: {outcome.summary_line()} in {elapsed:.1f} s")
    write(f"results: {spec.result_dir} (results.csv, execution_summary.json, one folder per cell)")
    disk_error = getattr(outcome.results, "disk_error", None)
    if not disk_error and report.unwritten is not None:  # results.csv: the disk filled up
        disk_error = disk_error_line(report.unwritten)
    if outcome.failed and not disk_error:
        write(f"{what}: {len(outcome.failed)} cell(s) failed; see error.txt in:")
        for cell in outcome.failed:
            write(f"  {cell}")
    if outcome.interrupted:
        write(f"{what}: interrupted; run the same command again to resume")
        return 130
    if disk_error:
        sys.stderr.write(f"sah: error: {spec.result_dir}: {disk_error}\n")
        return EXIT_DISK
    return 1 if outcome.failed else 0


def execute(spec: Any, args: argparse.Namespace, what: str) -> int:
    """``--dry-run``: print the plan; otherwise run. Executor input errors name the file."""
    from sparse_attention_hub.executor.config import WorkerStartupError
    from sparse_attention_hub.executor.lock import BaseDirLocked
    from sparse_attention_hub.executor.preflight import PreflightError
    from sparse_attention_hub.experiment import ExperimentError

    try:
        if args.dry_run:
            return _dry_run(spec)
        return _run_and_report(spec, args, what)
    except ExperimentError:
        raise
    except PreflightError as exc:  # the list is the message: one item per line
        sys.stderr.write(f"sah: error: {spec.source}: {exc}\n")
        return 2
    except BaseDirLocked as exc:  # another run on the same result_dir
        raise ValueError(f"{spec.source}: {exc}") from exc
    except WorkerStartupError as exc:  # its summary is written; nothing more ran
        sys.stderr.write(
            f"sah: error: {spec.source}: {one_line(str(exc))} "
            f"(see {spec.result_dir}/execution_summary.json)\n"
        )
        return 1
    except ValueError as exc:
        hint = ""
        if spec.executor.gpus and "gpu" in str(exc).lower():
            hint = " (on a machine without those GPUs: --gpus cpu, or executor.gpus: cpu)"
        raise ValueError(f"{spec.source}: {exc}{hint}") from exc
    except OSError as exc:  # e.g. a result_dir that cannot be created or written
        from sparse_attention_hub.cell_store import disk_error_line, is_disk_error

        if is_disk_error(exc):  # not bad input: the disk is full (or read-only, failing)
            sys.stderr.write(f"sah: error: {spec.result_dir}: {disk_error_line(exc)}\n")
            return EXIT_DISK
        raise ValueError(
            f"{spec.source}: result_dir {spec.result_dir}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else "")
        ) from exc


def _dry_run_artefacts(plan: list[tuple[Any, str]]) -> Any:
    """Print the check of the artefact files the cells read (if any); return its report."""
    from sparse_attention_hub.executor.artefact_check import check_artefacts, format_artefacts

    report = check_artefacts([stub for stub, _ in plan])
    if report.lines:
        write("\n" + format_artefacts(report))
    return report


def _dry_run(spec: Any) -> int:
    """Print the plan, then the preflight; GPUs this machine does not show are a note here
    (the plan is made without them), while the run itself refuses them."""
    from sparse_attention_hub.experiment.runner import (
        format_plan,
        missing_gpus_note,
        plan_experiment,
    )

    note = missing_gpus_note(spec)
    planned = spec.with_overrides(gpus=[]) if note else spec
    plan = plan_experiment(planned)
    write(format_plan(spec, plan))
    if note:
        write(note)
    artefacts = _dry_run_artefacts(plan)
    if spec.executor.preflight:
        _dry_run_preflight(planned, plan)
    artefacts.raise_if_problems()
    return 0


def _dry_run_preflight(spec: Any, plan: list[tuple[Any, str]]) -> None:
    """Print the preflight report after the plan; raise PreflightError if something is missing
    or a setting does not fit a model."""
    from sparse_attention_hub.experiment.runner import format_preflight, preflight_experiment

    report = preflight_experiment(spec, plan=plan)
    write("\n" + format_preflight(report))
    report.raise_if_problems()


_STUDY_FLAGS = ("--model", "--config", "--benchmark", "--limit", "--print-yaml")


def _study_flags_given(args: argparse.Namespace) -> list[str]:
    values = (args.model, args.config, args.benchmark, args.limit, args.print_yaml or None)
    return [flag for flag, value in zip(_STUDY_FLAGS, values, strict=True) if value is not None]


def _cmd_run(args: argparse.Namespace) -> int:
    given = _study_flags_given(args)
    if args.experiment is not None:
        if given:
            raise ValueError(
                f"{args.experiment}: {', '.join(given)} describe a study without a file; give "
                "either a study file or --model/--config/--benchmark/--limit"
            )
        return execute(_load_spec(args.experiment, args), args, "run")
    if not given:
        raise ValueError(
            "sah run needs a study file (sah run study.yaml) or flags: "
            "--model M --benchmark B [--config C] [--limit N] (sah run --help)"
        )
    from sparse_attention_hub.experiment.from_flags import StudyFlags, spec_from_flags

    flags = StudyFlags(
        models=args.model or [],
        benchmarks=args.benchmark or [],
        configs=args.config or ["dense"],
        limit=args.limit,
        result_dir=args.result_dir,
        gpus=args.gpus,
        max_concurrent_runs=args.max_concurrent_runs,
        backend=args.backend,
        address=args.address,
    )
    spec, text = spec_from_flags(flags)
    if args.print_yaml:
        write(text)
        return 0
    return execute(spec, args, "run")


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    from sparse_attention_hub.experiment.demo import demo_spec

    # The demo is offline by design: never wait on the hub (workers inherit this).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    started = time.time()
    spec = demo_spec(result_dir=args.result_dir)
    code = execute(spec, args, "demo")
    if code == 0 and not args.dry_run:
        _demo_figure(spec.result_dir, started)
    return code


def _demo_figure(result_dir: str, started: float) -> None:
    """Draw the demo's figures under ``<result_dir>/figures`` and print the path of its
    quality-vs-density figure; the results are saved already, so a failure only warns."""
    from pathlib import Path

    from sparse_attention_hub.experiment import report_outputs as outputs
    from sparse_attention_hub.experiment.report import recorded_config_order

    try:
        table = outputs.load_report_table(result_dir, started)
        paths, _ = outputs.write_outputs(
            result_dir,
            table,
            Path(result_dir) / outputs.FIGURES_DIR,
            config_order=recorded_config_order(result_dir),
        )
    except (OSError, ValueError) as exc:
        logging.getLogger(__name__).warning("could not draw the demo's figures: %s", exc)
        return
    for path in paths:
        if path.name == "quality_vs_density.png":
            write(
                f"figure: {path} (all figures and an HTML report: "
                f"sah report {result_dir} --plot --html report.html)"
            )


def add_run_parser(sub: Any) -> None:
    """Register ``sah run`` on the subparsers action ``sub``."""
    p_run = sub.add_parser(
        "run",
        help="run the study an experiment YAML file (or --model/--config/--benchmark) describes",
        description="Run a study: an experiment YAML file, or one line of flags: "
        "sah run --model M --config quest --benchmark synthetic_ruler:4096 --limit 20. "
        "Repeated --model/--config/--benchmark make a matrix; --print-yaml writes the "
        "equivalent file (the same cells).",
    )
    p_run.add_argument(
        "experiment", nargs="?", help="the experiment file (see examples/); or use --model ..."
    )
    _add_study_flags(p_run)
    p_run.add_argument("--result-dir", type=result_dir_arg, help="overrides result_dir of the file")
    p_run.add_argument("--gpus", help='GPU ids like "0,1", or "cpu"; overrides executor.gpus')
    p_run.add_argument(
        "--max-concurrent-runs",
        type=positive_int_arg,
        help="overrides executor.max_concurrent_runs",
    )
    p_run.add_argument(
        "--backend",
        choices=("local", "ray"),
        help="where workers run: local processes or Ray actors; overrides executor.backend",
    )
    p_run.add_argument(
        "--address",
        help='the Ray cluster: "auto" (the one started with ray start), "host:port" or '
        '"local" (a private instance); overrides executor.address',
    )
    p_run.add_argument(
        "--dry-run", action="store_true", help="print each cell and its status; run nothing"
    )
    add_quiet(p_run)
    p_run.set_defaults(func=_cmd_run)


def _add_study_flags(p_run: argparse.ArgumentParser) -> None:
    """The one-line study (no YAML file): ``experiment/from_flags.py``."""
    p_run.add_argument(
        "--model",
        action="append",
        metavar="M",
        help="a hub id, a model folder, tiny:llama|qwen2|mistral or tiny:trained (repeatable)",
    )
    p_run.add_argument(
        "--config",
        action="append",
        metavar="C",
        help="dense, a recipe (quest or quest:heavy_size=0.05,page_size=32) or a JSON masker "
        "list, optionally NAME=...; repeatable (default: dense)",
    )
    p_run.add_argument(
        "--benchmark",
        action="append",
        metavar="B",
        help="NAME or NAME:SUBSET[,SUBSET...], e.g. synthetic_ruler:4096 (repeatable)",
    )
    p_run.add_argument(
        "--limit",
        type=positive_int_arg,
        metavar="N",
        help="at most N requests per cell (request_kwargs.max_requests)",
    )
    p_run.add_argument(
        "--print-yaml",
        action="store_true",
        help="write the flags' study as a YAML file to stdout; run nothing",
    )


def add_demo_parser(sub: Any) -> None:
    """Register ``sah demo`` on the subparsers action ``sub``."""
    p_demo = sub.add_parser("demo", help="a small offline study on CPU with a tiny model")
    p_demo.add_argument(
        "--result-dir", type=result_dir_arg, default=None, help="default: ./demo_results"
    )
    p_demo.add_argument("--dry-run", action="store_true", help="print the cells; run nothing")
    add_quiet(p_demo)
    p_demo.set_defaults(func=_cmd_demo)
