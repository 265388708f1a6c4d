"""The one benchmark registry: names (and aliases) to Benchmark classes.

Built-in benchmarks are registered lazily as ``"module.path:ClassName"`` strings, so importing
this module imports no benchmark (and none of jieba, rouge or datasets). The class is imported
the first time its name is resolved; its module's ``@register_benchmark`` decorator then
replaces the string with the class. Hidden entries resolve like any other but are not listed
by :func:`get_available_benchmarks` or :func:`describe_benchmarks`.

Benchmarks from outside the package:

- an import path ``"my_package.my_module:MyBenchmark"`` resolves wherever a name does (a
  study YAML, BenchmarkConfig); the class is imported then and registered under its
  ``benchmark_name``, which names its cell folders;
- installed plugins declare entry points in the group ``sparse_attention_hub.benchmarks``
  (``my_bench = "my_package.my_module:MyBenchmark"``); they are discovered the first time
  the registry is asked for a name or a list, and resolve lazily like the built-ins.

A path that cannot be imported raises :class:`BenchmarkImportError` (a ValueError) naming the
path and the import error.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar

from sparse_attention_hub.plugins import load_import_path

if TYPE_CHECKING:
    from sparse_attention_hub.benchmarks.base import Benchmark

_BUILTIN: dict[str, str] = {
    "mock_benchmark": "sparse_attention_hub.benchmarks.mock_benchmark:MockBenchmark",
    "synthetic_ruler": "sparse_attention_hub.benchmarks.synthetic_ruler:SyntheticRuler",
    "longbench": "sparse_attention_hub.benchmarks.longbench:LongBench",
    "longbench_e": "sparse_attention_hub.benchmarks.longbench:LongBenchE",
    "ruler": "sparse_attention_hub.benchmarks.ruler:Ruler",
    "longbench_v2": "sparse_attention_hub.benchmarks.longbench_v2:LongBenchV2",
    "infinite_bench": "sparse_attention_hub.benchmarks.infinite_bench:InfiniteBench",
    "aime": "sparse_attention_hub.benchmarks.aime:Aime",
    "loogle": "sparse_attention_hub.benchmarks.loogle:LooGLE",
    "zero_scrolls": "sparse_attention_hub.benchmarks.zero_scrolls:ZeroScrolls",
    "loft_rag": "sparse_attention_hub.benchmarks.loft_rag:LoftRag",
}
_BUILTIN_ALIASES: dict[str, str] = {
    "mock": "mock_benchmark",
    "synthetic": "synthetic_ruler",
}
ENTRY_POINT_GROUP = "sparse_attention_hub.benchmarks"

_entries: dict[str, Any] = dict(_BUILTIN)  # name -> class or "module:Class"
_aliases: dict[str, str] = dict(_BUILTIN_ALIASES)
_hidden: set[str] = set()
_plugins_loaded = [False]

log = logging.getLogger(__name__)


class BenchmarkImportError(ValueError):
    """A benchmark import path (or entry point) that cannot be imported."""


def is_import_path(name: object) -> bool:
    """Whether ``name`` is a ``"module.path:ClassName"`` import path rather than a name."""
    return isinstance(name, str) and name.count(":") == 1


def import_target(target: str) -> Any:
    """The object a ``"module.path:Name"`` target names; BenchmarkImportError if it cannot."""
    try:
        return load_import_path(target, "benchmark")
    except ValueError as exc:
        raise BenchmarkImportError(str(exc)) from exc.__cause__


def load_plugins() -> None:
    """Register the entry points of group ``sparse_attention_hub.benchmarks`` (once).

    A plugin whose name is already taken is skipped with a warning.
    """
    if _plugins_loaded[0]:
        return
    _plugins_loaded[0] = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in _entries or point.name in _aliases:
            if _entries.get(point.name) != point.value:
                log.warning(
                    "benchmark plugin %r (%s): name taken; skipped", point.name, point.value
                )
            continue
        try:
            register_lazy_benchmark(point.name, point.value)
        except ValueError as exc:
            log.warning("benchmark plugin %r (%s) skipped: %s", point.name, point.value, exc)


def _from_import_path(target: str) -> type[Benchmark]:
    """Import ``target``, check it is a Benchmark with a name, register it under that name."""
    from sparse_attention_hub.benchmarks.base import Benchmark

    cls = import_target(target)
    if not (isinstance(cls, type) and issubclass(cls, Benchmark)):
        raise BenchmarkImportError(f"benchmark {target!r} is {cls!r}, not a Benchmark subclass")
    name = cls.benchmark_name
    if not isinstance(name, str) or not name.strip() or is_import_path(name):
        raise BenchmarkImportError(
            f"benchmark {target!r} needs a benchmark_name (it names the cell folders), got {name!r}"
        )
    current = _entries.get(name)
    if current is None:
        _entries[name] = cls
    elif current is not cls and current != target:
        owner = current if isinstance(current, str) else current.__module__ + ":" + current.__name__
        raise BenchmarkImportError(
            f"benchmark {target!r} has benchmark_name {name!r}, already registered to {owner}"
        )
    else:
        _entries[name] = cls
    return cls


BenchmarkT = TypeVar("BenchmarkT", bound="type[Benchmark]")


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"benchmark {what} must be a non-empty str, got {name!r}")
    return name


def _add_aliases(name: str, aliases: Iterable[str]) -> None:
    for alias in aliases:
        _check_name(alias, "alias")
        owner = _aliases.get(alias)
        if (owner is not None and owner != name) or (alias in _entries and alias != name):
            raise ValueError(f"benchmark alias {alias!r} is already taken by {owner or alias!r}")
        _aliases[alias] = name


def register_benchmark(
    name: str, aliases: Iterable[str] = (), hidden: bool = False
) -> Callable[[BenchmarkT], BenchmarkT]:
    """Class decorator: register a :class:`Benchmark` subclass under ``name`` (and ``aliases``).

    Re-registering a name that is still a lazy ``"module:Class"`` entry is how a built-in
    benchmark's module fills in its class; registering a different class under a taken name
    raises ValueError.
    """
    _check_name(name, "name")
    alias_list = [aliases] if isinstance(aliases, str) else list(aliases)

    def decorator(cls: BenchmarkT) -> BenchmarkT:
        current = _entries.get(name)
        if current is not None and not isinstance(current, str) and current is not cls:
            raise ValueError(f"benchmark {name!r} is already registered to {current.__name__}")
        if isinstance(current, str) and current.split(":")[1] != cls.__name__:
            raise ValueError(f"benchmark {name!r} is already registered lazily to {current}")
        if name in _aliases:
            raise ValueError(f"benchmark name {name!r} is already an alias of {_aliases[name]!r}")
        _entries[name] = cls
        _add_aliases(name, alias_list)
        if hidden:
            _hidden.add(name)
        return cls

    return decorator


def register_lazy_benchmark(
    name: str, target: str, aliases: Iterable[str] = (), hidden: bool = False
) -> None:
    """Register ``name`` -> ``"module.path:ClassName"``, imported only when first resolved."""
    _check_name(name, "name")
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(
            f"lazy benchmark target must look like 'module.path:ClassName', got {target!r}"
        )
    if name in _entries and _entries[name] != target:
        raise ValueError(f"benchmark {name!r} is already registered")
    _entries[name] = target
    _add_aliases(name, [aliases] if isinstance(aliases, str) else list(aliases))
    if hidden:
        _hidden.add(name)


def canonical_name(benchmark_name: str) -> str:
    """The registered name for ``benchmark_name``, one of its aliases or an import path (which
    is imported); ValueError if unknown, BenchmarkImportError if it cannot be imported."""
    if is_import_path(benchmark_name):
        return _from_import_path(benchmark_name).benchmark_name
    load_plugins()
    name = _aliases.get(benchmark_name, benchmark_name)
    if name not in _entries:
        raise ValueError(
            f"unknown benchmark {benchmark_name!r}; available: {', '.join(get_available_benchmarks())}"
        )
    return name


def get_benchmark_class(benchmark_name: str) -> type[Benchmark]:
    """Resolve a name or alias to its Benchmark class, importing a lazy entry on first use."""
    from sparse_attention_hub.benchmarks.base import Benchmark

    if is_import_path(benchmark_name):
        return _from_import_path(benchmark_name)
    name = canonical_name(benchmark_name)
    entry = _entries[name]
    if isinstance(entry, str):
        entry = import_target(entry)
        _entries[name] = entry
    if not (isinstance(entry, type) and issubclass(entry, Benchmark)):
        raise TypeError(f"benchmark {name!r} resolves to {entry!r}, not a Benchmark subclass")
    return entry


def get_available_benchmarks() -> list[str]:
    """The names of the listed (not hidden) benchmarks, plugins included, sorted."""
    load_plugins()
    return sorted(name for name in _entries if name not in _hidden)


def create_benchmark_instance(
    benchmark_name: str, subsets: list[str] | None = None, **benchmark_kwargs: Any
) -> Benchmark:
    """Build the benchmark ``benchmark_name`` for ``subsets`` (None = all of them).

    ``benchmark_kwargs`` go to the constructor (e.g. ``data_dir``, ``num_samples``). An unknown
    name or subset raises ValueError listing the valid ones.
    """
    cls = get_benchmark_class(benchmark_name)
    return cls(subsets_to_run=subsets, **benchmark_kwargs)


_DATA_DIR_HELP = "local files in the hub schema instead of the hub"


def describe_options(cls: type[Benchmark]) -> str:
    """``"options: name=default: meaning; ..."`` from the constructor and ``option_help``."""
    parts = []
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "subsets_to_run") or param.kind is param.VAR_KEYWORD:
            continue
        default = "" if param.default is param.empty else f"={param.default!r}"
        meaning = cls.option_help.get(name, _DATA_DIR_HELP if name == "data_dir" else "")
        parts.append(f"{name}{default}" + (f": {meaning}" if meaning else ""))
    return "options: " + "; ".join(parts) if parts else ""


def describe_benchmarks() -> list[tuple[str, str, str]]:
    """``(name, subsets and options, description)`` for every listed benchmark.

    The second item holds a "subsets: ..." line and an "options: ..." line (constructor
    options with their defaults and meanings), for ``sah list benchmarks``.
    """
    rows = []
    for name in get_available_benchmarks():
        try:
            cls = get_benchmark_class(name)
        except (ImportError, ValueError, TypeError) as exc:
            rows.append((name, "", f"(unavailable: {exc})"))
            continue
        aliases = sorted(alias for alias, owner in _aliases.items() if owner == name)
        subsets = "subsets: " + ", ".join(cls.all_datasets) if cls.all_datasets else ""
        subsets = "\n".join(line for line in (subsets, describe_options(cls)) if line)
        description = cls.description or (cls.__doc__ or "").strip().splitlines()[0]
        if aliases:
            description += f" (aliases: {', '.join(aliases)})"
        rows.append((name, subsets, description))
    return rows
