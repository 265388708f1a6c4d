"""Per-head pattern configs of MInference (its ``best_pattern`` JSON files).

The format (``minference/configs/*_best_pattern*.json``): a list with one object per layer, each
mapping a head index (a string) to ``[pattern, vertical_size, slash_size, score]``, pattern one
of ``vertical_and_slash`` (vertical and slash counts), ``stream_llm`` (the A-shape: ``n_init``
= vertical_size first tokens and ``n_local`` = slash_size recent ones) or ``block_sparse``
(MInference's block-sparse kernel, ``top_k`` blocks per query block; the two sizes are not read,
as in the official ``block_sparse_kernel``). The trailing score (the search's) is not read.

Example::

    [{"0": ["vertical_and_slash", 1000, 6096, 336], "1": ["stream_llm", 100, 800, 0]}, ...]
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The pattern names of the file format -> the masker's pattern names.
FILE_PATTERNS = {
    "vertical_and_slash": "vertical_and_slash",
    "stream_llm": "a_shape",
    "block_sparse": "block_sparse",
}


@dataclasses.dataclass(frozen=True)
class HeadPattern:
    """One head's pattern: ``pattern`` in ``vertical_and_slash | a_shape | block_sparse`` and its
    two sizes (vertical/slash counts, or n_init/n_local; unused for block_sparse)."""

    pattern: str
    first: int
    second: int


def load_pattern_file(path: str) -> list[dict[int, HeadPattern]]:
    """Read and validate a best_pattern file: per layer, head -> :class:`HeadPattern`.

    Raises:
        ValueError naming the file (and the layer and head) for a missing or unreadable file,
        invalid JSON, or a malformed layer or head entry.
    """
    file = Path(path)
    try:
        raw = json.loads(file.read_text())
    except OSError as exc:
        raise ValueError(f"pattern_file {path!r} cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"pattern_file {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(raw, list) or not raw:
        raise ValueError(
            f"pattern_file {path!r} must hold a non-empty JSON list (one object per layer), "
            f"got {type(raw).__name__}"
        )
    return [_parse_layer(path, layer, entry) for layer, entry in enumerate(raw)]


def _parse_layer(path: str, layer: int, entry: Any) -> dict[int, HeadPattern]:
    if not isinstance(entry, dict):
        raise ValueError(
            f"pattern_file {path!r}, layer {layer}: must be an object head -> [pattern, "
            f"vertical_size, slash_size, score], got {type(entry).__name__}"
        )
    heads: dict[int, HeadPattern] = {}
    for key, value in entry.items():
        if not (isinstance(key, str) and key.isdigit()):
            raise ValueError(
                f"pattern_file {path!r}, layer {layer}: head keys must be head indices "
                f"('0', '1', ...), got {key!r}"
            )
        heads[int(key)] = _parse_head(path, layer, int(key), value)
    return heads


def _parse_head(path: str, layer: int, head: int, value: Any) -> HeadPattern:
    where = f"pattern_file {path!r}, layer {layer}, head {head}"
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) < 3:
        raise ValueError(
            f"{where}: must be [pattern, vertical_size, slash_size(, score)], got {value!r}"
        )
    name, first, second = value[0], value[1], value[2]
    if name not in FILE_PATTERNS:
        raise ValueError(f"{where}: unknown pattern {name!r}; allowed: {sorted(FILE_PATTERNS)}")
    for label, size in (("vertical_size", first), ("slash_size", second)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"{where}: {label} must be an int >= 0, got {size!r}")
    return HeadPattern(FILE_PATTERNS[name], int(first), int(second))


def layer_patterns(
    path: str, layers: list[dict[int, HeadPattern]], layer_idx: int | None, num_heads: int
) -> list[HeadPattern]:
    """The patterns of heads ``0 .. num_heads - 1`` of ``layer_idx``; ValueError naming the file
    and layer when the call's layer is not in the file or its heads are not exactly the call's."""
    if layer_idx is None:
        raise ValueError(
            f"pattern_file {path!r} holds per-layer patterns but the call has no layer_idx"
        )
    if not 0 <= layer_idx < len(layers):
        raise ValueError(
            f"pattern_file {path!r} has {len(layers)} layer(s); the call is layer {layer_idx}"
        )
    heads = layers[layer_idx]
    missing = sorted(set(range(num_heads)) - set(heads))
    extra = sorted(set(heads) - set(range(num_heads)))
    if missing or extra:
        raise ValueError(
            f"pattern_file {path!r}, layer {layer_idx}: the call has {num_heads} query heads; "
            f"the file lacks heads {missing} and has extra heads {extra}"
        )
    return [heads[i] for i in range(num_heads)]
