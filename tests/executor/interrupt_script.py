"""Run a two-cell matrix whose second cell sleeps a minute (driven by test_interrupt.py)."""

from __future__ import annotations

import sys

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from tests.support.fault_benchmark import FAULT

MATRIX = dict(
    model_names=["fake/model"],
    sparse_attention_configs=[("dense", None)],
    benchmark_configs=[
        BenchmarkConfig(FAULT, ["ok", "pidfile"], benchmark_kwargs={"seconds": 60.0})
    ],
    adapter_config=AdapterConfig(),
)


def main() -> None:
    executor = BenchmarkExecutor(None, 2, base_result_dir=sys.argv[1], verbose=False)
    executor.run_benchmark_matrix(**MATRIX)


if __name__ == "__main__":
    main()
