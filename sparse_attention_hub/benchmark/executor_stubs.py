"""Matrix expansion, fingerprints and the status of a cell directory on disk.

A cell is *complete* when its metrics.json and the required files exist and the fingerprint
in its config.json matches the stub's; *stale* when it holds results of a different config
under the same name; *partial* when it holds an unfinished run of the same config (it resumes
from predictions.jsonl); *pending* when there is nothing there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from sparse_attention_hub.benchmark.executor_config import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkStub,
    sanitize_model_name,
)

COMPLETE = "complete"
STALE = "stale"
PARTIAL = "partial"
PENDING = "pending"

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"
STALE_DIR = "stale"
DEFAULT_REQUIRED_FILES = ("metrics.json", "raw_results.csv")


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no spaces; non-JSON values (torch.dtype, Path) by str."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sparse_config_to_dict(config: Any) -> dict[str, Any] | None:
    """The JSON form of a sparse-attention config (contract 2: ``to_dict()``), None = dense."""
    if config is None:
        return None
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        return dict(result)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(
        f"sparse attention config of type {type(config).__name__} has no to_dict(); "
        "give a ResearchAttentionConfig or None (dense)"
    )


def resolved_config(stub: BenchmarkStub) -> dict[str, Any]:
    """Everything that determines a cell's results, JSON-able (written to config.json)."""
    adapter = stub.adapter_config
    return json.loads(
        canonical_json(
            {
                "model_name": stub.model_name,
                "adapter_name": adapter.adapter_name,
                "model_kwargs": adapter.model_kwargs or {},
                "tokenizer_kwargs": adapter.tokenizer_kwargs or {},
                "sparse_config_name": stub.sparse_config_name,
                "sparse_attention_config": sparse_config_to_dict(stub.sparse_attention_config),
                "benchmark_name": stub.benchmark_name,
                "subset": stub.subset,
                "benchmark_kwargs": stub.benchmark_kwargs,
                "generation_kwargs": stub.generation_kwargs,
                "request_kwargs": stub.request_kwargs,
            }
        )
    )


def compute_fingerprint(stub: BenchmarkStub) -> str:
    """sha256 of the canonical resolved config (the config's display name left out)."""
    resolved = resolved_config(stub)
    resolved.pop("sparse_config_name")
    return hashlib.sha256(canonical_json(resolved).encode("utf-8")).hexdigest()


def cell_dir(
    base_dir: str | Path, model: str, config_name: str, bench: str, subset: str | None
) -> Path:
    """``<base>/<sanitized model>/<config name>/<benchmark>[_<subset>]``."""
    leaf = bench if subset is None else f"{bench}_{subset}"
    return Path(base_dir) / sanitize_model_name(model) / config_name / leaf


def expand_matrix(
    base_dir: str | Path,
    model_names: list[str],
    sparse_attention_configs: list[tuple[str, Any]],
    benchmark_configs: list[BenchmarkConfig],
    adapter_config: AdapterConfig,
    generation_kwargs: dict[str, Any] | None = None,
    request_kwargs: dict[str, Any] | None = None,
) -> list[BenchmarkStub]:
    """All cells of the matrix, in model-major order, each with its fingerprint.

    A BenchmarkConfig without subsets gives one cell for the whole benchmark.
    """
    base = Path(base_dir).resolve()
    stubs = []
    for model in model_names:
        for config_name, sparse_config in sparse_attention_configs:
            for bench in benchmark_configs:
                subsets: list[str | None] = list(bench.subsets) if bench.subsets else [None]
                for subset in subsets:
                    stub = BenchmarkStub(
                        model_name=model,
                        sparse_config_name=config_name,
                        sparse_attention_config=sparse_config,
                        benchmark_name=bench.benchmark_name,
                        subset=subset,
                        adapter_config=adapter_config,
                        generation_kwargs=dict(generation_kwargs or {}),
                        result_dir=str(
                            cell_dir(base, model, config_name, bench.benchmark_name, subset)
                        ),
                        request_kwargs=dict(request_kwargs or {}),
                        benchmark_kwargs=dict(bench.benchmark_kwargs or {}),
                    )
                    stub.fingerprint = compute_fingerprint(stub)
                    stubs.append(stub)
    return stubs


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_json_atomic(path: Path, value: Any, fsync: bool = False) -> None:
    """Write JSON to a temporary file beside ``path`` and rename it over ``path``.

    Readers never see a torn file, even if the writing process is killed. ``fsync`` also
    survives a power loss, at some milliseconds per file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True, default=str)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def cell_status(
    stub: BenchmarkStub,
    required_files: tuple[str, ...] | list[str] = DEFAULT_REQUIRED_FILES,
    validate_files: bool = True,
) -> str:
    """COMPLETE, STALE, PARTIAL or PENDING for the stub's directory (reads only)."""
    root = Path(stub.result_dir)
    if not root.is_dir():
        return PENDING
    entries = [p for p in root.iterdir() if p.name != STALE_DIR and not p.name.startswith(".")]
    if not entries:
        return PENDING
    config = read_json(root / CONFIG_FILE)
    if config is None or config.get("fingerprint") != stub.fingerprint:
        return STALE
    needed = [METRICS_FILE, *(required_files if validate_files else [])]
    if all((root / name).is_file() for name in needed):
        return COMPLETE
    return PARTIAL


def recorded_seconds(result_dir: str | Path) -> float | None:
    """The seconds a cell's last run took, from the execution record in its config.json."""
    config = read_json(Path(result_dir) / CONFIG_FILE) or {}
    execution = config.get("execution")
    seconds = execution.get("seconds") if isinstance(execution, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    return float(seconds)


def move_to_stale(result_dir: str | Path) -> Path:
    """Move everything in the cell directory (but earlier stale/) into stale/<timestamp>/."""
    root = Path(result_dir)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    target = root / STALE_DIR / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = root / STALE_DIR / f"{stamp}_{suffix}"
    target.mkdir(parents=True)
    for entry in root.iterdir():
        if entry.name != STALE_DIR:
            shutil.move(str(entry), str(target / entry.name))
    return target
