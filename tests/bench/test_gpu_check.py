"""``bench/gpu_check.py --device cpu``: every check runs at small sizes and prints one JSON
line naming it (how CI keeps the GPU checks working without a GPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHECKS = [
    "attention_memory",
    "decode_throughput",
    "attention_overhead",
    "pq_cache_kmeans",
    "sparse_prefill",
    "peak_gpu_memory",
    "ray_fractional_gpu",
]


@pytest.mark.timeout(1200)
def test_gpu_check_runs_every_check_on_the_cpu_and_prints_one_json_line_each() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=1150,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [r["check"] for r in records] == [*CHECKS, "total"], proc.stdout
    for record in records:
        assert record["device"] == "cpu" and "error" not in record, record
        assert record["ok"] in (True, False, None) and isinstance(record["enforced"], bool)
    by_name = {r["check"]: r for r in records}
    # the functional checks hold on the CPU too; every registered masker was measured
    assert by_name["pq_cache_kmeans"]["ok"] is True
    assert by_name["peak_gpu_memory"]["ok"] is True
    assert by_name["ray_fractional_gpu"]["ok"] in (True, None)
    from sparse_attention_hub.sparse_attention.maskers import available_maskers

    memory = by_name["attention_memory"]
    assert set(memory["maskers"]) == set(available_maskers()) and not memory["errors"]


def test_gpu_check_refuses_cuda_without_a_device() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cuda"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr
