"""The one benchmark registry: names (and aliases) to Benchmark classes.

Built-in benchmarks are registered lazily as ``"module.path:ClassName"`` strings, so importing
this module imports no benchmark (and none of jieba, rouge or datasets). The class is imported
the first time its name is resolved; its module's ``@register_benchmark`` decorator then
replaces the string with the class. Hidden entries resolve like any other but are not listed
by :func:`get_available_benchmarks` or :func:`describe_benchmarks`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sparse_attention_hub.benchmark.base import Benchmark

_BUILTIN: dict[str, str] = {
    "mock_benchmark": "sparse_attention_hub.benchmark.mock_benchmark:MockBenchmark",
    "synthetic_ruler": "sparse_attention_hub.benchmark.synthetic_ruler:SyntheticRuler",
    "longbench": "sparse_attention_hub.benchmark.longbench:LongBench",
    "longbench_e": "sparse_attention_hub.benchmark.longbench:LongBenchE",
    "ruler": "sparse_attention_hub.benchmark.ruler:Ruler",
    "longbench_v2": "sparse_attention_hub.benchmark.longbench_v2:LongBenchV2",
    "infinite_bench": "sparse_attention_hub.benchmark.infinite_bench:InfiniteBench",
    "aime": "sparse_attention_hub.benchmark.aime:Aime",
    "loogle": "sparse_attention_hub.benchmark.loogle:LooGLE",
    "zero_scrolls": "sparse_attention_hub.benchmark.zero_scrolls:ZeroScrolls",
    "fault_injection": "sparse_attention_hub.testing.fault_benchmark:FaultInjectionBenchmark",
}
_BUILTIN_ALIASES: dict[str, str] = {
    "mock": "mock_benchmark",
    "synthetic": "synthetic_ruler",
}
_BUILTIN_HIDDEN = {"fault_injection"}

_entries: dict[str, Any] = dict(_BUILTIN)  # name -> class or "module:Class"
_aliases: dict[str, str] = dict(_BUILTIN_ALIASES)
_hidden: set[str] = set(_BUILTIN_HIDDEN)

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
    """The registered name for ``benchmark_name`` or one of its aliases; ValueError if unknown."""
    name = _aliases.get(benchmark_name, benchmark_name)
    if name not in _entries:
        raise ValueError(
            f"unknown benchmark {benchmark_name!r}; available: {', '.join(get_available_benchmarks())}"
        )
    return name


def get_benchmark_class(benchmark_name: str) -> type[Benchmark]:
    """Resolve a name or alias to its Benchmark class, importing a lazy entry on first use."""
    from sparse_attention_hub.benchmark.base import Benchmark

    name = canonical_name(benchmark_name)
    entry = _entries[name]
    if isinstance(entry, str):
        module_path, class_name = entry.split(":")
        module = importlib.import_module(module_path)
        entry = getattr(module, class_name, None)
        if entry is None:
            raise ValueError(f"benchmark {name!r}: {module_path} has no attribute {class_name}")
        _entries[name] = entry
    if not (isinstance(entry, type) and issubclass(entry, Benchmark)):
        raise TypeError(f"benchmark {name!r} resolves to {entry!r}, not a Benchmark subclass")
    return entry


def get_available_benchmarks() -> list[str]:
    """The names of the listed (not hidden) benchmarks, sorted."""
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
