"""``sah convert hashattention``: a published HashAttention pickle to safetensors."""

from __future__ import annotations

import argparse
from typing import Any

from sparse_attention_hub.cli.common import add_quiet, write


def _cmd_convert_hashattention(args: argparse.Namespace) -> int:
    from sparse_attention_hub.sparse_attention.maskers.hashattention_convert import (
        convert_pickle,
    )

    weights = convert_pickle(args.source, args.out)
    write(f"wrote HashAttention weights for {len(weights)} layers to {args.out}")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sah convert`` (with the ``hashattention`` format) on ``sub``."""
    p_convert = sub.add_parser("convert", help="convert a published artefact (hashattention)")
    formats = p_convert.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p_hat = formats.add_parser(
        "hashattention",
        help="published hash weights (.pkl or official .pt) to .safetensors",
        description="Read published HashAttention weights, a pickle in the reference "
        "framework's layout (read with a restricted unpickler that builds only tensors, arrays "
        "and plain containers and refuses any other global, so the file runs no code) or an "
        "official .pt checkpoint (xAlg-ai/HashAttention-1.0, read with torch.load(weights_only="
        "True)), and write them as safetensors, which the hashattention masker reads without "
        "allow_pickle.",
    )
    p_hat.add_argument("source", help="the .pkl or .pt file")
    p_hat.add_argument("--out", required=True, help="the .safetensors file to write")
    add_quiet(p_hat)
    p_hat.set_defaults(func=_cmd_convert_hashattention)
