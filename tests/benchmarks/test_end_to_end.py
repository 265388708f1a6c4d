"""run_benchmark with the real ModelAdapterHF on a tiny random model (mock and synthetic data)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.synthetic_ruler.tasks import TASK_MAX_NEW_TOKENS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: str):
    from sparse_attention_hub.adapters import ModelAdapterHF

    return ModelAdapterHF(tiny_model_dir)


def test_mock_benchmark_with_tiny_model(adapter, tmp_path: Path) -> None:
    bench = create_benchmark_instance("mock_benchmark")
    metrics = bench.run_benchmark(
        adapter,
        tmp_path,
        generation_kwargs={"max_new_tokens": 3},
        request_kwargs={"max_requests": 5},
    )
    assert set(metrics["task_scores"]) == {"reading", "science"}
    assert 0.0 <= metrics["overall_score"] <= 100.0
    raw = pd.read_csv(tmp_path / "raw_results.csv", keep_default_na=False)
    assert len(raw) == 5
    assert (raw["generated_tokens"] <= 3).all() and (raw["context_tokens"] > 0).all()
    records = [
        json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()
    ]
    assert [r["request_index"] for r in records] == [0, 0, 0, 1, 1]
    assert all(r["prefill_seconds"] is not None for r in records)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["adapter"]["model_name"] == adapter.model_name


def test_synthetic_ruler_with_tiny_model(adapter, tmp_path: Path) -> None:
    bench = create_benchmark_instance(
        "synthetic_ruler",
        ["512"],
        num_samples=1,
        tasks=["niah_single", "vt"],
        cache_dir=tmp_path / "cache",
    )
    metrics = bench.run_benchmark(
        adapter, tmp_path / "cell", generation_kwargs={"max_new_tokens": 2}, show_progress=False
    )
    assert set(metrics["task_scores"]) == {"niah_single", "vt"}
    assert metrics["num_rows"] == 2 and metrics["num_requests"] == 2
    assert list((tmp_path / "cache").rglob("*.jsonl"))
    config = json.loads((tmp_path / "cell" / "config.json").read_text())
    assert config["benchmark"]["tokenizer_fingerprint"]
    assert (tmp_path / "cell" / "metrics.json").exists()
    # the rows fit their length as the adapter really encodes them (chat template included)
    raw = pd.read_csv(tmp_path / "cell" / "raw_results.csv")
    prompt = raw["context_tokens"] + raw["question_tokens"]
    assert (raw["truncated_tokens"] == 0).all()
    budget = raw["task"].map(TASK_MAX_NEW_TOKENS)
    assert (prompt + budget <= 512).all() and (prompt > 0.8 * (512 - budget)).all()
