"""Trial points: sampled (random) or enumerated (grid) from a method's space, checked for
validity, and turned into a config (decode maskers, dense layers, prefill settings).

A point is ``{param: value}``; a scaled range (``scale``) is multiplied by the target density.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from sparse_attention_hub.experiment.tune.spec import MethodSpec, ParamSpace

MASKERS = list[dict[str, dict[str, Any]]]
# parameters that are key budgets: a float is a fraction of the keys K, an int a count
SIZE_PARAMS = ("sink_size", "window_size", "heavy_size", "token_budget")
PREFILL_PREFIX = "prefill."  # ``prefill.<masker>.<param>``: a parameter of a prefill masker


def _tidy(value: float, param: ParamSpace) -> Any:
    if param.integer:
        return round(value)
    return float(f"{value:.4g}")


def _bounds(param: ParamSpace, target: float) -> tuple[float, float]:
    assert param.low is not None and param.high is not None
    factor = target if param.scale else 1.0
    return param.low * factor, param.high * factor


def sample_value(param: ParamSpace, target: float, rng: random.Random) -> Any:
    """One value of ``param`` drawn uniformly (in log space with ``log``)."""
    if param.choices is not None:
        return copy.deepcopy(rng.choice(param.choices))
    low, high = _bounds(param, target)
    if param.log:
        return _tidy(math.exp(rng.uniform(math.log(low), math.log(high))), param)
    return _tidy(rng.uniform(low, high), param)


def grid_values(param: ParamSpace, target: float) -> list[Any]:
    """The grid's values of ``param``: its choices, or ``points`` values spread over the range."""
    if param.choices is not None:
        return list(param.choices)
    low, high = _bounds(param, target)
    if param.points == 1:
        return [_tidy(math.sqrt(low * high) if param.log else (low + high) / 2, param)]
    steps = [i / (param.points - 1) for i in range(param.points)]
    if param.log:
        values = [math.exp(math.log(low) + s * (math.log(high) - math.log(low))) for s in steps]
    else:
        values = [low + s * (high - low) for s in steps]
    return list(dict.fromkeys(_tidy(v, param) for v in values))


def random_point(method: MethodSpec, target: float, rng: random.Random) -> dict[str, Any]:
    return {p.name: sample_value(p, target, rng) for p in method.space}


def grid_points(method: MethodSpec, target: float) -> list[dict[str, Any]]:
    names = [p.name for p in method.space]
    product = itertools.product(*(grid_values(p, target) for p in method.space))
    return [dict(zip(names, values, strict=True)) for values in product]


def invalid_reason(point: dict[str, Any]) -> str | None:
    """Why ``point`` cannot run (a budget above K, sizes that overlap), or None.

    Fractions are checked against K itself; counts (ints) depend on the context length and
    are left to the masker."""
    fractions = {}
    for key, value in point.items():
        name = key.rsplit(".", 1)[-1]
        if key.startswith(PREFILL_PREFIX):
            continue  # the prefill maskers' sizes are token counts, checked by their configs
        if name not in SIZE_PARAMS or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)) and value <= 0:
            return f"{name} not positive"
        if isinstance(value, float):
            if value > 1.0:
                return f"{name} above K"
            fractions[name] = value
    if sum(fractions.values()) > 1.0:
        return "sizes overlap (their sum is above K)"
    if "min_collisions" in point and "lsh_l" in point and point["min_collisions"] > point["lsh_l"]:
        return "min_collisions above lsh_l"
    return None


def build_config(method: MethodSpec, point: dict[str, Any]) -> dict[str, Any]:
    """The config of ``method`` at ``point``: ``{"maskers": [...], "dense_layers": [...],
    "prefill": {"prefill_maskers": [...], ...}}`` (``prefill`` empty: dense prefill);
    ValueError if invalid."""
    params = {**method.fixed, **point}
    if method.recipe is not None:
        from sparse_attention_hub.sparse_attention.recipes import expand_recipe

        expanded = expand_recipe(method.recipe, params)
        maskers, layers = expanded["maskers"], list(expanded["dense_layers"])
        prefill = {k: v for k, v in expanded.items() if k.startswith("prefill_") and v}
    else:
        maskers = copy.deepcopy(method.maskers or [])
        prefill = copy.deepcopy(method.prefill)
        layers = list(params.pop("dense_layers", []) or [])
        if "prefill_block_size" in params:
            prefill["prefill_block_size"] = params.pop("prefill_block_size")
        for key, value in params.items():
            _set_masker_param(maskers, prefill.get("prefill_maskers", []), key, value)
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

    ResearchAttentionConfig.from_dict({"maskers": maskers, "dense_layers": layers, **prefill})
    return {"maskers": maskers, "dense_layers": layers, "prefill": prefill}


def _set_masker_param(maskers: MASKERS, prefill_maskers: MASKERS, key: str, value: Any) -> None:
    """Set ``<masker>.<param>`` (a decode masker, else a prefill one) or
    ``prefill.<masker>.<param>`` (a prefill masker)."""
    lists = [maskers, prefill_maskers]
    if key.startswith(PREFILL_PREFIX):
        lists, key = [prefill_maskers], key[len(PREFILL_PREFIX) :]
    masker, _, name = key.partition(".")
    for entries in lists:
        for entry in entries:
            if masker in entry:
                entry[masker] = {**(entry[masker] or {}), name: value}
                return
    raise ValueError(f"parameter {key!r}: no masker {masker!r} in the list")
