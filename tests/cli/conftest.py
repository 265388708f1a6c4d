"""Real result directories of one tiny run, shared by the compare and resource tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig


def run_tiny(base: Path, model_dirs: list[str]) -> Path:
    """Run the mock benchmark (8 rows, 3 requests) with ``dense`` and ``sink_local`` on each
    model of ``model_dirs``, on one CPU worker, into ``base``."""
    sink_local = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 2}}, {"local": {"window_size": 4}}]}
    )
    executor = BenchmarkExecutor(None, 1, base_result_dir=str(base))
    results = executor.run_benchmark_matrix(
        model_names=model_dirs,
        sparse_attention_configs=[("dense", None), ("sink_local", sink_local)],
        benchmark_configs=[BenchmarkConfig("mock_benchmark")],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "float32"}),
        generation_kwargs={"max_new_tokens": 3},
    )
    assert not results.failed_executions, [f.error_message for f in results.failed_executions]
    return base


def model_folder(base: Path, model_dir: str) -> Path:
    """The folder of ``model_dir``'s cells under ``base`` (named from its resolved config)."""
    for config in base.glob("*/dense/mock_benchmark/config.json"):
        resolved = json.loads(config.read_text())["resolved_config"]
        if resolved.get("model_name") == model_dir or resolved.get("model") == model_dir:
            return config.parents[2]
    raise AssertionError(f"no cells of {model_dir} under {base}")


@pytest.fixture(scope="session")
def tiny_runs(
    tiny_model_dir: str, tiny_gqa_model_dir: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """``run``: the tiny Llama and the tiny Qwen2, each with dense and sink_local (4 cells);
    ``a``: the Llama's cells of it; ``b``: the Qwen2's dense cell."""
    root = tmp_path_factory.mktemp("tiny_runs")
    run = run_tiny(root / "run", [tiny_model_dir, tiny_gqa_model_dir])
    llama, qwen = (model_folder(run, d) for d in (tiny_model_dir, tiny_gqa_model_dir))
    shutil.copytree(llama, root / "a" / llama.name)
    shutil.copytree(qwen / "dense", root / "b" / qwen.name / "dense")
    return {"run": run, "a": root / "a", "b": root / "b"}
