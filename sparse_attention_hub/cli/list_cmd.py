"""``sah list maskers|prefill|benchmarks|recipes``."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _cmd_list(args: argparse.Namespace) -> int:
    if args.what == "maskers":
        from sparse_attention_hub.sparse_attention.maskers import describe_maskers

        rows = describe_maskers()
    elif args.what == "prefill":
        from sparse_attention_hub.sparse_attention.prefill.registry import (
            describe_prefill_maskers,
        )

        rows = describe_prefill_maskers()
    elif args.what == "recipes":
        from sparse_attention_hub.sparse_attention.recipes import describe_recipes

        rows = describe_recipes()
    else:
        from sparse_attention_hub.benchmarks import describe_benchmarks

        rows = describe_benchmarks()
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, params, description in rows:
        sys.stdout.write(f"{name:<{width}}  {description}\n")
        for line in params.splitlines():
            sys.stdout.write(f"{'':<{width}}    {line}\n")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sah list`` on the subparsers action ``sub``."""
    p_list = sub.add_parser("list", help="list maskers, prefill maskers, benchmarks or recipes")
    p_list.add_argument("what", choices=["maskers", "prefill", "benchmarks", "recipes"])
    p_list.set_defaults(func=_cmd_list)
