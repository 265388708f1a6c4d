"""What every ``sah`` subcommand shares: output, exit codes and argument types."""

from __future__ import annotations

import argparse
import sys

EXIT_DISK = 3  # the results disk is full, read-only or failing: free space, run again


def write(text: str) -> None:
    """Print one block of output (a newline is added when missing) and flush it."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


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


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``-q`` after the subcommand too (``sah run x.yaml -q``); SUPPRESS keeps ``sah -q run``."""
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="show warnings only"
    )


def result_dir_arg(text: str) -> str:
    """A --result-dir value: an empty one would write into the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"--result-dir must name a directory, got {text!r} (use . for the current one)"
        )
    return text


def count_arg(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {value}")
    return value


def positive_int_arg(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value
