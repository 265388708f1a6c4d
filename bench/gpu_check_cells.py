"""The executor's checks of ``bench/gpu_check.py``: real cells of a small study.

A study of one random-weight model (``sparse_attention_hub.testing.make_tiny_model``; on CUDA
of Llama-3.1-8B's layer shape, 2 layers, loaded in bf16), the mock benchmark and
max_new_tokens 3:

- ``peak_gpu_memory``: one cell (sink + local) on the local backend. On CUDA its
  ``resources.json`` must hold ``peak_gpu_memory_mb`` of at least the model's bf16 weights;
  on the CPU ``peak_gpu_memory_mb`` must be empty and ``peak_rss_mb`` positive.
- ``ray_fractional_gpu``: two cells (dense, sink + local) on the Ray backend with
  ``max_concurrent_runs`` 2, so on one GPU each actor asks Ray for half of it
  (``actor_gpus`` 0.5 in the summary; 1-CPU actors on the CPU); both cells must complete
  and, on CUDA, record their GPU peak. Skipped, with the reason, where Ray is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.testing import make_tiny_model

MIB = 2**20


def make_model(directory: Path, sizes: dict[str, int]) -> str:
    """The study's model directory: a tiny random Llama of ``sizes`` (vocab from the tokenizer)."""
    allowed = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}
    allowed |= {"num_key_value_heads", "head_dim"}
    return make_tiny_model(directory, "llama", **{k: v for k, v in sizes.items() if k in allowed})


def _weights_mib(model_dir: str) -> float:
    """The model's weights in bf16 (its fp32 safetensors files, halved), in MiB."""
    return sum(p.stat().st_size for p in Path(model_dir).glob("*.safetensors")) / 2 / MIB


def _run_study(
    model_dir: str, base: Path, gpu: bool, configs: list[str], backend: str, runs: int
) -> dict[str, Any]:
    """Run the study's ``configs`` cells; the execution summary."""
    sink_local = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 4}}, {"local": {"window_size": 16}}]}
    )
    named = {"dense": None, "sink_local": sink_local}
    executor = BenchmarkExecutor(
        [0] if gpu else None, runs, base_result_dir=str(base), verbose=False, max_retries=0,
        backend=backend,
    )  # fmt: skip
    results = executor.run_benchmark_matrix(
        model_names=[model_dir],
        sparse_attention_configs=[(name, named[name]) for name in configs],
        benchmark_configs=[BenchmarkConfig("mock_benchmark")],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "bfloat16"}),
        generation_kwargs={"max_new_tokens": 3},
    )
    return results.execution_summary


def _cell_figures(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cell: its status and its recorded memory figures."""
    return [
        {
            "cell": cell["cell"],
            "status": cell["status"],
            **{
                key: (cell.get("resources") or {}).get(key)
                for key in ("peak_gpu_memory_mb", "peak_rss_mb")
            },
        }
        for cell in summary["cells"]
    ]


def _memory_ok(cell: dict[str, Any], gpu: bool, weights_mib: float) -> bool:
    """On CUDA a GPU peak of at least the weights; on the CPU none, and a positive RSS peak."""
    if cell["status"] != "complete":
        return False
    if gpu:
        return (cell["peak_gpu_memory_mb"] or 0.0) >= weights_mib
    return cell["peak_gpu_memory_mb"] is None and (cell["peak_rss_mb"] or 0.0) > 0


def check_peak_gpu_memory(model_dir: str, workdir: Path, gpu: bool) -> dict[str, Any]:
    """One real cell on the local backend records its peak memory (see the module)."""
    summary = _run_study(model_dir, workdir / "local_study", gpu, ["sink_local"], "local", 1)
    cells, weights = _cell_figures(summary), _weights_mib(model_dir)
    return {
        "check": "peak_gpu_memory",
        "ok": bool(cells) and all(_memory_ok(c, gpu, weights) for c in cells),
        "cells": cells,
        "weights_bf16_mib": round(weights, 1),
        "target": "peak_gpu_memory_mb >= weights_bf16_mib" if gpu else "peak_gpu_memory_mb null",
    }


def check_ray_fractional_gpu(model_dir: str, workdir: Path, gpu: bool) -> dict[str, Any]:
    """Two cells on two Ray actors sharing the GPU (see the module)."""
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        reason = f'ray is not importable ({exc}); pip install "sparse-attention-hub[ray]"'
        return {"check": "ray_fractional_gpu", "ok": None, "skipped": reason}
    configs = ["dense", "sink_local"]
    summary = _run_study(model_dir, workdir / "ray_study", gpu, configs, "ray", 2)
    cells, backend = _cell_figures(summary), summary["backend"]
    share = 0.5 if gpu else 0.0
    complete = len(cells) == 2 and all(c["status"] == "complete" for c in cells)
    recorded = all(c["peak_gpu_memory_mb"] for c in cells) if gpu else True
    return {
        "check": "ray_fractional_gpu",
        "ok": complete and recorded and backend.get("actor_gpus") == share,
        "actor_gpus": backend.get("actor_gpus"),
        "actors": len(backend.get("actors", [])),
        "cells": cells,
        "target": f"both cells complete, actor_gpus == {share}"
        + (", peak_gpu_memory_mb recorded" if gpu else ""),
    }
