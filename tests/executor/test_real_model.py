"""A real tiny model through the mock benchmark: one model load for two sparse configs, the
logger's max_records in the cell's micro_metrics.jsonl, mean density in results.csv, and a
partial cell resuming from its predictions.jsonl; each cell's requests reported by its worker.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.executor.results import build_results_table
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig


def test_tiny_model_matrix_loads_once_and_logs_density(
    tiny_model_dir: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = tmp_path / "results"
    sink_local = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 2}}, {"local": {"window_size": 4}}]}
    )
    executor = BenchmarkExecutor(
        None,
        1,
        base_result_dir=str(base),
        verbose=True,  # stderr is no terminal here: one log line per finished cell
        enabled_metrics=["research_attention_density"],
        max_records=5,
    )
    matrix = dict(
        model_names=[tiny_model_dir],
        sparse_attention_configs=[("dense", None), ("sink_local", sink_local)],
        benchmark_configs=[BenchmarkConfig("mock_benchmark")],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "float32"}),
        generation_kwargs={"max_new_tokens": 2},
    )
    with caplog.at_level(logging.INFO, logger="sparse_attention_hub.executor.progress"):
        results = executor.run_benchmark_matrix(**matrix)
    finished = [r.getMessage() for r in caplog.records if " complete in " in r.getMessage()]
    assert len(finished) == 2  # the worker's request reports reached the parent's progress
    assert all("; 3/3 requests, " in line and line.endswith(" tok/s") for line in finished)
    assert not results.failed_executions, [f.error_message for f in results.failed_executions]
    assert len(results.individual_results) == 2
    assert results.model_loads == 1  # the second config switched on the loaded model
    assert results.execution_summary["model_loads"] == 1

    cells = {r.stub.sparse_config_name: Path(r.stub.result_dir) for r in results.individual_results}
    lines = (cells["sink_local"] / "micro_metrics.jsonl").read_text().splitlines()
    assert 1 <= len(lines) <= 5
    assert all(json.loads(line)["metric"] == "research_attention_density" for line in lines)
    table = build_results_table(base).set_index("sparse_config")
    assert 0.0 < table.loc["sink_local", "mean_density"] <= 1.0
    assert pd.isna(table.loc["dense", "mean_density"])
    assert (table["status"] == "complete").all()
    assert table.filter(like="score.").shape[1] >= 1

    # make the dense cell partial: no metrics.json, the last prediction lost
    dense = cells["dense"]
    (dense / "metrics.json").unlink()
    whole = (dense / "predictions.jsonl").read_text().splitlines()
    kept = whole[:-1]
    (dense / "predictions.jsonl").write_text("".join(line + "\n" for line in kept))
    plan = {stub.sparse_config_name: status for stub, status in executor.plan_matrix(**matrix)}
    assert plan == {"dense": "partial", "sink_local": "complete"}
    resumed = executor.run_benchmark_matrix(**matrix)
    assert [r.stub.sparse_config_name for r in resumed.individual_results] == ["dense"]
    assert len(resumed.skipped) == 1 and resumed.model_loads == 1
    after = (dense / "predictions.jsonl").read_text().splitlines()
    # the last request lost one of its rows: it runs again whole (as in an uninterrupted run)
    last = json.loads(whole[-1])["request_index"]
    earlier = [line for line in kept if json.loads(line)["request_index"] != last]
    assert after[: len(earlier)] == earlier and len(after) == len(whole)

    def answers(lines: list[str]) -> dict[int, str]:
        return {r["row_id"]: r["predicted_answer"] for r in map(json.loads, lines)}

    assert answers(after) == answers(whole)
    assert (dense / "metrics.json").exists()
    # the resumed cell's times cover every request (earlier runs' included), marked resumed
    resources = json.loads((dense / "resources.json").read_text())
    assert resources["resumed"] is True
    assert (resources["requests"], resources["rows"]) == (3, len(whole))
    assert resources["tokens_per_second"] > 0
