"""Sweeps in the study file: masker parameters given as lists expand into configs.

``topk: [{sink: {sink_size: 4}}, {oracle_top_k: {heavy_size: [0.02, 0.05]}}]`` becomes two
configs, ``topk.heavy_size=0.02`` and ``topk.heavy_size=0.05``; several lists form their
product, in file order (the last list varies fastest)::

    name.param=value            one swept parameter
    name.p1=v1+p2=v2            several, in the order they appear in the file
    name.masker.param=value     when two maskers of the config sweep a parameter of that name

The names are folder names (letters, digits and ``_ . + = -``), the same on every run. A
parameter whose value is itself a list is swept by a list of lists (one inner list per config).
A study of 1,000 configs or more is refused unless the file sets ``allow_large_sweep: true``;
one of more than 10,000 is refused even then. The count is the product of the list lengths,
taken before anything is expanded, so a sweep of a million configs is refused at once.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

MASKERS = list[dict[str, dict[str, Any]]]
MAX_SWEEP_CONFIGS = 999  # more configs than this need allow_large_sweep: true
MAX_LARGE_SWEEP_CONFIGS = 10_000  # more configs than this are refused even then
VALUE_TEXT = re.compile(r"^[A-Za-z0-9_.+-]+$")


def value_text(value: Any) -> str:
    """The folder-safe spelling of a swept value (``0.02``, ``128``, ``true``, ``a-b``);
    ValueError when it cannot be one (a string with other characters, a mapping...)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    elif isinstance(value, list):
        text = "-".join(value_text(v) for v in value)
    else:
        raise ValueError(f"a swept value must be a number, a string or a list, got {value!r}")
    if not VALUE_TEXT.match(text):
        raise ValueError(
            f"swept value {value!r} cannot be part of a folder name "
            "(letters, digits and _ . + - only)"
        )
    return text


def swept_parameters(maskers: MASKERS) -> list[tuple[int, str, str, list[Any]]]:
    """``[(masker index, masker name, parameter, values), ...]`` of the list-valued parameters."""
    out = []
    for i, entry in enumerate(maskers):
        ((masker, params),) = entry.items()
        for param, value in params.items():
            if isinstance(value, list):
                out.append((i, masker, param, value))
    return out


def expand_config(name: str, maskers: MASKERS | None) -> list[tuple[str, MASKERS | None]]:
    """One ``(name, maskers)`` per point of the product of the swept parameters (a config
    without lists is returned as it is). ValueError on an empty list or an unsafe value."""
    swept = swept_parameters(maskers or [])
    if maskers is None or not swept:
        return [(name, maskers)]
    counts: dict[str, int] = {}
    for _, _, param, values in swept:
        counts[param] = counts.get(param, 0) + 1
        if not values:
            raise ValueError(f"{param}: an empty list sweeps nothing; give at least one value")
    labels = [param if counts[param] == 1 else f"{masker}.{param}" for _, masker, param, _ in swept]
    out: list[tuple[str, MASKERS | None]] = []
    for point in itertools.product(*(values for *_, values in swept)):
        config = copy.deepcopy(maskers)
        parts = []
        for (index, masker, param, _), label, value in zip(swept, labels, point, strict=True):
            config[index][masker][param] = copy.deepcopy(value)
            parts.append(f"{label}={value_text(value)}")
        out.append((f"{name}.{'+'.join(parts)}", config))
    return out


def sweep_count(maskers: Any) -> int:
    """How many configs a masker list expands into: the product of its list-valued
    parameters' lengths (1 for anything that is not a masker list; checked later)."""
    count = 1
    for entry in maskers if isinstance(maskers, list) else []:
        for params in entry.values() if isinstance(entry, dict) else []:
            for value in params.values() if isinstance(params, dict) else []:
                if isinstance(value, list):
                    count *= max(1, len(value))
    return count


def check_sweep_size(count: int, allowed: bool) -> None:
    """ValueError when a study has more than :data:`MAX_SWEEP_CONFIGS` configs and the file
    did not set ``allow_large_sweep: true``, or more than :data:`MAX_LARGE_SWEEP_CONFIGS`."""
    if count > MAX_LARGE_SWEEP_CONFIGS:
        raise ValueError(
            f"the sweeps expand to {count:,} sparse configs, more than the "
            f"{MAX_LARGE_SWEEP_CONFIGS:,} allowed even with allow_large_sweep: true; "
            "shorten the lists"
        )
    if count > MAX_SWEEP_CONFIGS and not allowed:
        raise ValueError(
            f"the sweeps expand to {count} sparse configs (more than {MAX_SWEEP_CONFIGS}); "
            "shorten the lists, or set allow_large_sweep: true at the top of the file"
        )
