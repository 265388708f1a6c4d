"""Typed reading of a YAML document, with errors that name the file and the key path.

Every check takes the value, its key path (``sparse_configs.streaming[1].local.window_size``)
and a :class:`Source` naming the file, and either returns the value in its Python type or
raises :class:`ExperimentError`. Nothing here knows the experiment schema; ``schema.py`` does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml


class ExperimentError(ValueError):
    """A mistake in an experiment file: which file, which key path, what is allowed."""

    def __init__(self, source: str, path: str, message: str) -> None:
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Source:
    """The file being read (its name goes into every error)."""

    name: str

    def error(self, path: str, message: str) -> ExperimentError:
        return ExperimentError(self.name, path, message)


def join(path: str, key: str | int) -> str:
    """``join("a", "b") == "a.b"``; ``join("a", 1) == "a[1]"``; ``join("", "b") == "b"``; a key
    with characters that are not printable (an ANSI escape) is quoted: ``a['\\x1b[31m']``, so
    an error message never writes them to the terminal."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not key.isprintable():
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """A short description of a YAML value for error messages: ``int 3``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"bool {value}".lower()
    if isinstance(value, (int, float, str)):
        text = repr(value)
        text = text if len(text) <= 40 else text[:37] + "..."
        return f"{type(value).__name__} {text}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def allowed(names: Iterable[str]) -> str:
    return ", ".join(sorted(str(n) for n in names))


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain data only) that also rejects duplicate mapping keys."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:  # ``<<: *defaults``: merged keys may be overridden
            continue
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        line = key_node.start_mark.line + 1
        if isinstance(key, (str, int, float, bool)) or key is None:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)

# Integers are decimal (``1024``, ``32_000``). YAML 1.1's other spellings (``0x10``, ``0o20``,
# ``020`` = 16, ``0b10``, ``1:30`` = 90) are read as text, so a setting written that way is
# refused where a number is expected instead of silently becoming another number.
_INT_TAG = "tag:yaml.org,2002:int"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _INT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9_]*)$"), list("-+0123456789")
)


# An experiment file is a few hundred values; aliases expanding past this are an alias bomb.
MAX_YAML_VALUES = 100_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values in ``node`` once aliases are expanded (each shared node counted once per use)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise yaml.YAMLError("an alias refers to a node that contains it (a recursive structure)")
    open_nodes.add(key)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    size = 1
    for child in children:
        size += _expanded_size(child, sizes, open_nodes)
        if size > MAX_YAML_VALUES:
            raise yaml.YAMLError(
                f"aliases expand to more than {MAX_YAML_VALUES} values (an alias bomb?)"
            )
    open_nodes.discard(key)
    sizes[key] = size
    return size


def load_yaml_text(text: str, source: Source) -> Any:
    """Parse YAML text safely: plain data only (no ``!!python/...`` objects), duplicate keys
    are errors, and aliases may not build recursive structures or expand past
    ``MAX_YAML_VALUES`` values."""
    loader = _StrictLoader(text)  # a SafeLoader subclass: plain data only
    try:
        node = loader.get_single_node()  # type: ignore[no-untyped-call]
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return loader.construct_document(node)  # type: ignore[no-untyped-call]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise source.error("", f"invalid YAML: {where}{problem}") from None
    except RecursionError:
        raise source.error("", "invalid YAML: values nested too deeply") from None
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def mapping(value: Any, path: str, src: Source, what: str = "a mapping") -> dict[str, Any]:
    """``value`` as a dict with string keys; ``what`` says what was expected."""
    if not isinstance(value, Mapping):
        raise src.error(path or "(top level)", f"expected {what}, got {describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise src.error(
                join(path, str(key)),
                f"keys must be strings, got {describe(key)} (quote it: '{key}')",
            )
    return dict(value)


def known_keys(
    value: Mapping[str, Any], path: str, src: Source, allowed_keys: Iterable[str]
) -> None:
    """Unknown keys are errors (they are usually typos)."""
    names = set(allowed_keys)
    for key in value:
        if key not in names:
            raise src.error(join(path, key), f"unknown key; allowed here: {allowed(names)}")


def required(value: Mapping[str, Any], key: str, path: str, src: Source) -> Any:
    if key not in value:
        raise src.error(join(path, key), "missing (this key is required)")
    return value[key]


def string(value: Any, path: str, src: Source, choices: Iterable[str] | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise src.error(path, f"expected a non-empty string, got {describe(value)}")
    if choices is not None:
        options = list(choices)
        if value not in options:
            raise src.error(path, f"{value!r} is not allowed; allowed: {allowed(options)}")
    return value


def integer(value: Any, path: str, src: Source, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise src.error(path, f"expected an integer, got {describe(value)}")
    if minimum is not None and value < minimum:
        raise src.error(path, f"must be >= {minimum}, got {value}")
    return value


def number(
    value: Any,
    path: str,
    src: Source,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """An int or float in ``[low, high]`` (``(low, high]`` when ``low_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise src.error(path, f"expected a number, got {describe(value)}")
    if value != value:  # NaN passes every comparison below
        raise src.error(path, "expected a number, got .nan")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        left = "(" if low_open else "["
        bounds = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise src.error(path, f"must be in {bounds}, got {value}")
    return float(value)


def boolean(value: Any, path: str, src: Source) -> bool:
    if not isinstance(value, bool):
        raise src.error(path, f"expected true or false, got {describe(value)}")
    return value


def string_list(value: Any, path: str, src: Source, allow_numbers: bool = False) -> list[str]:
    """A non-empty list of strings (numbers become strings when ``allow_numbers``)."""
    if not isinstance(value, list) or not value:
        raise src.error(path, f"expected a non-empty list, got {describe(value)}")
    out: list[str] = []
    for i, item in enumerate(value):
        if allow_numbers and isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        out.append(string(item, join(path, i), src))
    if len(set(out)) != len(out):
        dup = next(x for x in out if out.count(x) > 1)
        raise src.error(path, f"{dup!r} is listed twice")
    return out


def plain_data(value: Any, path: str, src: Source) -> Any:
    """Check that a free-form value is JSON-like data (str/number/bool/null, lists, mappings)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, list):
        return [plain_data(v, join(path, i), src) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: plain_data(v, join(path, k), src) for k, v in mapping(value, path, src).items()}
    raise src.error(
        path, f"expected plain data (text, numbers, lists, mappings), got {describe(value)}"
    )
