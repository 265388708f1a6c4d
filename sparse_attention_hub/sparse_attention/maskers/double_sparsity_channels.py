"""Double Sparsity channel files: the official JSON layout, read, checked and written.

The official repository (andy-yang-1/DoubleSparse, ``config/<owner>/<model>.json``, written by
``config/offline_calibration.py``) stores, per layer and projection, one ranked list of the D
channel indices for every head, most important first::

    {"model.layers.0.self_attn.q_proj": [[39, 104, ...], ...],   # H rows of D channels
     "model.layers.0.self_attn.k_proj": [[...], ...],            # Hkv rows of D channels
     "model.layers.0.self_attn.qk_proj": [[...], ...],           # H rows of D channels
     "model.layers.1.self_attn.q_proj": ...}

``channel_selection`` picks the projection: "q" (``q_proj``, one list per query head, the
official scripts' choice), "k" (``k_proj``, one list per KV head, shared by the G query heads
of the group) or "qk" (``qk_proj``, per query head; read for official files, never written
here: see ``offline/double_sparsity_calibration.py``). Every row must be a permutation of
``range(D)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

#: channel_selection -> the projection name of the official layout.
PROJECTIONS = {"q": "q_proj", "k": "k_proj", "qk": "qk_proj"}


def layer_key(layer: int, selection: str) -> str:
    """The official key of ``layer``'s channel lists for ``selection`` ("q", "k", "qk")."""
    return f"model.layers.{layer}.self_attn.{PROJECTIONS[selection]}"


def rows_per_layer(selection: str, heads: int, kv_heads: int) -> int:
    """Channel lists per layer: one per query head ("q", "qk") or per KV head ("k")."""
    return kv_heads if selection == "k" else heads


def read_channel_file(path: str | os.PathLike[str], selection: str) -> dict[int, torch.Tensor]:
    """The (rows, D) int64 channel lists of every layer in ``path`` for ``selection``.

    Raises:
        ValueError: the file is not JSON, holds no ``*.{proj}`` entry, or an entry is not a
            list of equal-length permutations of ``range(D)`` (naming the file and the key).
    """
    proj = PROJECTIONS[selection]
    try:
        table = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"double_sparsity channel file {str(path)!r}: cannot read it ({exc})"
        ) from exc
    if not isinstance(table, dict):
        raise ValueError(
            f"double_sparsity channel file {str(path)!r}: expected a JSON object of "
            f"'model.layers.<i>.self_attn.{proj}' -> [[channel, ...] per head], "
            f"got {type(table).__name__}"
        )
    layers: dict[int, torch.Tensor] = {}
    prefix, suffix = "model.layers.", f".self_attn.{proj}"
    for key, value in table.items():
        middle = key[len(prefix) : -len(suffix)] if key.endswith(suffix) else ""
        if key.startswith(prefix) and middle.isdigit():
            layers[int(middle)] = _channel_rows(value, path, key)
    if not layers:
        raise ValueError(
            f"double_sparsity channel file {str(path)!r} has no 'model.layers.<i>.self_attn."
            f"{proj}' entry for channel_selection={selection!r} (its keys start "
            f"{sorted(table)[:3]})"
        )
    return layers


def _channel_rows(value: Any, path: str | os.PathLike[str], key: str) -> torch.Tensor:
    """``value`` as a (rows, D) int64 tensor of permutations of range(D), or a ValueError."""
    where = f"double_sparsity channel file {str(path)!r}, entry {key!r}"
    try:
        rows = torch.tensor(value, dtype=torch.int64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{where}: expected a list of equal-length integer lists ({exc})") from exc
    if rows.dim() != 2 or rows.shape[1] == 0:
        raise ValueError(
            f"{where}: expected a (heads, D) list of lists, got shape {tuple(rows.shape)}"
        )
    expected = torch.arange(rows.shape[1]).expand_as(rows)
    if not torch.equal(rows.sort(dim=-1).values, expected):
        raise ValueError(f"{where}: every row must be a permutation of range(D={rows.shape[1]})")
    return rows


def layer_channels(
    layers: Mapping[int, torch.Tensor],
    path: str,
    layer: int | None,
    selection: str,
    heads: int,
    kv_heads: int,
    head_dim: int,
) -> torch.Tensor:
    """The (rows, D) channel lists of ``layer``, checked against the call's shape.

    Raises:
        ValueError: no layer index, the layer is not in the file, or its lists are not
            (H, D) ("q", "qk") / (Hkv, D) ("k"); the message names the file, the layer and
            the expected shape.
    """
    rows = rows_per_layer(selection, heads, kv_heads)
    expected = f"({rows}, {head_dim}) ({'Hkv' if selection == 'k' else 'H'}, D)"
    if layer is None:
        raise ValueError(
            "double_sparsity needs the layer index of the attention call to find its channels "
            f"in {path!r} (AttentionInputs.layer_idx is None)"
        )
    if layer not in layers:
        raise ValueError(
            f"double_sparsity channel file {path!r} has no entry {layer_key(layer, selection)!r} "
            f"for layer {layer}; expected a {expected} list of channel rankings (the file "
            f"covers layers {sorted(layers)}; calibrate this model with `sah calibrate "
            "double-sparsity`)"
        )
    channels = layers[layer]
    if tuple(channels.shape) != (rows, head_dim):
        raise ValueError(
            f"double_sparsity channel file {path!r}, layer {layer} "
            f"({layer_key(layer, selection)!r}): shape {tuple(channels.shape)}, expected "
            f"{expected} for this model; the file was made for another model"
        )
    return channels


def write_channel_file(
    path: str | os.PathLike[str], table: Mapping[str, Sequence[Sequence[int]]]
) -> Path:
    """Write ``table`` (official keys -> per-head channel lists) as JSON, atomically; an
    OSError names ``path`` (never the temp file)."""
    target = Path(path)
    tmp = ""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(
                {key: [list(map(int, row)) for row in rows] for key, rows in table.items()}, handle
            )
        os.replace(tmp, target)
    except OSError as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    return target


def random_channel_table(
    layers: int, heads: int, kv_heads: int, head_dim: int, seed: int = 0
) -> dict[str, list[list[int]]]:
    """A valid table of random rankings (``q_proj`` and ``k_proj`` for every layer) for a
    model shape: for timing and for tests that need any file of the right shape."""
    g = torch.Generator().manual_seed(seed)
    table: dict[str, list[list[int]]] = {}
    for layer in range(layers):
        for selection, rows in (("q", heads), ("k", kv_heads)):
            ranks = torch.rand(rows, head_dim, generator=g).argsort(-1)  # (rows, D)
            table[layer_key(layer, selection)] = ranks.tolist()
    return table


__all__ = [
    "PROJECTIONS",
    "layer_channels",
    "layer_key",
    "random_channel_table",
    "read_channel_file",
    "rows_per_layer",
    "write_channel_file",
]
