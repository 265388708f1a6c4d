"""GPU lists as users write them: ``[0, 1]``, ``"0,1"``, ``0``, ``"cpu"``, ``null`` or ``[]``."""

from __future__ import annotations

from typing import Any

from sparse_attention_hub.experiment.checks import Source, describe

GPU_HELP = 'a list of GPU ids like [0, 1], a string like "0,1", or "cpu"'


def parse_gpus(value: Any, path: str = "executor.gpus", src: Source | None = None) -> list[int]:
    """GPU ids as a list of distinct non-negative ints; ``[]`` means CPU.

    >>> parse_gpus("0, 1"), parse_gpus([2]), parse_gpus("cpu"), parse_gpus(None)
    ([0, 1], [2], [], [])
    """
    src = src or Source("--gpus")
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("cpu", ""):
            return []
        items: list[Any] = [part.strip() for part in text.split(",")]
    elif isinstance(value, list):
        items = list(value)
    else:
        items = [value]
    ids: list[int] = []
    for item in items:
        gpu = _one_gpu(item)
        if gpu is None:
            raise src.error(path, f"bad GPU id {describe(item)}; expected {GPU_HELP}")
        if gpu in ids:
            raise src.error(path, f"GPU {gpu} is listed twice")
        ids.append(gpu)
    return ids


def _one_gpu(item: Any) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item if item >= 0 else None
    if isinstance(item, str) and item.isdigit():
        return int(item)
    return None
