"""A small real study (tiny model, two configs, the mock benchmark, micro metrics on), run by
test_cell_defects.py in-process and as a subprocess it kills: ``study_script.py BASE MODEL``
(``... BASE MODEL dense`` runs the dense config only)."""

from __future__ import annotations

import sys
from typing import Any

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

METRICS = ["research_attention_density", "research_attention_output_error"]


def matrix(model: str, dense_only: bool = False) -> dict[str, Any]:
    sink_local = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 2}}, {"local": {"window_size": 4}}]}
    )
    return dict(
        model_names=[model],
        sparse_attention_configs=[("dense", None)]
        + ([] if dense_only else [("sink_local", sink_local)]),
        benchmark_configs=[BenchmarkConfig("mock_benchmark")],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "float32"}),
        generation_kwargs={"max_new_tokens": 3},
    )


def executor(base: str) -> BenchmarkExecutor:
    return BenchmarkExecutor(
        None, 1, base_result_dir=base, verbose=False, enabled_metrics=METRICS, max_retries=0
    )


if __name__ == "__main__":
    only = sys.argv[3:] == ["dense"]
    executor(sys.argv[1]).run_benchmark_matrix(**matrix(sys.argv[2], dense_only=only))
