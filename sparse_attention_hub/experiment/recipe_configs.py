"""Recipes in the study file: ``sparse_configs: {qk: {recipe: quest, heavy_size: 0.05}}``.

The mapping names a recipe (``sparse_attention.recipes``) and overrides its parameters. It is
expanded here, at parse time, into the recipe's masker list and dense layers (and the prefill
maskers of a prefill recipe), so config.json
records the expanded list and the cell fingerprint follows it: a recipe whose defaults change
re-runs its cells. A list-valued parameter is swept as masker parameters are (``sweep.py``):
``{recipe: quest, heavy_size: [0.02, 0.05]}`` gives ``qk.heavy_size=0.02`` and
``qk.heavy_size=0.05``. ``dense_layers`` takes a list of layers; a list of such lists sweeps it.
"""

from __future__ import annotations

import itertools
from typing import Any

from sparse_attention_hub.experiment.checks import Source
from sparse_attention_hub.experiment.sweep import value_text

MASKERS = list[dict[str, dict[str, Any]]]


def _is_swept(param: str, value: Any) -> bool:
    if param == "dense_layers":
        return isinstance(value, list) and any(isinstance(v, list) for v in value)
    return isinstance(value, list)


def recipe_count(value: dict[str, Any]) -> int:
    """How many configs ``{recipe: <name>, ...}`` expands into (the product of its sweeps)."""
    count = 1
    for param, values in value.items():
        if param != "recipe" and _is_swept(param, values):
            count *= max(1, len(values))
    return count


def recipe_configs(
    name: str, value: dict[str, Any], path: str, src: Source
) -> list[tuple[str, MASKERS, list[int], dict[str, Any]]]:
    """``(config name, masker list, dense layers, prefill settings)`` for every sweep point
    of ``value`` (``{recipe: <name>, <param>: <value or list>, ...}``); the prefill settings
    are ``{}`` or the ``prefill_maskers`` / ``prefill_block_size`` the recipe gives. An
    unknown recipe or parameter, a bad value or an empty sweep list is an error at ``path``."""
    from sparse_attention_hub.sparse_attention.recipes import expand_recipe
    from sparse_attention_hub.sparse_attention.research_config import check_dense_layers

    params = dict(value)
    recipe = params.pop("recipe")
    if not isinstance(recipe, str):
        raise src.error(f"{path}.recipe", f"must be a recipe name, got {recipe!r}")
    swept = [(k, v) for k, v in params.items() if _is_swept(k, v)]
    for param, values in swept:
        if not values:
            raise src.error(path, f"{param}: an empty list sweeps nothing; give at least one value")
    out = []
    for point in itertools.product(*(values for _, values in swept)):
        chosen = {**params, **dict(zip([k for k, _ in swept], point, strict=True))}
        try:
            parts = [f"{k}={value_text(v)}" for (k, _), v in zip(swept, point, strict=True)]
            expanded = expand_recipe(recipe, chosen)
            layers = check_dense_layers(expanded["dense_layers"])
        except ValueError as exc:
            raise src.error(path, str(exc)) from exc
        full_name = f"{name}.{'+'.join(parts)}" if parts else name
        prefill = {k: v for k, v in expanded.items() if k.startswith("prefill_") and v}
        out.append((full_name, expanded["maskers"], layers, prefill))
    return out
