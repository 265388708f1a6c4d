"""Up-front checks of an executor and its matrix: every problem found, in one error.

Nothing here starts a process, loads a model or initialises CUDA.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from pathlib import Path
from typing import Any

from sparse_attention_hub.executor.config import (
    MAX_NAME_BYTES,
    AdapterConfig,
    BenchmarkConfig,
    folder_key,
    path_component_problem,
    sanitize_model_name,
)
from sparse_attention_hub.executor.model_identity import model_identity


class ExecutorConfigError(ValueError):
    """Invalid executor settings or matrix; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) with the benchmark matrix:\n{lines}")


DENSE_NAME = "dense"
#: The longest timeout_per_benchmark and progress_interval (one year): a finite number of
#: seconds, so .inf and 1e300 (which overflow a wait) are refused.
MAX_SECONDS = 365 * 24 * 3600


def pickle_problem(label: str, value: Any) -> str | None:
    """Why ``value`` cannot travel to a worker process (it must pickle), or None."""
    try:
        pickle.dumps(value)
    except Exception as exc:
        return f"{label} cannot be sent to a worker process (it does not pickle: {exc!r})"
    return None


def visible_gpu_count() -> int:
    """GPUs torch can see. torch.cuda.device_count() asks NVML and does not initialise CUDA."""
    import torch

    return int(torch.cuda.device_count())


def executor_settings_problems(
    gpu_ids: Any,
    max_concurrent_runs: Any,
    timeout_per_benchmark: Any,
    max_retries: Any,
    max_records: Any,
    sampling_factor: Any,
) -> list[str]:
    """Problems with the BenchmarkExecutor constructor arguments."""
    problems = []
    if not isinstance(max_concurrent_runs, int) or max_concurrent_runs < 1:
        problems.append(f"max_concurrent_runs={max_concurrent_runs!r}: must be an int >= 1")
    if gpu_ids is not None and not isinstance(gpu_ids, (list, tuple)):
        problems.append(f"gpu_ids={gpu_ids!r}: must be a list of GPU ids, or None/[] for CPU")
    elif gpu_ids:
        if not all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpu_ids):
            problems.append(
                f"gpu_ids={gpu_ids!r}: must be a list of non-negative ints, or None/[] for CPU"
            )
        elif len(set(gpu_ids)) != len(gpu_ids):
            problems.append(f"gpu_ids={list(gpu_ids)!r}: contains duplicates")
        else:
            count = visible_gpu_count()
            missing = [g for g in gpu_ids if g >= count]
            if missing:
                problems.append(
                    f"gpu_ids {missing} do not exist: {count} GPU(s) visible (valid ids 0..{count - 1})"
                    if count
                    else f"gpu_ids {missing} do not exist: no GPU is visible; use gpu_ids=None for CPU"
                )
    if timeout_per_benchmark is not None and not _seconds(timeout_per_benchmark):
        problems.append(
            f"timeout_per_benchmark={timeout_per_benchmark!r}: must be in (0, {MAX_SECONDS}] "
            "seconds, or None for no limit"
        )
    if not isinstance(max_retries, int) or max_retries < 0:
        problems.append(f"max_retries={max_retries!r}: must be an int >= 0")
    if max_records is not None and (not isinstance(max_records, int) or max_records < 1):
        problems.append(f"max_records={max_records!r}: must be an int >= 1 or None")
    if not isinstance(sampling_factor, (int, float)) or not 0.0 <= sampling_factor <= 1.0:
        problems.append(f"sampling_factor={sampling_factor!r}: must be in [0, 1]")
    return problems


def base_dir_problem(base_dir: str | Path) -> str | None:
    """Why results cannot be written under base_dir (nothing is created), or None."""
    path = Path(base_dir).resolve()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return f"base_result_dir {str(base_dir)!r}: {str(probe)!r} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"base_result_dir {str(base_dir)!r}: {str(probe)!r} is not writable"
    return None


def _model_problems(model_names: Any) -> list[str]:
    if not isinstance(model_names, (list, tuple)) or not model_names:
        return [f"model_names={model_names!r}: give a non-empty list of model names"]
    problems = []
    seen: dict[str, str] = {}
    for name in model_names:
        if not isinstance(name, str) or not name.strip():
            problems.append(f"model name {name!r}: must be a non-empty str")
            continue
        folder = sanitize_model_name(model_identity(name))
        problem = path_component_problem("model name (sanitized)", folder)
        key = folder_key(folder)
        if problem:
            problems.append(f"model name {name!r}: {problem}")
        elif key in seen:
            problems.append(
                f"model names {seen[key]!r} and {name!r} share the directory {folder!r} "
                "(on a case-insensitive file system when they differ only by case)"
                if seen[key] != name
                else f"model name {name!r} is listed twice"
            )
        seen.setdefault(key, name)
    return problems


def normalize_sparse_configs(configs: Any) -> tuple[list[tuple[str, Any]], list[str]]:
    """Check ``[(name, config or None), ...]``; dict configs become ResearchAttentionConfig."""
    if not isinstance(configs, (list, tuple)) or not configs:
        return [], [
            f"sparse_attention_configs={configs!r}: give a non-empty list of (name, config or None)"
        ]
    problems = []
    normalized: list[tuple[str, Any]] = []
    names: dict[str, str] = {}  # folder key -> name
    for entry in configs:
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            problems.append(f"sparse config entry {entry!r}: must be a (name, config or None) pair")
            continue
        name, config = entry
        problem = path_component_problem("sparse config name", name)
        if problem:
            problems.append(problem)
            continue
        if name == DENSE_NAME and config is not None:
            problems.append(
                f"sparse config {name!r} is not None: the name {DENSE_NAME!r} is kept for the "
                "dense baseline (config None); give this config another name"
            )
        if names.get(folder_key(name)) == name:
            problems.append(f"sparse config name {name!r} is listed twice")
        elif folder_key(name) in names:
            problems.append(
                f"sparse config names {names[folder_key(name)]!r} and {name!r} differ only by "
                "case: on a case-insensitive file system (macOS, Windows) they share one folder"
            )
        names.setdefault(folder_key(name), name)
        try:
            config = _coerce_sparse_config(config)
        except (TypeError, ValueError) as exc:
            problems.append(f"sparse config {name!r} is invalid: {exc}")
            continue
        problem = pickle_problem(f"sparse config {name!r}", config)
        if problem:
            problems.append(problem)
            continue
        normalized.append((name, config))
    return normalized, problems


def _coerce_sparse_config(config: Any) -> Any:
    if config is None:
        return None
    if isinstance(config, dict):
        from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

        return ResearchAttentionConfig.from_dict(config)
    if not callable(getattr(config, "to_dict", None)):
        raise TypeError(
            f"{type(config).__name__} is not a sparse attention config: give a "
            "ResearchAttentionConfig, its to_dict() form, or None for dense"
        )
    config.to_dict()
    return config


def _folder_problems(bench: BenchmarkConfig, name: str) -> list[str]:
    """Problems of ``bench``'s cell folder names (``name`` and each subset) and of its
    benchmark_kwargs (they travel to the workers by pickle)."""
    problems = []
    for label, value in [("benchmark name", name), *[("subset", s) for s in bench.subsets or []]]:
        problem = path_component_problem(label, value)
        if problem:
            problems.append(f"benchmark {bench.benchmark_name!r}: {problem}")
    for subset_name in bench.subsets or []:
        if len(f"{name}_{subset_name}".encode()) > MAX_NAME_BYTES:
            problems.append(
                f"benchmark {bench.benchmark_name!r}: the cell directory of subset "
                f"{subset_name[:40]!r} would be longer than {MAX_NAME_BYTES} bytes"
            )
    problem = pickle_problem("benchmark_kwargs", bench.benchmark_kwargs)
    if problem:
        problems.append(f"benchmark {bench.benchmark_name!r}: {problem}")
    return problems


def benchmark_problems(
    benchmark_configs: Any,
) -> tuple[dict[tuple[str, str | None], float | None], list[str]]:
    """Check each BenchmarkConfig against the registry (unknown names and subsets).

    Returns the estimated cost of each (benchmark, subset) cell where the benchmark knows it
    (an ``estimated_cost(subset)`` method), and the problems.
    """
    if not isinstance(benchmark_configs, (list, tuple)) or not benchmark_configs:
        return {}, [
            f"benchmark_configs={benchmark_configs!r}: give a non-empty list of BenchmarkConfig"
        ]
    from sparse_attention_hub.benchmarks import create_benchmark_instance
    from sparse_attention_hub.benchmarks.registry import canonical_name, is_import_path

    costs: dict[tuple[str, str | None], float | None] = {}
    problems = []
    for bench in benchmark_configs:
        if not isinstance(bench, BenchmarkConfig):
            problems.append(f"benchmark config {bench!r}: must be a BenchmarkConfig")
            continue
        name = bench.benchmark_name  # a cell folder is named after the benchmark_name
        if is_import_path(name):
            try:  # imported here, in the parent, before any worker starts
                name = canonical_name(name)
            except ValueError as exc:
                problems.append(f"benchmark {bench.benchmark_name!r}: {exc}")
                continue
        problems += _folder_problems(bench, name)
        try:
            instance = create_benchmark_instance(
                bench.benchmark_name, subsets=bench.subsets, **(bench.benchmark_kwargs or {})
            )
        except Exception as exc:
            problems.append(f"benchmark {bench.benchmark_name!r}: {exc}")
            continue
        estimate = getattr(instance, "estimated_cost", None)
        subsets: list[str | None] = list(bench.subsets) if bench.subsets else [None]
        for subset in subsets:
            key = (name, subset)
            if key in costs:
                label = name + (f" subset {subset!r}" if subset else "")
                problems.append(f"benchmark {label} is listed twice")
            costs[key] = estimate(subset) if callable(estimate) else None
    return costs, problems


def matrix_problems(
    model_names: Any,
    sparse_attention_configs: Any,
    benchmark_configs: Any,
    adapter_config: Any,
    base_dir: str | Path,
) -> tuple[list[tuple[str, Any]], dict[tuple[str, str | None], float | None], list[str]]:
    """Every problem with the matrix arguments and the base directory."""
    problems = _model_problems(model_names)
    configs, config_problems = normalize_sparse_configs(sparse_attention_configs)
    problems += config_problems
    costs, bench_problems = benchmark_problems(benchmark_configs)
    problems += bench_problems
    if not isinstance(adapter_config, AdapterConfig):
        problems.append(f"adapter_config={adapter_config!r}: must be an AdapterConfig")
    elif problem := pickle_problem("adapter_config", adapter_config):
        problems.append(problem)
    problem = base_dir_problem(base_dir)
    if problem:
        problems.append(problem)
    return configs, costs, problems


def gpu_config_problems(configs: list[tuple[str, Any]]) -> list[str]:
    """The sparse configs a GPU cannot run: a sparse prefill whose ``prefill_block_size`` is
    not a multiple of the GPU kernel's smallest tile (``prefill.engine.MIN_TILE``)."""
    from sparse_attention_hub.sparse_attention.prefill.engine import MIN_TILE

    problems = []
    for name, config in configs:
        block = getattr(config, "prefill_block_size", None)
        if getattr(config, "prefill_masker_configs", None) and block and block % MIN_TILE:
            problems.append(
                f"sparse config {name!r}: prefill_block_size={block}, but the sparse prefill on "
                f"a GPU needs a multiple of {MIN_TILE} tokens (the kernel's smallest tile); "
                f"allowed: 16, 32, 48, ... (default 128)"
            )
    return problems


def kwargs_problems(**kwargs: Any) -> list[str]:
    """generation_kwargs and request_kwargs: a dict or None, that a worker can receive."""
    problems = []
    for name, value in kwargs.items():
        if value is not None and not isinstance(value, dict):
            problems.append(f"{name}={value!r}: must be a dict or None")
        elif problem := pickle_problem(name, value):
            problems.append(problem)
    return problems


def shared_directory_problems(stubs: list[Any]) -> list[str]:
    """Cells whose names differ but whose directories are the same one (e.g. benchmark "a"
    with subset "b_c" and benchmark "a_b" with subset "c"), also on a case-insensitive file
    system (macOS, Windows: subsets "A" and "a")."""
    seen: dict[str, tuple[str, str]] = {}  # folder key -> (label, result_dir)
    problems = []
    for stub in stubs:
        label = f"{stub.model_name} / {stub.sparse_config_name} / {stub.benchmark_name}"
        label += "" if stub.subset is None else f" subset {stub.subset!r}"
        key = folder_key(stub.result_dir)
        if key in seen:
            first, folder = seen[key]
            problems.append(
                f"cells {first} and {label} share {stub.result_dir!r}"
                if folder == stub.result_dir
                else f"cells {first} and {label} share one folder on a case-insensitive file "
                f"system (macOS, Windows): {folder!r} and {stub.result_dir!r}"
            )
        seen.setdefault(key, (label, stub.result_dir))
    return problems


def metric_problems(enabled_metrics: Any) -> list[str]:
    """Names in enabled_metrics that no module registered (after importing the core and the
    matrix's benchmarks, which register theirs)."""
    if enabled_metrics is None or enabled_metrics == "all":
        return []
    names = [enabled_metrics] if isinstance(enabled_metrics, str) else enabled_metrics
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        return [
            f"enabled_metrics={enabled_metrics!r}: must be None, 'all' or a list of metric names"
        ]
    import sparse_attention_hub.sparse_attention  # noqa: F401  (registers its metrics)
    from sparse_attention_hub.metric_logging import MicroMetricLogger

    registered = sorted(MicroMetricLogger.get_registered_metrics())
    unknown = [n for n in names if n != "all" and n not in registered]
    if unknown:
        return [f"enabled_metrics: unknown metric(s) {unknown}; registered: {registered}"]
    return []


def run_option_problems(preflight: Any, progress_interval: Any) -> list[str]:
    """The preflight switch and the seconds between progress log lines."""
    problems = []
    if not isinstance(preflight, bool):
        problems.append(f"preflight={preflight!r}: must be True or False")
    if not _seconds(progress_interval):
        problems.append(
            f"progress_interval={progress_interval!r}: must be in (0, {MAX_SECONDS}] seconds"
        )
    return problems


def _seconds(value: Any) -> bool:
    """A number of seconds in (0, MAX_SECONDS] (not a bool, not NaN, not inf)."""
    return (
        not isinstance(value, bool) and isinstance(value, (int, float)) and 0 < value <= MAX_SECONDS
    )


def backend_problems(backend: Any, ray_address: Any) -> list[str]:
    """The backend's name, Ray's address, and whether Ray is installed when it is asked for."""
    if backend not in ("local", "ray"):
        return [f"backend={backend!r}: must be 'local' or 'ray'"]
    problems = []
    if ray_address is not None and (not isinstance(ray_address, str) or not ray_address.strip()):
        problems.append(
            f"ray_address={ray_address!r}: must be 'auto', 'local', 'host:port' or None"
        )
    if ray_address is not None and backend != "ray":
        problems.append(f"ray_address={ray_address!r} is given but backend is {backend!r}")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        problems.append(
            "backend='ray': Ray is not installed; pip install \"sparse-attention-hub[ray]\""
        )
    return problems
