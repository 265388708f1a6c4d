"""Executor scaling: scheduling efficiency against the LPT bound, and model loads per matrix.

1. Efficiency. 24 cells of the fault-injection benchmark that sleep 0.2 .. 2.0 s run on 2 CPU
   workers. The baseline is the longest-processing-time-first schedule of the same durations
   on the same workers, each available from the moment it reported ready (spawn time is not
   scheduling). efficiency = LPT makespan / measured makespan (target >= 0.9); overhead per
   cell = mean(parent-observed cell time - nominal sleep) (target <= 50 ms): everything the
   executor adds to a cell (pipes, config.json, logger set-up, metrics.json).
   The same matrix then runs on the Ray backend (a local Ray instance with 2 CPUs: 2 actors),
   against the same kind of bound (target >= 0.85, overhead <= 100 ms per cell). Skipped,
   saying so, where Ray is not installed.
2. Model loads. 2 tiny models x 3 sparse configs x 2 benchmarks (mock_benchmark and a small
   synthetic_ruler) on 2 workers. The baseline is one load per cell; target: loads <= models x
   workers.

Prints a few lines, then one JSON line last. Run: ``.venv/bin/python bench/executor_scaling.py``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# the test-only fault benchmark lives in tests/ and is named by its import path
ROOT = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
FAULT = "tests.support.fault_benchmark:FaultInjectionBenchmark"

DURATIONS = (0.2, 0.3, 0.5, 0.6, 0.8, 0.9, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0)  # x 2 configs = 24
WORKERS = 2


def lpt_makespan(durations: list[float], available_at: list[float]) -> float:
    """Makespan of longest-first greedy on machines free from ``available_at``."""
    finish = list(available_at)
    for duration in sorted(durations, reverse=True):
        index = min(range(len(finish)), key=finish.__getitem__)
        finish[index] += duration
    return max(finish)


def efficiency_run(base: Path, backend: str = "local") -> dict[str, Any]:
    from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor

    subsets = [f"sleep_{d:.1f}" for d in DURATIONS]
    executor = BenchmarkExecutor(
        None, WORKERS, base_result_dir=str(base), verbose=False, backend=backend
    )
    results = executor.run_benchmark_matrix(
        model_names=["bench/sleep"],
        sparse_attention_configs=[("a", None), ("b", None)],
        benchmark_configs=[BenchmarkConfig(FAULT, subsets)],
        adapter_config=AdapterConfig(),
    )
    assert not results.failed_executions, results.failed_executions
    sched = results.execution_summary["scheduling"]
    first_ready = min(sched["worker_ready_s"])
    offsets = [t - first_ready for t in sched["worker_ready_s"][:WORKERS]]
    durations = [d for d in DURATIONS for _ in range(2)]
    ideal = lpt_makespan(durations, offsets)
    nominal = {f"sleep_{d:.1f}": d for d in DURATIONS}
    per_cell = [
        (c["end_s"] - c["start_s"]) - nominal[c["cell"].rsplit("fault_injection_", 1)[1]]
        for c in sched["timeline"]
    ]
    return {
        "cells": len(durations),
        "workers": WORKERS,
        "lpt_makespan_s": round(ideal, 3),
        "makespan_s": sched["makespan_s"],
        "efficiency": round(ideal / sched["makespan_s"], 4),
        "overhead_ms_per_cell": round(1000 * sum(per_cell) / len(per_cell), 2),
        "ipc_overhead_ms_per_cell": sched["overhead_ms_per_cell"],
        "worker_start_s": round(first_ready, 2),
        "wall_s": round(results.execution_time, 2),
    }


def model_load_run(base: Path) -> dict[str, Any]:
    from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
    from sparse_attention_hub.testing import make_tiny_model

    models = [
        make_tiny_model(base / "models" / "llama", arch="llama", seed=0),
        make_tiny_model(base / "models" / "qwen2", arch="qwen2", seed=0, num_key_value_heads=2),
    ]

    def sink_local(sink: int, window: int) -> Any:
        maskers = [{"sink": {"sink_size": sink}}, {"local": {"window_size": window}}]
        return ResearchAttentionConfig.from_dict({"maskers": maskers})

    configs = [
        ("dense", None),
        ("sink2_local8", sink_local(2, 8)),
        ("sink4_local32", sink_local(4, 32)),
    ]
    ruler_kwargs = {"num_samples": 1, "tasks": ["niah_single"], "cache_dir": str(base / "cache")}
    executor = BenchmarkExecutor(
        None, WORKERS, base_result_dir=str(base / "results"), verbose=False
    )
    start = time.perf_counter()
    results = executor.run_benchmark_matrix(
        model_names=models,
        sparse_attention_configs=configs,
        benchmark_configs=[
            BenchmarkConfig("mock_benchmark"),
            BenchmarkConfig("synthetic_ruler", ["512"], benchmark_kwargs=ruler_kwargs),
        ],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "float32"}),
        generation_kwargs={"max_new_tokens": 2},
    )
    cells = len(results.individual_results) + len(results.failed_executions)
    assert not results.failed_executions, [f.error_message for f in results.failed_executions]
    return {
        "cells": cells,
        "model_loads": results.model_loads,
        "baseline_loads": cells,
        "target_loads": len(models) * WORKERS,
        "wall_s": round(time.perf_counter() - start, 2),
    }


def ray_efficiency_run(base: Path) -> dict[str, Any] | None:
    """The efficiency run on a private local Ray instance of WORKERS CPUs; None without Ray."""
    try:
        import ray
    except ImportError:
        print("ray: not installed, its run is skipped (pip install 'sparse-attention-hub[ray]')")
        return None
    ray.init(address="local", num_cpus=WORKERS, include_dashboard=False, log_to_driver=False)
    try:
        return efficiency_run(base, backend="ray")
    finally:
        ray.shutdown()


def _print_efficiency(name: str, eff: dict[str, Any], target: float, overhead: float) -> None:
    print(
        f"{name}: makespan {eff['makespan_s']}s vs LPT {eff['lpt_makespan_s']}s -> "
        f"efficiency {eff['efficiency']} (target >= {target}); overhead "
        f"{eff['overhead_ms_per_cell']} ms/cell (target <= {overhead:.0f}), of which "
        f"messages/loop {eff['ipc_overhead_ms_per_cell']} ms; workers ready after "
        f"{eff['worker_start_s']} s"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sah_executor_scaling_") as tmp:
        eff = efficiency_run(Path(tmp) / "sleep")
        _print_efficiency("local backend", eff, 0.9, 50)
        on_ray = ray_efficiency_run(Path(tmp) / "sleep_ray")
        if on_ray is not None:
            _print_efficiency("ray backend", on_ray, 0.85, 100)
        loads = model_load_run(Path(tmp) / "loads")
        print(
            f"model loads: {loads['model_loads']} for {loads['cells']} cells "
            f"(baseline {loads['baseline_loads']}, target <= {loads['target_loads']})"
        )
    ok = (
        eff["efficiency"] >= 0.9
        and eff["overhead_ms_per_cell"] <= 50
        and loads["model_loads"] <= loads["target_loads"]
        and (
            on_ray is None
            or (on_ray["efficiency"] >= 0.85 and on_ray["overhead_ms_per_cell"] <= 100)
        )
    )
    line = {
        "bench": "executor_scaling",
        "efficiency": eff["efficiency"],
        "ratio": eff["efficiency"],
        "overhead_ms_per_cell": eff["overhead_ms_per_cell"],
        "makespan_s": eff["makespan_s"],
        "lpt_makespan_s": eff["lpt_makespan_s"],
        "model_loads": loads["model_loads"],
        "model_load_cells": loads["cells"],
        "model_loads_vs_baseline": round(loads["model_loads"] / loads["baseline_loads"], 3),
        "target_loads": loads["target_loads"],
        "ray_efficiency": None if on_ray is None else on_ray["efficiency"],
        "ray_overhead_ms_per_cell": None if on_ray is None else on_ray["overhead_ms_per_cell"],
        "ray_makespan_s": None if on_ray is None else on_ray["makespan_s"],
        "ray_lpt_makespan_s": None if on_ray is None else on_ray["lpt_makespan_s"],
        "meets_targets": ok,
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
