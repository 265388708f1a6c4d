"""``sah tune``: search each method's parameters for realized densities (on Ray Tune)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Any

from sparse_attention_hub.cli.common import add_quiet, result_dir_arg, write


def add_parser(sub: Any) -> None:
    """Register ``sah tune`` on the subparsers action ``sub``."""
    p = sub.add_parser(
        "tune",
        help="tune each method's parameters for target realized densities (Ray Tune)",
        description="Run the trials of a tune file (a study plus a search: section) on Ray "
        "Tune, each trial a cell of the cell store (a rerun reuses finished trials), and write "
        "tuned.yaml (one config per method and target), trials.csv and tune.png.",
    )
    p.add_argument("tune_file", help="the tune file (a study with a search: section)")
    p.add_argument("--result-dir", type=result_dir_arg, help="overrides result_dir of the file")
    p.add_argument(
        "--address",
        help='the Ray cluster: "auto", "host:port" or "local"; default: the file\'s '
        "executor.address, else a local Ray instance",
    )
    add_quiet(p)
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    from sparse_attention_hub.executor.lock import BaseDirLocked
    from sparse_attention_hub.executor.preflight import PreflightError
    from sparse_attention_hub.experiment.tune import load_tune, run_tune
    from sparse_attention_hub.experiment.tune.density import realized_density
    from sparse_attention_hub.experiment.tune.outputs import tuned_name, write_outputs

    spec = load_tune(args.tune_file)
    if args.result_dir is not None:
        study = spec.study.with_overrides(result_dir=args.result_dir)
        spec = replace(spec, study=study, raw_study={**spec.raw_study})
    result_dir = spec.study.result_dir
    raw = {**spec.raw_study, "result_dir": os.path.join(result_dir, "tuned")}
    spec = replace(spec, raw_study=raw)
    address = args.address or spec.study.executor.address
    try:
        outcome = run_tune(spec, address=address)
    except PreflightError as exc:  # the list is the message: one item per line
        sys.stderr.write(f"sah: error: {spec.study.source}: {exc}\n")
        return 2
    except BaseDirLocked as exc:  # another sah tune or sah run on the same result_dir
        raise ValueError(f"{spec.study.source}: {exc}") from exc
    paths = write_outputs(result_dir, spec, outcome)
    write(
        f"sah tune: {len({r['config_name'] for r in outcome.rows})} trials "
        f"({outcome.count('ran')} cells ran, {outcome.count('reused')} reused, "
        f"{outcome.count('failed')} failed); rejected points: {sum(outcome.rejected.values())}"
    )
    for method in spec.search.methods:
        for target in spec.search.targets:
            row = outcome.chosen.get((method.name, target))
            text = (
                "no trial within tolerance"
                if row is None
                else f"{row['config_name']} {method.density} density "
                f"{realized_density(row, method.density):.4g} "
                f"objective {row['objective']:.4g} {row['params']}"
            )
            write(f"  {tuned_name(method.name, target)}: {text}")
    write(f"wrote {paths['tuned']}, {paths['trials']}, {paths['figure']}")
    return 0
