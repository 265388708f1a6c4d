"""A method's search space as Optuna distributions, and Optuna's suggestions back as points.

One distribution per :class:`~.spec.ParamSpace`, named by the parameter (``heavy_size``,
``oracle_top_k.heavy_size``):

- ``choices``: a ``CategoricalDistribution`` of the values when every value is a scalar (None,
  bool, int, float, str); of their indices otherwise (a list or mapping is not one of Optuna's
  categorical values), mapped back to the value;
- a range: ``FloatDistribution(low, high, log=log)`` (``scale``: times the target density);
  ``integer``: ``IntDistribution(ceil(low), floor(high), log=log)``. ``points`` (the grid's)
  is not used. A float is kept to 4 significant digits, as the random searcher's, and clamped
  into the range.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from sparse_attention_hub.experiment.tune.spec import MethodSpec, ParamSpace

_SCALARS = (type(None), bool, int, float, str)


def _by_index(param: ParamSpace) -> bool:
    assert param.choices is not None
    return not all(isinstance(value, _SCALARS) for value in param.choices)


def _bounds(param: ParamSpace, target: float) -> tuple[float, float]:
    assert param.low is not None and param.high is not None
    factor = target if param.scale else 1.0
    return param.low * factor, param.high * factor


def _int_bounds(param: ParamSpace, target: float) -> tuple[int, int]:
    low, high = _bounds(param, target)
    ints = (math.ceil(low), math.floor(high))
    if ints[0] > ints[1]:  # no integer inside: the nearest one
        ints = (round(low), round(low))
    return ints


def distribution(param: ParamSpace, target: float) -> Any:
    """The Optuna distribution of ``param`` for ``target``."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if param.choices is not None:
        if _by_index(param):
            return CategoricalDistribution(tuple(range(len(param.choices))))
        return CategoricalDistribution(tuple(param.choices))
    if param.integer:
        low_i, high_i = _int_bounds(param, target)
        return IntDistribution(low_i, high_i, log=param.log and low_i >= 1)
    low, high = _bounds(param, target)
    return FloatDistribution(low, high, log=param.log)


def distributions(method: MethodSpec, target: float) -> dict[str, Any]:
    """``{parameter name: Optuna distribution}`` of ``method``'s space for ``target``."""
    return {p.name: distribution(p, target) for p in method.space}


def point_of(method: MethodSpec, target: float, params: dict[str, Any]) -> dict[str, Any]:
    """The point (``{param: value}``) of Optuna's suggested ``params``."""
    point: dict[str, Any] = {}
    for param in method.space:
        value = params[param.name]
        if param.choices is not None:
            point[param.name] = copy.deepcopy(
                param.choices[int(value)] if _by_index(param) else value
            )
        elif param.integer:
            point[param.name] = int(value)
        else:
            low, high = _bounds(param, target)
            point[param.name] = min(max(float(f"{float(value):.4g}"), low), high)
    return point


def space_size(method: MethodSpec, target: float) -> int | None:
    """The number of distinct points when the space is finite (choices and integer ranges);
    None for a float range."""
    size = 1
    for param in method.space:
        if param.choices is not None:
            size *= len(param.choices)
        elif param.integer:
            low, high = _int_bounds(param, target)
            size *= high - low + 1
        else:
            return None
    return size
