"""``sah compare``: two results directories side by side, with paired differences."""

from __future__ import annotations

import argparse
from typing import Any

from sparse_attention_hub.cli.common import add_quiet, count_arg, write


def _cmd_compare(args: argparse.Namespace) -> int:
    from sparse_attention_hub.experiment.compare import compare_dirs
    from sparse_attention_hub.experiment.compare_render import render_comparison

    comparison = compare_dirs(
        args.dir_a, args.dir_b, match=args.match, resamples=args.resamples, seed=args.seed
    )
    write(render_comparison(comparison, args.format))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sah compare`` on the subparsers action ``sub``."""
    p = sub.add_parser(
        "compare",
        help="compare two results directories (paired Δ with CIs)",
        description="Cells present in both directories side by side, with the paired "
        "difference B − A over the rows both scored and its bootstrap 95%% CI; cells found in "
        "one directory only are listed.",
    )
    p.add_argument("dir_a", metavar="DIR_A")
    p.add_argument("dir_b", metavar="DIR_B")
    p.add_argument("--format", default="table", choices=["table", "markdown", "csv", "json"])
    p.add_argument(
        "--match",
        default="auto",
        choices=["auto", "cell", "config"],
        help="cell: same model, config and benchmark; config: same config and benchmark, "
        "one model per directory (two models); auto: config when each directory holds one "
        "model and they differ, else cell",
    )
    p.add_argument(
        "--resamples",
        type=count_arg,
        default=1000,
        help="bootstrap resamples of the confidence intervals (0: no intervals)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    add_quiet(p)
    p.set_defaults(func=_cmd_compare)
