"""The masker registry: short name -> masker class, filled by the ``@register_masker`` decorator.

Configs travel as ``{name: {param: value}}`` dicts (JSON/YAML-able, used for fingerprints),
e.g. ``{"sink": {"sink_size": 128}}``. Adding a masker is one file::

    @dataclass(frozen=True)
    class MyConfig(MaskerConfig):
        heavy_size: int | float

    @register_masker("my_method", "One line on what it keeps.")
    class MyMasker(TopKMasker):
        config_class = MyConfig
        def size(self):
            return self.config.heavy_size  # tokens, or a fraction of K
        def score(self, queries, keys, values, attention_mask, scaling, sparse_meta_data, **kw):
            ...  # (B, H, Q, K) scores; the template keeps the top heavy_size new keys

and importing that module registers it (tests/sparse_attention/test_extending.py does this).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sparse_attention_hub.sparse_attention.maskers.base import Masker, MaskerConfig

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


def available_maskers() -> list[str]:
    """Registered short names, in registration order."""
    return list(_BY_NAME)


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
    cls = _BY_NAME.get(name)
    if cls is None:
        raise ValueError(f"unknown masker {name!r}; known maskers: {', '.join(_BY_NAME)}")
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"parameters of masker {name!r} must be a mapping, got {params!r}")
    fields = {f.name: f for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for masker {name!r}; allowed: {sorted(fields)}"
        )
    missing = [
        n
        for n, f in fields.items()
        if n not in params
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ValueError(f"masker {name!r} needs parameter(s) {missing}")
    return cls.config_class(**params)


def masker_config_to_dict(config: MaskerConfig) -> dict[str, dict[str, Any]]:
    """``{name: {param: value}}`` for a config instance."""
    cls = masker_class(config)
    return {cls.name: {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}}


def describe_maskers() -> list[tuple[str, str, str]]:
    """(name, parameters, description) of every registered masker, for ``sah list maskers``."""
    rows = []
    for name, cls in _BY_NAME.items():
        params = []
        for f in dataclasses.fields(cls.config_class):
            kind = str(f.type).replace("Size", "int tokens | float fraction of K")
            text = f"{f.name}: {kind}"
            if f.default is not dataclasses.MISSING:
                text += f" = {f.default!r}"
            params.append(text)
        rows.append((name, ", ".join(params), cls.description))
    return rows
