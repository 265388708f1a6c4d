"""The ``sah`` command.

Each subcommand imports what it needs when it runs, so ``sah --version`` stays fast and
importing this module has no side effects.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sparse_attention_hub import __version__


def _cmd_list(args: argparse.Namespace) -> int:
    if args.what == "maskers":
        from sparse_attention_hub.sparse_attention.maskers import describe_maskers

        rows = describe_maskers()
    else:
        from sparse_attention_hub.benchmark import describe_benchmarks

        rows = describe_benchmarks()
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, params, description in rows:
        sys.stdout.write(f"{name:<{width}}  {description}\n")
        if params:
            sys.stdout.write(f"{'':<{width}}    {params}\n")
    return 0


def _cmd_make_tiny_model(args: argparse.Namespace) -> int:
    from sparse_attention_hub.testing import make_tiny_model

    path = make_tiny_model(args.directory, arch=args.arch, seed=args.seed)
    sys.stdout.write(f"wrote a tiny {args.arch} model to {path}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sah`` (also used by ``python -m sparse_attention_hub``)."""
    parser = argparse.ArgumentParser(
        prog="sah", description="sparse-attention-hub: simulated sparse attention studies."
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
        logging.getLogger("sparse_attention_hub.cli").error("%s", exc)
        return 2
