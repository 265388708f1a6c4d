"""``sah report``: the results table of a results directory (of each, for a folder of runs)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, NamedTuple

from sparse_attention_hub.cli.common import add_quiet, count_arg, write
from sparse_attention_hub.cli.output_paths import disk_full_exit, is_disk_full
from sparse_attention_hub.cli.report_paths import check_output_paths, join_reports


class ReportText(NamedTuple):
    """The rendered report of one results directory, its cell count, and the error of a full
    disk that kept results.csv from being rewritten (None when it was, or when the tree is
    read-only: that only warns)."""

    text: str
    cells: int
    unwritten: OSError | None = None


def report_text(
    result_dir: str,
    fmt: str,
    config_order: list[str] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    extra_columns: tuple[str, ...] = (),
) -> ReportText:
    """Rebuild results.csv under ``result_dir`` (with confidence intervals unless
    ``resamples`` is 0) and render the report. Without ``config_order`` the configs follow
    the order of the last run (execution_summary.json)."""
    from sparse_attention_hub.executor.results import build_results_table
    from sparse_attention_hub.experiment.cell_stats import add_intervals
    from sparse_attention_hub.experiment.report import recorded_config_order, render_report

    table = build_results_table(result_dir)  # reads every cell once (micro metrics included)
    if config_order is None:
        config_order = recorded_config_order(result_dir)
    if not table.empty and resamples:
        table = add_intervals(table, resamples, seed)
    unwritten = _write_results_csv(table, result_dir) if not table.empty else None
    text = render_report(table, fmt, config_order, extra_columns)
    return ReportText(text, len(table), unwritten)


def _write_results_csv(table: Any, result_dir: str) -> OSError | None:
    """Write ``table`` as ``<result_dir>/results.csv`` atomically; the error when the disk is
    full (nothing half-written is left); a read-only tree only warns."""
    from sparse_attention_hub.cell_store.atomic import write_atomic
    from sparse_attention_hub.executor.results import RESULTS_CSV

    target = Path(result_dir) / RESULTS_CSV
    try:
        write_atomic(target, lambda handle: table.to_csv(handle, index=False))
    except OSError as exc:
        if is_disk_full(exc):
            return exc
        logging.getLogger("sparse_attention_hub.cli").warning(
            "could not write %s (%s); the report below is complete", target, exc.strerror or exc
        )
    return None


def _cmd_report(args: argparse.Namespace) -> int:
    try:
        return _report(args)
    except OSError as exc:  # a full disk: one line, exit 3, no partial file
        if not is_disk_full(exc):
            raise
        return disk_full_exit(exc)


def _report(args: argparse.Namespace) -> int:
    import time

    from sparse_attention_hub.executor.results import results_dirs
    from sparse_attention_hub.experiment.report_columns import parse_columns

    extra = parse_columns(args.columns) if args.columns is not None else ()
    if not Path(args.directory).is_dir():
        what = "not a directory" if Path(args.directory).exists() else "no such results directory"
        raise ValueError(f"{args.directory}: {what}")
    if args.out is not None and not args.plot:
        raise ValueError("--out names the folder of the figures: give --plot too")
    check_output_paths(args.html, args.out)
    runs = results_dirs(args.directory)
    if not runs:
        raise ValueError(
            f"{args.directory}: no result cells found (expected <model>/<config>/<benchmark>/)"
        )
    if len(runs) > 1 and (args.plot or args.html):
        raise ValueError(
            f"{args.directory} holds {len(runs)} results directories "
            f"({', '.join(str(run) for run in runs)}); --plot and --html draw one run: "
            "pass one of them"
        )
    started = time.time()
    reports = [  # each run alone: its own table, dense baseline and results.csv
        (str(run), report_text(str(run), args.format, None, args.resamples, args.seed, extra))
        for run in runs
    ]
    parts = [(run, report.text) for run, report in reports]
    headed = len(runs) > 1 or runs[0] != Path(args.directory)
    write(join_reports(parts, args.format) if headed else parts[0][1])
    unwritten = [report.unwritten for _, report in reports if report.unwritten is not None]
    if unwritten:  # the report is shown; results.csv could not be rewritten
        return disk_full_exit(unwritten[0])
    if args.plot or args.html:
        lines = _write_outputs(args, runs[0], started)
        if args.format in ("json", "csv"):  # stdout stays one parseable document
            sys.stderr.write(lines + "\n")
        else:
            write(lines)
    return 0


def _write_outputs(args: argparse.Namespace, run: Path, started: float) -> str:
    """``--plot`` figures and the ``--html`` report of the results directory ``run``; the
    lines naming the files written. Each file is written atomically: a full disk raises its
    OSError and leaves no partial file; a path that cannot be written is a ValueError
    naming it as the user gave it."""
    from sparse_attention_hub.experiment import report_outputs as outputs
    from sparse_attention_hub.experiment.report import recorded_config_order

    table = outputs.load_report_table(run, started, args.resamples, args.seed)
    order = recorded_config_order(run)
    plot_dir = (args.out or str(Path(run) / outputs.FIGURES_DIR)) if args.plot else None
    try:
        paths, page = outputs.write_outputs(run, table, plot_dir, args.html, order)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        if args.html is not None and exc.filename == str(Path(args.html)):
            raise ValueError(f"--html {args.html}: {exc.strerror or exc}") from exc
        flag = f"--out {args.out}: " if args.out else ""
        raise ValueError(
            f"{flag}could not write {exc.filename or plot_dir}: {exc.strerror or exc}"
        ) from exc
    lines = [f"figure: {path}" for path in paths]
    if args.plot and not paths:
        lines.append("no figures: no complete cell with a score")
    if page is not None:
        lines.append(f"html report: {page}")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    """Register ``sah report`` on the subparsers action ``sub``."""
    p_report = sub.add_parser("report", help="print the results table of a results directory")
    p_report.add_argument("directory")
    p_report.add_argument("--format", default="table", choices=["table", "markdown", "csv", "json"])
    p_report.add_argument(
        "--resamples",
        type=count_arg,
        default=1000,
        help="bootstrap resamples of the confidence intervals (0: no intervals)",
    )
    p_report.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p_report.add_argument(
        "--columns",
        metavar="A,B,...",
        help="extra columns: requests, seconds, context_prefill_seconds, "
        "question_decode_seconds, tokens_per_second, peak_gpu_memory_mb, peak_rss_mb",
    )
    p_report.add_argument(
        "--plot",
        action="store_true",
        help="also write the figures (quality vs density, per layer, per task) as PNG and SVG",
    )
    p_report.add_argument(
        "--out", metavar="FOLDER", help="folder of the --plot figures (default: DIR/figures)"
    )
    p_report.add_argument(
        "--html", metavar="FILE", help="also write a self-contained HTML report to FILE"
    )
    add_quiet(p_report)
    p_report.set_defaults(func=_cmd_report)
