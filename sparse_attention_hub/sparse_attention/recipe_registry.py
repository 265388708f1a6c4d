"""The recipe registry: :class:`Recipe`, ``@register_recipe`` and the lookups (the recipes
themselves, and the package's documentation of them, are in ``recipes``)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

MaskerList = list[dict[str, dict[str, Any]]]
#: What a builder returns: a masker list, or a dict with these keys (``maskers`` optional).
BUILT_KEYS = ("maskers", "prefill_maskers", "prefill_block_size")
HEAVY_PARTS = ("oracle_top_k", "hashattention")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One named stack: ``build(**params)`` gives its masker list (or a dict of
    :data:`BUILT_KEYS`); ``defaults`` are every parameter's default (``dense_layers``
    included)."""

    name: str
    paper: str
    build: Callable[..., Any]
    defaults: Mapping[str, Any]

    def expand(self, **params: Any) -> dict[str, Any]:
        """``{"maskers": [...], "dense_layers": [...]}`` (the ``ResearchAttentionConfig``
        dict form; plus ``"prefill_maskers"`` and ``"prefill_block_size"`` where the builder
        gives them) for the defaults overridden by ``params``.

        Raises:
            ValueError: an unknown parameter, naming the recipe's parameters.
        """
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for recipe {self.name!r}; its parameters: "
                + ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
            )
        values = {**self.defaults, **params}
        layers = values.pop("dense_layers")
        built = self.build(**values)
        if not isinstance(built, Mapping):
            return {"maskers": built, "dense_layers": list(layers or [])}
        unknown = sorted(set(built) - set(BUILT_KEYS))
        if unknown:
            raise TypeError(
                f"recipe {self.name!r} built unknown key(s) {unknown}; allowed: {BUILT_KEYS}"
            )
        return {"maskers": [], **built, "dense_layers": list(layers or [])}


_RECIPES: dict[str, Recipe] = {}


def register_recipe(
    name: str, paper: str, dense_layers: tuple[int, ...] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Function decorator: register ``fn(**params) -> masker list`` (or a dict of
    :data:`BUILT_KEYS`) as recipe ``name``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _RECIPES:
            raise ValueError(f"recipe name {name!r} is already registered")
        defaults: dict[str, Any] = {}
        for param in inspect.signature(fn).parameters.values():
            if param.default is inspect.Parameter.empty:
                raise TypeError(f"recipe {name!r}: parameter {param.name!r} needs a default")
            defaults[param.name] = param.default
        defaults["dense_layers"] = list(dense_layers)
        _RECIPES[name] = Recipe(name, paper, fn, defaults)
        return fn

    return decorate


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ValueError listing the known ones otherwise."""
    recipe = _RECIPES.get(name) if isinstance(name, str) else None
    if recipe is None:
        raise ValueError(f"unknown recipe {name!r}; known recipes: {', '.join(_RECIPES)}")
    return recipe


def available_recipes() -> list[str]:
    """Recipe names in registration order."""
    return list(_RECIPES)


def expand_recipe(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{"maskers": [...], "dense_layers": [...]}`` (and the prefill keys of a prefill
    recipe) of recipe ``name`` with ``params``."""
    return get_recipe(name).expand(**dict(params or {}))


def describe_recipes() -> list[tuple[str, str, str]]:
    """(name, expansion with the defaults, paper) of every recipe, for ``sah list recipes``."""
    rows = []
    for name, recipe in _RECIPES.items():
        expanded = recipe.expand()
        text = _stack_text(expanded["maskers"])
        if expanded.get("prefill_maskers"):
            decode = text or "dense decode"
            text = f"prefill {_stack_text(expanded['prefill_maskers'])}; {decode}"
        layers = expanded["dense_layers"]
        text += f"; dense layers {layers}" if layers else ""
        params = ", ".join(f"{k}={v!r}" for k, v in recipe.defaults.items())
        rows.append((name, f"{text}\nparameters: {params}", recipe.paper))
    return rows


def _stack_text(maskers: MaskerList) -> str:
    """``sink(sink_size=4) + local(window_size=64)`` of a masker list."""
    return " + ".join(
        f"{masker}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
        for entry in maskers
        for masker, params in entry.items()
    )
