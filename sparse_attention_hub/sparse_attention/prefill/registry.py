"""The prefill-masker registry: short name -> prefill masker class, filled by the
``@register_prefill_masker`` decorator. Its names are apart from the decode maskers' (a
config's ``prefill_maskers`` list reads this registry, its ``maskers`` list the other), so a
prefill ``sink`` and a decode ``sink`` do not collide.

Configs travel as ``{name: {param: value}}`` dicts, like decode maskers'.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sparse_attention_hub.sparse_attention.maskers.registry import config_from_params
from sparse_attention_hub.sparse_attention.prefill.base import PrefillMasker, PrefillMaskerConfig

#: The modules of the built-in prefill maskers, imported on the first lookup (registration
#: order = this order).
BUILTIN_MODULES: tuple[str, ...] = (
    "sink",
    "local",
    "block_top_k",
    "vertical_slash",
    "flexprefill",
    "xattention",
)

_BY_NAME: dict[str, type[PrefillMasker]] = {}
_BY_CONFIG: dict[type[PrefillMaskerConfig], type[PrefillMasker]] = {}
_loaded = False

P = TypeVar("P", bound=type[PrefillMasker])


def register_prefill_masker(name: str, description: str) -> Callable[[P], P]:
    """Class decorator: register a prefill masker under ``name`` with a one-line description."""

    def decorate(cls: P) -> P:
        if not (isinstance(cls, type) and issubclass(cls, PrefillMasker)):
            raise TypeError(
                f"@register_prefill_masker({name!r}) decorates PrefillMasker subclasses, "
                f"got {cls!r}"
            )
        if cls.config_class is PrefillMaskerConfig:
            raise TypeError(f"{cls.__name__} must set config_class to its config dataclass")
        existing = _BY_NAME.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"prefill masker name {name!r} is already used by {existing.__name__}")
        cls.name = name
        cls.description = description
        _BY_NAME[name] = cls
        _BY_CONFIG[cls.config_class] = cls
        return cls

    return decorate


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(f"sparse_attention_hub.sparse_attention.prefill.{module}")
        _loaded = True


def available_prefill_maskers() -> list[str]:
    """The registered prefill masker names, in registration order."""
    _load_builtins()
    return list(_BY_NAME)


def resolve_prefill_masker(name: str) -> type[PrefillMasker]:
    """The class of ``name``; ValueError listing the known names otherwise."""
    _load_builtins()
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ValueError(
            f"unknown prefill masker {name!r}; known prefill maskers: "
            f"{', '.join(available_prefill_maskers())}"
        )
    return cls


def prefill_masker_class(config: PrefillMaskerConfig) -> type[PrefillMasker]:
    """The prefill masker class of a config instance; TypeError for an unregistered type."""
    _load_builtins()
    cls = _BY_CONFIG.get(type(config))
    if cls is None:
        raise TypeError(f"unknown prefill masker config type {type(config).__name__}")
    return cls


def create_prefill_masker(config: PrefillMaskerConfig) -> PrefillMasker:
    """The prefill masker for ``config``."""
    return prefill_masker_class(config)(config)


def prefill_config_from_dict(
    name: str, params: Mapping[str, Any] | None = None
) -> PrefillMaskerConfig:
    """Build a config from its short name and parameters; ValueError naming an unknown name,
    unknown or missing parameters, or (from the config) a bad value."""
    cls = resolve_prefill_masker(name)
    return config_from_params(cls.config_class, name, params, "prefill masker")


def prefill_config_to_dict(config: PrefillMaskerConfig) -> dict[str, dict[str, Any]]:
    """``{name: {param: value}}`` for a config instance."""
    cls = prefill_masker_class(config)
    return {cls.name: {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}}


def describe_prefill_maskers() -> list[tuple[str, str, str]]:
    """``(name, parameters, description)`` of every prefill masker (``sah list prefill``);
    the parameters one ``field = default`` per line (``field`` alone when required)."""
    rows = []
    for name in available_prefill_maskers():
        cls = _BY_NAME[name]
        params = []
        for field in dataclasses.fields(cls.config_class):
            if field.default is not dataclasses.MISSING:
                params.append(f"{field.name} = {field.default!r}")
            else:
                params.append(field.name)
        rows.append((name, "\n".join(params), cls.description))
    return rows
