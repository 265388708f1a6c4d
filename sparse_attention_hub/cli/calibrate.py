"""``sah calibrate double-sparsity MODEL --out FILE``: produce a masker's offline artefact."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sparse_attention_hub.cli.common import add_quiet, positive_int_arg, write
from sparse_attention_hub.cli.output_paths import check_output_file, disk_full_exit, is_disk_full


def _cmd_double_sparsity(args: argparse.Namespace) -> int:
    from sparse_attention_hub.offline.double_sparsity_calibration import (
        SELECTIONS,
        calibrate_double_sparsity,
    )

    check_output_file("--out", args.out, "channels.json")  # before the calibration runs
    texts = None
    if args.texts is not None:
        try:
            texts = [Path(args.texts).read_text(encoding="utf-8")]
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"--texts {args.texts!r}: cannot read it ({exc})") from exc
        if not texts[0].strip():
            raise ValueError(f"--texts {args.texts!r} is empty")
    selections = SELECTIONS if args.selection == "both" else (args.selection,)
    model_kwargs = {"dtype": args.dtype} if args.dtype else None
    try:
        path = calibrate_double_sparsity(
            args.model,
            args.out,
            texts=texts,
            num_tokens=args.num_tokens,
            selections=selections,
            device=args.device,
            model_kwargs=model_kwargs,
        )
    except OSError as exc:  # a model that cannot be loaded, an output that cannot be written
        if is_disk_full(exc):  # one line, exit 3, no partial file (it is written atomically)
            return disk_full_exit(exc)
        raise ValueError(str(exc)) from exc
    write(f"wrote Double Sparsity channels of {args.model} to {path}")
    return 0


def add_parser(sub: Any) -> None:
    """Register ``sah calibrate`` on the subparsers action ``sub``."""
    p_cal = sub.add_parser("calibrate", help="produce a masker's offline artefact")
    methods = p_cal.add_subparsers(dest="method", metavar="METHOD", required=True)
    p_ds = methods.add_parser(
        "double-sparsity",
        help="rank each head's channels for the double_sparsity masker",
        description="Rank every head's channels by the official Double Sparsity statistic "
        "(mean |q| before RoPE per 512-token block, summed) and write the channel file that "
        "the double_sparsity masker reads (channel_file).",
    )
    p_ds.add_argument("model", help="a hub id or a local model folder")
    p_ds.add_argument("--out", required=True, help="the channel file to write (JSON)")
    p_ds.add_argument("--texts", help="a UTF-8 text file to calibrate on (default: built in)")
    p_ds.add_argument(
        "--num-tokens", type=positive_int_arg, default=65_536, help="at most this many tokens"
    )
    p_ds.add_argument(
        "--selection",
        choices=["q", "k", "both"],
        default="both",
        help="which lists to write: per query head (q), per KV head (k) or both (default)",
    )
    p_ds.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if any)")
    p_ds.add_argument(
        "--dtype", default=None, help="model dtype, e.g. bfloat16 (default: the model's)"
    )
    add_quiet(p_ds)
    p_ds.set_defaults(func=_cmd_double_sparsity)
