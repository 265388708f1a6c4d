"""``sah lm-eval ARGS``: lm-eval's own command line with the sparse-attention model ``sah``."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_lm_eval(args: argparse.Namespace) -> int:
    from sparse_attention_hub.lm_eval.cli import main

    return main(args.lm_eval_args)


def add_parser(sub: Any) -> None:
    """Register ``sah lm-eval`` on the subparsers action ``sub``; every argument after it goes
    to lm-eval unchanged (``sah lm-eval --help`` is lm-eval's help)."""
    p_lm = sub.add_parser(
        "lm-eval",
        add_help=False,
        prefix_chars="\x00",  # no option of its own: "--model ..." is lm-eval's, not argparse's
        help="run lm-evaluation-harness with the model 'sah' (sparse attention); "
        "all lm-eval flags pass through",
        description="lm-eval's command line with --model sah registered (and the default).",
    )
    p_lm.add_argument("lm_eval_args", nargs=argparse.REMAINDER)
    p_lm.set_defaults(func=_cmd_lm_eval)
