"""lm-eval's own command line with the model ``sah`` registered (``sah lm-eval``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from sparse_attention_hub.lm_eval import INSTALL_HINT, MODEL_NAME, register

logger = logging.getLogger(__name__)

#: lm-eval subcommands that take no model.
_NO_MODEL_COMMANDS = ("ls", "validate")
_MODEL_FLAGS = ("--model", "-m", "--config", "-C")


def with_default_model(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--model sah`` added when it names no model and no config file (and is
    not a listing, a validation or a help request)."""
    args = list(argv)
    if not args or args[0] in _NO_MODEL_COMMANDS or any(a in ("-h", "--help") for a in args):
        return args
    named = any(a in _MODEL_FLAGS or a.startswith(("--model=", "--config=")) for a in args)
    return args if named else [*args, "--model", MODEL_NAME]


def main(argv: Sequence[str] | None = None) -> int:
    """Run lm-eval's CLI on ``argv`` (default: ``sys.argv[1:]``); returns its exit code."""
    args = with_default_model(sys.argv[1:] if argv is None else argv)
    try:
        register()
    except ImportError:
        sys.stderr.write(f"sah lm-eval: {INSTALL_HINT}\n")
        return 2
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm-eval", *args]
    try:
        cli_evaluate()
    except SystemExit as exc:  # argparse errors and --help
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0
