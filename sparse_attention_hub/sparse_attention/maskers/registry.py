"""The masker registry: short name -> masker class, filled by the ``@register_masker`` decorator.

Configs travel as ``{name: {param: value}}`` dicts (JSON/YAML-able, used for fingerprints),
e.g. ``{"sink": {"sink_size": 128}}``. A name is one of:

- a registered short name (the built-ins, and any module that used ``@register_masker``);
- an import path ``"my_package.my_module:MyMasker"``, imported when first looked up (in the
  parent for validation and again in each worker process); an undecorated class is then
  registered under that path;
- the name of a Python entry point in the group ``sparse_attention_hub.maskers`` of an
  installed distribution (so ``sah list maskers`` shows installed plugins).

Adding a masker is one file (see the README): a frozen config dataclass and a class registered
with ``@register_masker(name, description)``, usually a ``TopKMasker`` that writes only
``score(inputs)``.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sparse_attention_hub.plugins import is_import_path, load_entry_points, load_import_path
from sparse_attention_hub.sparse_attention.maskers.base import Masker, MaskerConfig

#: The entry-point group installed plugins declare their maskers in.
ENTRY_POINT_GROUP = "sparse_attention_hub.maskers"

_BY_NAME: dict[str, type[Masker]] = {}
_BY_CONFIG: dict[type[MaskerConfig], type[Masker]] = {}

M = TypeVar("M", bound=type[Masker])


def register_masker(name: str, description: str) -> Callable[[M], M]:
    """Class decorator: register a masker under a short ``name`` with a one-line description."""

    def decorate(cls: M) -> M:
        if not (isinstance(cls, type) and issubclass(cls, Masker)):
            raise TypeError(f"@register_masker({name!r}) decorates Masker subclasses, got {cls!r}")
        if cls.config_class is MaskerConfig:
            raise TypeError(f"{cls.__name__} must set config_class to its config dataclass")
        existing = _BY_NAME.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"masker name {name!r} is already used by {existing.__name__}")
        cls.name = name
        cls.description = description
        _BY_NAME[name] = cls
        _BY_CONFIG[cls.config_class] = cls
        return cls

    return decorate


def _adopt(name: str, obj: object, source: str) -> type[Masker]:
    """Register ``obj`` (found as ``source`` ``name``) under ``name``: a class registered
    before keeps its own name and gets ``name`` as an alias."""
    if not (isinstance(obj, type) and issubclass(obj, Masker)) or obj.config_class is MaskerConfig:
        raise ValueError(f"{source} {name!r} is {obj!r}, not a Masker subclass with a config_class")
    if _BY_CONFIG.get(obj.config_class) is obj:
        _BY_NAME.setdefault(name, obj)
        return obj
    doc = (obj.__doc__ or "").strip().splitlines()
    return register_masker(name, doc[0] if doc else obj.__qualname__)(obj)


@functools.lru_cache(maxsize=4)
def _scan_entry_points(search_path: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """The installed masker entry points, scanned once per ``sys.path``."""
    return load_entry_points(ENTRY_POINT_GROUP)


def _load_entry_points() -> dict[str, str]:
    """Register every installed masker entry point; returns the errors of broken ones."""
    loaded, failed = _scan_entry_points(tuple(sys.path))
    failed = dict(failed)
    for name, obj in loaded.items():
        try:
            _adopt(name, obj, f"entry point of group {ENTRY_POINT_GROUP!r}")
        except ValueError as exc:
            failed[name] = str(exc)
    return failed


def resolve_masker(name: str) -> type[Masker]:
    """The masker class of a short name, an import path or an installed entry point.

    Raises:
        ValueError: an unknown name (listing the known ones), or an import path or entry
            point that does not load (with the import error).
    """
    cls = _BY_NAME.get(name)
    if cls is not None:
        return cls
    if is_import_path(name):
        return _adopt(name, load_import_path(name, "masker"), "import path")
    failed = _load_entry_points()
    cls = _BY_NAME.get(name)
    if cls is not None:
        return cls
    if name in failed:
        raise ValueError(failed[name])
    raise ValueError(
        f"unknown masker {name!r}; known maskers: {', '.join(available_maskers())}; "
        "or name a class by import path 'package.module:Class'"
    )


def available_maskers() -> list[str]:
    """Registered short names (installed entry points included), in registration order."""
    _load_entry_points()
    return [name for name, cls in _BY_NAME.items() if cls.name == name]


def masker_class(config: MaskerConfig) -> type[Masker]:
    """The masker class of a config instance; TypeError for an unregistered config type."""
    cls = _BY_CONFIG.get(type(config))
    if cls is None:
        known = ", ".join(c.__name__ for c in _BY_CONFIG)
        raise TypeError(
            f"unknown masker config type {type(config).__name__}; known config types: {known}"
        )
    return cls


def create_masker(config: MaskerConfig) -> Masker:
    """The masker for ``config`` (TypeError for an unknown config type)."""
    return masker_class(config).create_from_config(config)


def masker_config_from_dict(name: str, params: Mapping[str, Any] | None = None) -> MaskerConfig:
    """Build a config from its short name and parameters.

    Raises:
        ValueError: unknown name (listing the known ones), unknown or missing parameters
            (naming them), or a bad value (the config names the field).
    """
    return config_from_params(resolve_masker(name).config_class, name, params, "masker")


C = TypeVar("C")


def config_from_params(
    config_class: type[C], name: str, params: Mapping[str, Any] | None, kind: str
) -> C:
    """``config_class(**params)`` for the ``kind`` (masker, prefill masker) ``name``, after
    checking ``params`` is a mapping of its fields with every required one (ValueError naming
    the unknown or missing parameters; the config itself checks each value)."""
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"parameters of {kind} {name!r} must be a mapping, got {params!r}")
    fields = {f.name: f for f in dataclasses.fields(config_class)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for {kind} {name!r}; allowed: {sorted(fields)}"
        )
    missing = [
        n
        for n, f in fields.items()
        if n not in params
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"{kind} {name!r} needs parameter(s) {missing}")
    return config_class(**params)


def masker_config_to_dict(config: MaskerConfig) -> dict[str, dict[str, Any]]:
    """``{name: {param: value}}`` for a config instance; a field of the config's
    ``default_omitted_fields`` is left out while it holds its default."""
    cls = masker_class(config)
    omitted = type(config).default_omitted_fields
    return {
        cls.name: {
            f.name: getattr(config, f.name)
            for f in dataclasses.fields(config)
            if f.name not in omitted or getattr(config, f.name) != f.default
        }
    }


def describe_maskers() -> list[tuple[str, str, str]]:
    """(name, parameters, description) of every registered masker, for ``sah list maskers``;
    each parameter reads ``name: type = default`` (or ``(required)``)."""
    rows = []
    for name in available_maskers():
        cls = _BY_NAME[name]
        params = []
        for f in dataclasses.fields(cls.config_class):
            kind = f.type.__name__ if isinstance(f.type, type) else str(f.type)
            kind = kind.replace("Size", "int tokens | float fraction of K")
            if f.default is not dataclasses.MISSING:
                params.append(f"{f.name}: {kind} = {f.default!r}")
            elif f.default_factory is not dataclasses.MISSING:
                params.append(f"{f.name}: {kind} = {f.default_factory()!r}")
            else:
                params.append(f"{f.name}: {kind} (required)")
        rows.append((name, ", ".join(params), cls.description))
    return rows
