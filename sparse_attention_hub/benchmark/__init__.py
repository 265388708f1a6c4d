"""Benchmarks, their registry, and the executor that runs a study matrix.

Importing this package stays light: benchmark modules (and jieba, rouge, datasets) are imported
only when a benchmark is resolved by name or used.
"""

# --- benchmarks and registry -------------------------------------------------------------
from sparse_attention_hub.benchmark.base import Benchmark
from sparse_attention_hub.benchmark.registry import (
    create_benchmark_instance,
    describe_benchmarks,
    get_available_benchmarks,
    get_benchmark_class,
    register_benchmark,
    register_lazy_benchmark,
)

__all__ = [
    "Benchmark",
    "create_benchmark_instance",
    "describe_benchmarks",
    "get_available_benchmarks",
    "get_benchmark_class",
    "register_benchmark",
    "register_lazy_benchmark",
]

# --- executor ----------------------------------------------------------------------------
from sparse_attention_hub.benchmark.executor import BenchmarkExecutor
from sparse_attention_hub.benchmark.executor_config import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkFailure,
    BenchmarkResult,
    BenchmarkStub,
    ExecutionInterrupted,
    ExecutionProgress,
    ExecutionResults,
    WorkerStartupError,
    sanitize_model_name,
)
from sparse_attention_hub.benchmark.executor_validation import ExecutorConfigError

__all__ += [
    "AdapterConfig",
    "BenchmarkConfig",
    "BenchmarkExecutor",
    "BenchmarkFailure",
    "BenchmarkResult",
    "BenchmarkStub",
    "ExecutionInterrupted",
    "ExecutionProgress",
    "ExecutionResults",
    "ExecutorConfigError",
    "WorkerStartupError",
    "sanitize_model_name",
]
