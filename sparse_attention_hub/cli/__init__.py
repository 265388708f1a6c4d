"""The ``sah`` command.

One module per subcommand; each has an ``add_parser(sub)`` and imports what it needs when it
runs, so ``sah --version`` stays fast and importing this package has no side effects. A new
subcommand is a new module plus one line in ``_REGISTRARS``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from sparse_attention_hub import __version__
from sparse_attention_hub.cli import (
    calibrate,
    compare,
    convert,
    list_cmd,
    lm_eval_cmd,
    report,
    run,
    tiny_model,
    train,
    tune,
)
from sparse_attention_hub.cli.common import EXIT_DISK, one_line

__all__ = ["EXIT_DISK", "build_parser", "main", "one_line"]

# The order of ``sah --help``.
_REGISTRARS: tuple[Callable[[Any], None], ...] = (
    list_cmd.add_parser,
    tiny_model.add_parser,
    run.add_run_parser,
    report.add_parser,
    compare.add_parser,
    run.add_demo_parser,
    calibrate.add_parser,
    train.add_parser,
    tune.add_parser,
    convert.add_parser,
    lm_eval_cmd.add_parser,
)


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
    for register in _REGISTRARS:
        register(sub)
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
