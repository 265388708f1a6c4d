"""Check an :class:`ExperimentSpec`'s names against the library's registries.

Masker names and parameters (decode and prefill maskers) go through
``ResearchAttentionConfig.from_dict`` one masker at a time, benchmarks through ``create_benchmark_instance`` (which checks subsets and options
without loading data), metric names through the MicroMetricLogger registry. Every error is
re-raised as an :class:`ExperimentError` naming the file and the key path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sparse_attention_hub.experiment.checks import ExperimentError, Source, allowed, join
from sparse_attention_hub.experiment.spec import BenchmarkSpec, ExperimentSpec


def validate_spec(spec: ExperimentSpec) -> None:
    """Raise ExperimentError on the first unknown masker, parameter, benchmark, subset or metric."""
    src = Source(spec.source)
    check_model_paths(spec, src)
    for name, maskers in spec.sparse_configs:
        for i, entry in enumerate(maskers or []):
            check_masker(entry, join(join("sparse_configs", name), i), src)
        prefill_path = join(join("sparse_configs", name), "prefill_maskers")
        for i, entry in enumerate(spec.prefill.get(name, {}).get("prefill_maskers", [])):
            check_masker(entry, join(prefill_path, i), src, prefill=True)
    for i, bench in enumerate(spec.benchmarks):
        check_benchmark(bench, join("benchmarks", i), src)
    check_metrics(spec.executor.enabled_metrics, src)


def check_model_paths(spec: ExperimentSpec, src: Source) -> None:
    """Models written as local paths must be model folders (before any worker starts).

    Relative paths are resolved from the working directory, not from the experiment file.
    """
    for i, model in enumerate(spec.models):
        if not isinstance(model, str) or model not in spec.local_model_paths:
            continue
        folder = Path(model)
        if not folder.is_dir():
            raise src.error(
                join("models", i),
                f"local model path {model!r} does not exist (relative paths are resolved from "
                f"the working directory {os.getcwd()}); give a model folder or a hub id like "
                "org/name",
            )
        if not (folder / "config.json").is_file():
            raise src.error(
                join("models", i),
                f"{model!r} is not a model folder: it has no config.json "
                "(make one with from_pretrained(...).save_pretrained(path), or sah make-tiny-model)",
            )


#: YAML 1.1 spellings of numbers that the study loader reads as text (see checks.py).
YAML11_NUMBER = re.compile(
    r"^[-+]?(?:0[xXoObB][0-9a-fA-F_]+|0[0-9_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+)$"
)


def _masker_names(prefill: bool = False) -> list[str]:
    if prefill:
        from sparse_attention_hub.sparse_attention.prefill.registry import (
            available_prefill_maskers,
        )

        return available_prefill_maskers()
    from sparse_attention_hub.sparse_attention.maskers import describe_maskers

    return [row[0] for row in describe_maskers()]


def _field_in(message: str, params: dict[str, Any]) -> str | None:
    """The parameter a config error message is about, when it names one."""
    for key in sorted(params, key=len, reverse=True):
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(key)}(?![A-Za-z0-9_])", message):
            return key
    return None


def check_masker(
    entry: dict[str, dict[str, Any]], path: str, src: Source, prefill: bool = False
) -> None:
    """One ``{masker_name: {param: value}}`` entry, e.g. ``{"sink": {"sink_size": 128}}``
    (with ``prefill``: an entry of ``prefill_maskers``, read by the prefill registry)."""
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

    ((name, params),) = entry.items()
    known = _masker_names(prefill)
    if prefill and name not in known:
        message = f"unknown prefill masker {name!r} (sah list prefill); allowed: {allowed(known)}"
        raise src.error(path, message)
    if name not in known and ":" not in name:  # an import path is resolved (and checked) below
        raise src.error(path, f"unknown masker {name!r}; allowed: {allowed(known)}")
    try:
        ResearchAttentionConfig.from_dict({"prefill_maskers" if prefill else "maskers": [entry]})
    except (ValueError, TypeError, KeyError) as exc:
        message = str(exc).strip().strip('"') or type(exc).__name__
        key = _field_in(message, params)
        if key is not None and isinstance(params[key], str) and YAML11_NUMBER.match(params[key]):
            message += " (integers in a study file are decimal: 0x10, 0o20, 020 and 1:30 are text)"
        raise src.error(join(join(path, name), key) if key else join(path, name), message) from None


def check_benchmark(bench: BenchmarkSpec, path: str, src: Source) -> None:
    """A benchmark name (or alias), its subsets and its constructor options."""
    from sparse_attention_hub.benchmarks import create_benchmark_instance, get_available_benchmarks
    from sparse_attention_hub.benchmarks.registry import BenchmarkImportError, canonical_name

    name_path = path if bench.subsets is None and not bench.benchmark_kwargs else join(path, "name")
    try:
        canonical_name(bench.name)
    except BenchmarkImportError as exc:  # an import path: say what failed to import
        raise src.error(name_path, str(exc)) from None
    except ValueError:
        raise src.error(
            name_path,
            f"unknown benchmark {bench.name!r}; allowed: {allowed(get_available_benchmarks())}",
        ) from None
    kwargs = dict(bench.benchmark_kwargs or {})
    try:
        create_benchmark_instance(bench.name, subsets=bench.subsets, **kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc)
        raise src.error(_benchmark_error_path(path, message, kwargs), message) from None


def _benchmark_error_path(path: str, message: str, kwargs: dict[str, Any]) -> str:
    """Where a benchmark constructor's complaint points: an option, the options, or subsets."""
    key = _field_in(message, kwargs)
    if key is not None:
        return join(join(path, "benchmark_kwargs"), key)
    if "option" in message:
        return join(path, "benchmark_kwargs")
    if "subset" in message:
        return join(path, "subsets")
    return path


def check_metrics(metrics: list[str] | str | None, src: Source) -> None:
    """Metric names must be registered (by the code that logs them)."""
    if metrics is None or metrics == "all":
        return
    import sparse_attention_hub.sparse_attention  # noqa: F401  (registers its metrics)
    from sparse_attention_hub.metric_logging import MicroMetricLogger

    registered = sorted(MicroMetricLogger.get_registered_metrics())
    for i, metric in enumerate(metrics):
        if registered and metric not in registered:
            raise ExperimentError(
                src.name,
                join("executor.enabled_metrics", i),
                f"unknown metric {metric!r}; allowed: all, {', '.join(registered)}",
            )
