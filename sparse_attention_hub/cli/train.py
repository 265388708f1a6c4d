"""``sah train hashattention``: learn HashAttention's hash MLPs for a model (offline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sparse_attention_hub.cli.common import add_quiet, count_arg, positive_int_arg, write


def _read_texts(path: str | None) -> list[str] | None:
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"--texts: no such file: {path}")
    text = file.read_text(encoding="utf-8")
    if not text.strip():
        raise ValueError(f"--texts: {path} is empty")
    return [text]


def _cmd_train_hashattention(args: argparse.Namespace) -> int:
    from sparse_attention_hub.offline.hashattention_training import (
        HashAttentionTraining,
        train_to_file,
    )

    settings = HashAttentionTraining(
        steps=args.steps,
        seed=args.seed,
        sink_size=args.sink,
        local_size=args.local,
        top_k=args.top_k,
        sequence_length=args.sequence_length,
    )
    texts = _read_texts(args.texts)  # before the model loads: bad input fails fast
    result = train_to_file(args.model, args.out, texts, settings, device=args.device)
    write(
        f"wrote HashAttention weights for {len(result.weights)} layers to {args.out} "
        f"(final loss {result.losses[-1]:.4f})"
    )
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sah train`` (with the ``hashattention`` method) on ``sub``."""
    p_train = sub.add_parser("train", help="train a masker's artefact (hashattention)")
    methods = p_train.add_subparsers(dest="method", metavar="METHOD", required=True)
    p_hat = methods.add_parser(
        "hashattention",
        help="learn the hash MLPs of HashAttention for MODEL (writes safetensors)",
        description="Train HashAttention's per-head query/key MLPs on a frozen model with the "
        "official objective (top-32 keys beyond sink and local, weighted BCE, Adam 1e-3).",
    )
    p_hat.add_argument("model", help="a model directory or hub id")
    p_hat.add_argument("--out", required=True, help="the .safetensors file to write")
    p_hat.add_argument("--texts", help="a UTF-8 text file (default: a built-in text)")
    p_hat.add_argument("--steps", type=positive_int_arg, default=300)
    p_hat.add_argument("--seed", type=count_arg, default=0)
    p_hat.add_argument("--sink", type=count_arg, default=128, help="sink keys (not targets)")
    p_hat.add_argument("--local", type=count_arg, default=128, help="local keys (not targets)")
    p_hat.add_argument("--top-k", type=positive_int_arg, default=32, help="target keys per query")
    p_hat.add_argument("--sequence-length", type=positive_int_arg, default=1024)
    p_hat.add_argument("--device", default="cpu")
    add_quiet(p_hat)
    p_hat.set_defaults(func=_cmd_train_hashattention)
