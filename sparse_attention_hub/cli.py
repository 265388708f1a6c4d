"""The ``sah`` command.

Each subcommand imports what it needs when it runs, so ``sah --version`` stays fast and
importing this module has no side effects.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from sparse_attention_hub import __version__

EXIT_DISK = 3  # the results disk is full, read-only or failing: free space, run again


def _cmd_list(args: argparse.Namespace) -> int:
    if args.what == "maskers":
        from sparse_attention_hub.sparse_attention.maskers import describe_maskers

        rows = describe_maskers()
    else:
        from sparse_attention_hub.benchmarks import describe_benchmarks

        rows = describe_benchmarks()
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, params, description in rows:
        sys.stdout.write(f"{name:<{width}}  {description}\n")
        for line in params.splitlines():
            sys.stdout.write(f"{'':<{width}}    {line}\n")
    return 0


def _cmd_make_tiny_model(args: argparse.Namespace) -> int:
    from sparse_attention_hub.testing import make_tiny_model

    try:
        path = make_tiny_model(args.directory, arch=args.arch, seed=args.seed)
    except OSError as exc:  # a file in the way, no permission, ...
        raise ValueError(
            f"{args.directory}: cannot write a model there ({exc.strerror or exc})"
        ) from exc
    sys.stdout.write(f"wrote a tiny {args.arch} model to {path}\n")
    return 0


def _write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _load_spec(path: str, args: argparse.Namespace) -> Any:
    from sparse_attention_hub.experiment import load_experiment, parse_gpus
    from sparse_attention_hub.experiment.checks import Source

    spec = load_experiment(path)
    gpus = None if args.gpus is None else parse_gpus(args.gpus, "", Source("--gpus"))
    return spec.with_overrides(
        result_dir=args.result_dir, gpus=gpus, max_concurrent_runs=args.max_concurrent_runs
    )


def _report_text(
    result_dir: str,
    fmt: str,
    config_order: list[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[str, int]:
    """Rebuild results.csv under ``result_dir`` (with confidence intervals unless
    ``resamples`` is 0) and render the report; (text, cell count). Without ``config_order``
    the configs follow the order of the last run (execution_summary.json)."""
    from sparse_attention_hub.executor.results import build_results_table
    from sparse_attention_hub.experiment.cell_stats import add_intervals
    from sparse_attention_hub.experiment.report import recorded_config_order, render_report

    table = build_results_table(result_dir)  # reads every cell once (micro metrics included)
    if config_order is None:
        config_order = recorded_config_order(result_dir)
    if not table.empty and resamples:
        table = add_intervals(table, resamples, seed)
    if not table.empty:
        _write_results_csv(table, result_dir)
    return render_report(table, fmt, config_order), len(table)


def _write_results_csv(table: Any, result_dir: str) -> None:
    """Write ``table`` as ``<result_dir>/results.csv`` atomically; a read-only tree only warns."""
    from pathlib import Path

    from sparse_attention_hub.cell_store.atomic import write_atomic
    from sparse_attention_hub.executor.results import RESULTS_CSV

    target = Path(result_dir) / RESULTS_CSV
    try:
        write_atomic(target, lambda handle: table.to_csv(handle, index=False))
    except OSError as exc:
        from sparse_attention_hub.cell_store import is_disk_error

        if is_disk_error(exc):  # `sah run` ends with one line about the disk
            return
        logging.getLogger("sparse_attention_hub.cli").warning(
            "could not write %s (%s); the report below is complete", target, exc
        )


def _run_and_report(spec: Any, args: argparse.Namespace, what: str) -> int:
    from sparse_attention_hub.experiment.runner import run_experiment

    start = time.monotonic()
    outcome = run_experiment(spec, verbose=not args.quiet)
    elapsed = time.monotonic() - start
    if outcome.reused == outcome.total:
        _write(
            f"{what}: all {outcome.total} cells were already complete in {spec.result_dir}; reusing them"
        )
    elif outcome.reused:
        _write(
            f"{what}: reusing {outcome.reused} finished cell(s) of {outcome.total} in {spec.result_dir}"
        )
    text, _ = _report_text(spec.result_dir, "table", [name for name, _ in spec.sparse_configs])
    _write(text)
    _write(f"{what}: {outcome.summary_line()} in {elapsed:.1f} s")
    _write(f"results: {spec.result_dir} (results.csv, execution_summary.json, one folder per cell)")
    disk_error = getattr(outcome.results, "disk_error", None)
    if outcome.failed and not disk_error:
        _write(f"{what}: {len(outcome.failed)} cell(s) failed; see error.txt in:")
        for cell in outcome.failed:
            _write(f"  {cell}")
    if outcome.interrupted:
        _write(f"{what}: interrupted; run the same command again to resume")
        return 130
    if disk_error:
        sys.stderr.write(f"sah: error: {spec.result_dir}: {disk_error}\n")
        return EXIT_DISK
    return 1 if outcome.failed else 0


def _execute(spec: Any, args: argparse.Namespace, what: str) -> int:
    """``--dry-run``: print the plan; otherwise run. Executor input errors name the file."""
    from sparse_attention_hub.executor.config import WorkerStartupError
    from sparse_attention_hub.executor.lock import BaseDirLocked
    from sparse_attention_hub.executor.preflight import PreflightError
    from sparse_attention_hub.experiment import ExperimentError
    from sparse_attention_hub.experiment.runner import format_plan, plan_experiment

    try:
        if args.dry_run:
            _write(format_plan(spec, plan_experiment(spec)))
            if spec.executor.preflight:
                _dry_run_preflight(spec)
            return 0
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


def _dry_run_preflight(spec: Any) -> None:
    """Print the preflight report after the plan; raise PreflightError if something is missing."""
    from sparse_attention_hub.experiment.runner import format_preflight, preflight_experiment

    report = preflight_experiment(spec)
    _write("\n" + format_preflight(report))
    report.raise_if_problems()


def _cmd_run(args: argparse.Namespace) -> int:
    return _execute(_load_spec(args.experiment, args), args, "run")


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    if not Path(args.directory).is_dir():
        what = "not a directory" if Path(args.directory).exists() else "no such results directory"
        raise ValueError(f"{args.directory}: {what}")
    text, cells = _report_text(
        args.directory, args.format, resamples=args.resamples, seed=args.seed
    )
    if not cells:
        raise ValueError(
            f"{args.directory}: no result cells found (expected <model>/<config>/<benchmark>/)"
        )
    _write(text)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    from sparse_attention_hub.experiment.demo import demo_spec

    # The demo is offline by design: never wait on the hub (workers inherit this).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    return _execute(demo_spec(result_dir=args.result_dir), args, "demo")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sah`` (also used by ``python -m sparse_attention_hub``)."""
    parser = argparse.ArgumentParser(
        prog="sah",
        description="sparse-attention-hub: simulated sparse attention studies.",
        epilog="exit codes: 0 done, 1 some cell failed, 2 bad input, 3 disk full (or "
        "read-only), 130 interrupted (for 3 and 130, run the same command again to resume). "
        "Start with: sah demo",
        formatter_class=_WideHelp,
    )
    parser.add_argument("--version", action="version", version=f"sah {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="show warnings only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p_list = sub.add_parser("list", help="list maskers or benchmarks")
    p_list.add_argument("what", choices=["maskers", "benchmarks"])
    p_list.set_defaults(func=_cmd_list)

    p_tiny = sub.add_parser("make-tiny-model", help="write a tiny random model and tokenizer")
    p_tiny.add_argument("directory")
    p_tiny.add_argument("--arch", default="llama", choices=["llama", "qwen2", "mistral"])
    p_tiny.add_argument("--seed", type=int, default=0)
    p_tiny.set_defaults(func=_cmd_make_tiny_model)

    p_run = sub.add_parser("run", help="run the study an experiment YAML file describes")
    p_run.add_argument("experiment", help="the experiment file (see examples/)")
    p_run.add_argument("--result-dir", type=_result_dir, help="overrides result_dir of the file")
    p_run.add_argument("--gpus", help='GPU ids like "0,1", or "cpu"; overrides executor.gpus')
    p_run.add_argument(
        "--max-concurrent-runs", type=_positive_int, help="overrides executor.max_concurrent_runs"
    )
    p_run.add_argument(
        "--dry-run", action="store_true", help="print each cell and its status; run nothing"
    )
    _add_quiet(p_run)
    p_run.set_defaults(func=_cmd_run)

    p_report = sub.add_parser("report", help="print the results table of a results directory")
    p_report.add_argument("directory")
    p_report.add_argument("--format", default="table", choices=["table", "markdown", "csv", "json"])
    p_report.add_argument(
        "--resamples",
        type=_count,
        default=1000,
        help="bootstrap resamples of the confidence intervals (0: no intervals)",
    )
    p_report.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    _add_quiet(p_report)
    p_report.set_defaults(func=_cmd_report)

    p_demo = sub.add_parser("demo", help="a small offline study on CPU with a tiny model")
    p_demo.add_argument(
        "--result-dir", type=_result_dir, default=None, help="default: ./demo_results"
    )
    p_demo.add_argument("--dry-run", action="store_true", help="print the cells; run nothing")
    _add_quiet(p_demo)
    p_demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``sah``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as exc:
        sys.stderr.write(f"sah: error: {one_line(str(exc))}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("sah: interrupted\n")
        return 130


class _WideHelp(argparse.HelpFormatter):
    """Room for the longest command name, so each command's help stays on its line
    (argparse measures subcommand names one indent level short)."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            longest = max((len(name) for name in action.choices), default=0)
            needed = longest + self._current_indent + 2 * self._indent_increment
            self._action_max_length = max(self._action_max_length, needed)


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """``-q`` after the subcommand too (``sah run x.yaml -q``); SUPPRESS keeps ``sah -q run``."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="show warnings only"
    )


def one_line(message: str) -> str:
    """A multi-line error (e.g. the executor's list of problems) as one line."""
    lines = [line.strip().removeprefix("- ").strip() for line in message.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return "unknown error"
    head, rest = lines[0], lines[1:]
    if rest and head.endswith(":"):
        return f"{head} {'; '.join(rest)}"
    return "; ".join(lines)


def _result_dir(text: str) -> str:
    """A --result-dir value: an empty one would write into the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"--result-dir must name a directory, got {text!r} (use . for the current one)"
        )
    return text


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
