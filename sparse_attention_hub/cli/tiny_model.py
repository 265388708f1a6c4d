"""``sah make-tiny-model``."""

from __future__ import annotations

import argparse
from typing import Any

from sparse_attention_hub.cli.common import write


def _cmd_make_tiny_model(args: argparse.Namespace) -> int:
    if not args.directory.strip():  # Path("") is the working directory: never write there
        raise ValueError(
            f"make-tiny-model: DIRECTORY {args.directory!r} is empty; give the folder to write "
            "the model into (e.g. tiny_models/llama)"
        )
    if args.trained:
        return _train(args)
    from sparse_attention_hub.testing import make_tiny_model

    try:
        path = make_tiny_model(args.directory, arch=args.arch, seed=args.seed)
    except OSError as exc:  # a file in the way, no permission, ...
        raise ValueError(
            f"{args.directory}: cannot write a model there ({exc.strerror or exc})"
        ) from exc
    write(f"wrote a tiny {args.arch} model to {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    """``--trained``: train the needle-retrieval llama (minutes of CPU) into the directory."""
    if args.arch != "llama":
        raise ValueError(f"--trained trains a llama; --arch {args.arch} does not apply")
    from dataclasses import replace

    from sparse_attention_hub.testing.train_retrieval_model import (
        DEFAULT_PHASES,
        train_retrieval_model,
    )

    # --seed shifts every phase's seed (0: the shipped model's recipe)
    phases = tuple(replace(phase, seed=phase.seed + args.seed) for phase in DEFAULT_PHASES)
    command = f"sah make-tiny-model {args.directory} --trained --seed {args.seed}"
    try:
        path = train_retrieval_model(args.directory, phases, command=command)
    except OSError as exc:
        raise ValueError(
            f"{args.directory}: cannot write a model there ({exc.strerror or exc})"
        ) from exc
    write(f"wrote the trained tiny llama model to {path} (see its training.json)")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sah make-tiny-model`` on the subparsers action ``sub``."""
    p_tiny = sub.add_parser("make-tiny-model", help="write a tiny random model and tokenizer")
    p_tiny.add_argument("directory")
    p_tiny.add_argument("--arch", default="llama", choices=["llama", "qwen2", "mistral"])
    p_tiny.add_argument("--seed", type=int, default=0)
    p_tiny.add_argument(
        "--trained",
        action="store_true",
        help="train the needle-retrieval llama the demo uses (tens of CPU minutes) instead",
    )
    p_tiny.set_defaults(func=_cmd_make_tiny_model)
