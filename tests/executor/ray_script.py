"""A two-cell matrix on the Ray backend (driven by test_ray_backend.py).

    python ray_script.py RESULT_DIR RAY_ADDRESS

Cells: ``ok`` (at once) and ``sleep_3.0``; one 1-CPU actor each.
"""

from __future__ import annotations

import sys

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from tests.support.fault_benchmark import FAULT

MATRIX = dict(
    model_names=["fake/model"],
    sparse_attention_configs=[("dense", None)],
    benchmark_configs=[BenchmarkConfig(FAULT, ["ok", "sleep_3.0"])],
    adapter_config=AdapterConfig(),
)


def main() -> None:
    executor = BenchmarkExecutor(
        None, 2, base_result_dir=sys.argv[1], backend="ray", ray_address=sys.argv[2]
    )
    executor.run_benchmark_matrix(**MATRIX)


if __name__ == "__main__":
    main()
