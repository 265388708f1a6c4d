"""The benchmark suite: the Benchmark base class, the registry, scoring helpers, local data.

Importing this package stays light: benchmark modules (and jieba, rouge, datasets) are imported
only when a benchmark is resolved by name or used. Nothing here imports multiprocessing or the
executor (:mod:`sparse_attention_hub.executor` runs a study matrix of benchmarks).
"""

from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.registry import (
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
