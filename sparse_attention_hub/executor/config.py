"""Configuration and result dataclasses of the BenchmarkExecutor (seed 001's public API).

A study is the matrix ``models x sparse configs x benchmarks x subsets``; each entry of the
matrix is a :class:`BenchmarkStub` (one cell directory). Everything here is picklable, so
stubs travel to worker processes as they are.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.cell_store import canonical_json

# Failure categories of a cell (BenchmarkFailure.error_type).
GPU_OOM = "gpu_oom"
MODEL_LOADING = "model_loading"
DATASET = "dataset"
TIMEOUT = "timeout"
WORKER_CRASH = "worker_crash"
DISK = "disk"  # the results disk is full, over quota, read-only or failing
OTHER = "other"
FAILURE_CATEGORIES = (GPU_OOM, MODEL_LOADING, DATASET, TIMEOUT, WORKER_CRASH, DISK, OTHER)

_UNSAFE_CHARS = '/\\:*?"<>|'
MAX_NAME_BYTES = 255  # one path component on Linux and macOS file systems


def sanitize_model_name(model_name: str) -> str:
    """Make a model name safe as one directory name (seed 001's rule).

    ``/ \\ : * ? " < > |`` become ``_``, runs of ``_`` collapse to one and leading or trailing
    ``_`` are stripped: ``"meta-llama/Llama-3.1-8B"`` -> ``"meta-llama_Llama-3.1-8B"``.
    """
    sanitized = model_name
    for char in _UNSAFE_CHARS:
        sanitized = sanitized.replace(char, "_")
    while "__" in sanitized:
        sanitized = sanitized.replace("__", "_")
    return sanitized.strip("_")


def folder_key(name: str) -> str:
    """The spelling under which a case-insensitive file system (macOS, Windows) stores a
    folder name: two names with the same key share one folder there (``TopK`` and ``topk``)."""
    return unicodedata.normalize("NFC", name).casefold()


def path_component_problem(kind: str, name: str) -> str | None:
    """Why ``name`` cannot be one directory level of a cell path, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return f"{kind} {name!r} is empty"
    if name != name.strip():
        return f"{kind} {name!r} has leading or trailing whitespace"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return (
            f"{kind} {name[:40]!r}... is {len(name.encode('utf-8'))} bytes long; "
            f"a directory name can have at most {MAX_NAME_BYTES}"
        )
    if name in (".", "..") or ".." in name:
        return f"{kind} {name!r} contains '..'"
    bad = sorted({c for c in name if c in _UNSAFE_CHARS or ord(c) < 32})
    if bad:
        return f"{kind} {name!r} contains {''.join(bad)!r}; path separators and {_UNSAFE_CHARS!r} are not allowed"
    return None


@dataclass
class BenchmarkConfig:
    """One benchmark of the matrix: its name (a registered name, an alias, or an import path
    ``"my_package.my_module:MyBenchmark"``), the subsets to run (None = one cell for the whole
    benchmark) and keyword arguments for the benchmark's constructor (e.g. data_dir,
    num_samples). Each subset becomes its own cell, named after the benchmark_name.
    """

    benchmark_name: str
    subsets: list[str] | None = None
    benchmark_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.benchmark_name, str) or not self.benchmark_name.strip():
            raise ValueError(
                f"BenchmarkConfig.benchmark_name must be a non-empty str, got {self.benchmark_name!r}"
            )
        self.benchmark_name = self.benchmark_name.strip()
        if self.subsets is not None:
            if isinstance(self.subsets, str) or not all(isinstance(s, str) for s in self.subsets):
                raise TypeError(
                    f"BenchmarkConfig.subsets must be a list of str or None, got {self.subsets!r}"
                )
            if not self.subsets or not all(s.strip() for s in self.subsets):
                raise ValueError(
                    f"BenchmarkConfig.subsets={self.subsets!r}: give non-empty subset names, "
                    "or None for the whole benchmark"
                )
            self.subsets = [s.strip() for s in self.subsets]
        if self.benchmark_kwargs is not None and not isinstance(self.benchmark_kwargs, dict):
            raise TypeError(
                f"BenchmarkConfig.benchmark_kwargs must be a dict or None, got {self.benchmark_kwargs!r}"
            )


@dataclass
class AdapterConfig:
    """The adapter every cell builds; the sparse config is a dimension of the matrix instead."""

    adapter_name: str = "huggingface"
    model_kwargs: dict[str, Any] | None = None
    tokenizer_kwargs: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.adapter_name, str) or not self.adapter_name.strip():
            raise ValueError(
                f"AdapterConfig.adapter_name must be a non-empty str, got {self.adapter_name!r}"
            )
        self.adapter_name = self.adapter_name.strip()
        if self.adapter_name != "huggingface":
            raise ValueError(
                f"AdapterConfig.adapter_name={self.adapter_name!r} is not supported; "
                "allowed: 'huggingface'"
            )
        for name in ("model_kwargs", "tokenizer_kwargs"):
            value = getattr(self, name)
            if value is None:
                setattr(self, name, {})
            elif not isinstance(value, dict):
                raise TypeError(f"AdapterConfig.{name} must be a dict or None, got {value!r}")


@dataclass
class BenchmarkStub:
    """One cell: model x sparse config x benchmark x subset, and where its files go."""

    model_name: str
    sparse_config_name: str
    sparse_attention_config: Any
    benchmark_name: str
    subset: str | None
    adapter_config: AdapterConfig
    generation_kwargs: dict[str, Any]
    result_dir: str
    request_kwargs: dict[str, Any] = field(default_factory=dict)
    benchmark_kwargs: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    estimated_cost: float | None = None
    benchmark_source: str | None = None  # the import path a benchmark was named by, if any
    model_identity: str = ""  # see model_identity.py; "" means model_name

    @property
    def model_folder(self) -> str:
        """The cell path's model level: the sanitized model identity (not a local path)."""
        return sanitize_model_name(self.model_identity or self.model_name)

    @property
    def cell_id(self) -> str:
        """``model/config/benchmark[_subset]``: the cell's path below the base directory."""
        bench = (
            self.benchmark_name if self.subset is None else f"{self.benchmark_name}_{self.subset}"
        )
        return f"{self.model_folder}/{self.sparse_config_name}/{bench}"

    @property
    def model_key(self) -> tuple[str, str]:
        """What a worker must have loaded to run this cell without reloading."""
        adapter = self.adapter_config
        kwargs = canonical_json([adapter.model_kwargs, adapter.tokenizer_kwargs])
        return (self.model_name, f"{adapter.adapter_name}:{kwargs}")


@dataclass
class BenchmarkResult:
    """A cell that ran to completion."""

    stub: BenchmarkStub
    metrics: dict[str, Any] | None
    execution_time: float
    success: bool = True
    error_message: str | None = None
    attempts: int = 1


@dataclass
class BenchmarkFailure:
    """A cell that failed; ``error_type`` is one of FAILURE_CATEGORIES."""

    stub: BenchmarkStub
    error_message: str
    error_type: str
    execution_time: float
    attempts: int = 1
    traceback_path: str | None = None


@dataclass
class ExecutionProgress:
    """Counts of the run so far; ``current_executions`` maps worker index -> cell id."""

    total_stubs: int
    skipped_stubs: int = 0
    completed_stubs: int = 0
    failed_stubs: int = 0
    current_executions: dict[int, str] = field(default_factory=dict)

    @property
    def pending_stubs(self) -> int:
        """Cells neither skipped nor finished yet (running ones included)."""
        return self.total_stubs - self.skipped_stubs - self.completed_stubs - self.failed_stubs

    @property
    def completion_percentage(self) -> float:
        """Finished cells over cells to run, in percent (100 when nothing had to run)."""
        to_run = self.total_stubs - self.skipped_stubs
        if to_run <= 0:
            return 100.0
        return (self.completed_stubs + self.failed_stubs) / to_run * 100.0


@dataclass
class ExecutionResults:
    """What a run of the matrix produced (also written to execution_summary.json)."""

    execution_summary: dict[str, Any]
    individual_results: list[BenchmarkResult]
    failed_executions: list[BenchmarkFailure]
    execution_time: float
    progress: ExecutionProgress
    skipped: list[BenchmarkStub] = field(default_factory=list)
    stale_moved: list[str] = field(default_factory=list)
    model_loads: int = 0
    interrupted: bool = False
    disk_error: str | None = None  # the run stopped early: the results disk is full (or failing)


class ExecutionInterrupted(KeyboardInterrupt):
    """Raised by run_benchmark_matrix after Ctrl-C / SIGTERM, once workers are stopped and the
    summary is written. ``results`` holds what finished; a rerun resumes the rest.
    """

    def __init__(self, results: ExecutionResults, signal_name: str) -> None:
        super().__init__(f"benchmark matrix interrupted by {signal_name}")
        self.results = results
        self.signal_name = signal_name


class WorkerStartupError(RuntimeError):
    """Raised by run_benchmark_matrix when worker processes keep dying during start-up, once
    the cells not run are recorded as failed and the summary is written. ``results`` holds
    what the run produced; the message says why the workers died.
    """

    def __init__(self, results: ExecutionResults, reason: str) -> None:
        super().__init__(reason)
        self.results = results


class ClusterLostError(WorkerStartupError):
    """Raised by run_benchmark_matrix when the Ray cluster is lost mid-run (its GCS stopped
    answering), once the summary is written; the message says what was lost, how many cells
    are unfinished and how to resume. A WorkerStartupError: the run could not go on.
    """
