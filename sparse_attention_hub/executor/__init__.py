"""The BenchmarkExecutor and its public names (seed 001's API): import them from here.

    from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor

Modules: ``config`` (dataclasses), ``matrix`` (expansion, fingerprints), ``validation``,
``planning`` (checked cells, stale moves), ``scheduling`` and ``worker``/``worker_cell``
(processes; ``protocol`` holds the messages), ``backend`` (local processes or Ray actors:
``local_launcher``, ``ray_launcher``, ``ray_actor``, ``ray_session``, ``ray_health``; the nodes' probe is ``sparse_attention_hub.node_probe``),
``preflight`` and ``hub_check`` (models and data resolved before any worker starts),
``progress``, ``summary``, ``lock`` and ``lease`` (one run per results directory),
``signals``, ``results`` (the results table).
"""

from sparse_attention_hub.executor.config import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkFailure,
    BenchmarkResult,
    BenchmarkStub,
    ClusterLostError,
    ExecutionInterrupted,
    ExecutionProgress,
    ExecutionResults,
    WorkerStartupError,
    sanitize_model_name,
)
from sparse_attention_hub.executor.executor import BenchmarkExecutor
from sparse_attention_hub.executor.preflight import PreflightError
from sparse_attention_hub.executor.validation import ExecutorConfigError

__all__ = [
    "AdapterConfig",
    "BenchmarkConfig",
    "BenchmarkExecutor",
    "BenchmarkFailure",
    "BenchmarkResult",
    "BenchmarkStub",
    "ClusterLostError",
    "ExecutionInterrupted",
    "ExecutionProgress",
    "ExecutionResults",
    "ExecutorConfigError",
    "PreflightError",
    "WorkerStartupError",
    "sanitize_model_name",
]
