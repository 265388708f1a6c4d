"""results.csv rebuilt from a results tree alone: no process, no model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from sparse_attention_hub.benchmark.results import build_results_table, write_results_csv


def _cell(
    base: Path, model: str, config: str, bench: str, subset: str | None, **files: object
) -> Path:
    leaf = bench if subset is None else f"{bench}_{subset}"
    cell = base / model.replace("/", "_") / config / leaf
    cell.mkdir(parents=True)
    resolved = {
        "model_name": model,
        "sparse_config_name": config,
        "benchmark_name": bench,
        "subset": subset,
    }
    execution = files.pop("execution", {"status": "complete", "seconds": 1.5})
    (cell / "config.json").write_text(
        json.dumps({"fingerprint": "f", "resolved_config": resolved, "execution": execution})
    )
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (cell / name.replace("__", ".")).write_text(text)
    return cell


def _events(metric: str, values: list[float]) -> str:
    return "".join(
        json.dumps({"metric": metric, "value": v, "metadata": {"layer_idx": 0}}) + "\n"
        for v in values
    )


def test_table_has_one_row_per_cell_with_scores_density_and_status(tmp_path: Path) -> None:
    metrics = {"overall_score": 0.5, "task_scores": {"reading": 1.0, "travel": 0.0}, "num_rows": 3}
    sparse = _cell(
        tmp_path, "org/m", "sink", "mock_benchmark", None,
        metrics__json=metrics,
        micro_metrics__jsonl=_events("research_attention_density", [0.2, 0.4])
        + _events("research_attention_output_error", [0.1])
        + "{torn line\n",
    )  # fmt: skip
    _cell(tmp_path, "org/m", "dense", "mock_benchmark", None, metrics__json=metrics)
    _cell(
        tmp_path, "org/m", "dense", "synthetic_ruler", "1024",
        error__txt="category: gpu_oom\n",
        execution={"status": "failed", "category": "gpu_oom", "seconds": 0.3},
    )  # fmt: skip
    _cell(
        tmp_path, "org/m", "dense", "fault_injection", "hang", execution={"status": "interrupted"}
    )
    stale = sparse / "stale" / "20250101_000000"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text(json.dumps({"resolved_config": {"model_name": "old"}}))
    (tmp_path / "not_a_cell").mkdir()
    (tmp_path / "not_a_cell" / "config.json").write_text("{}")

    table = build_results_table(tmp_path)
    assert len(table) == 4
    rows = {(r.sparse_config, r.benchmark): r for r in table.itertuples()}
    row = rows[("sink", "mock_benchmark")]
    assert (
        row.overall_score == 0.5
        and math.isclose(row.mean_density, 0.3)
        and row.mean_output_error == 0.1
    )
    assert table.loc[table["sparse_config"] == "sink", "score.reading"].item() == 1.0
    assert pd.isna(rows[("dense", "mock_benchmark")].mean_density)
    assert rows[("dense", "synthetic_ruler")].status == "failed"
    assert rows[("dense", "synthetic_ruler")].error_category == "gpu_oom"
    assert rows[("dense", "fault_injection")].status == "interrupted"
    assert rows[("dense", "mock_benchmark")].seconds == 1.5
    assert list(table.columns[:6]) == [
        "model",
        "sparse_config",
        "benchmark",
        "subset",
        "status",
        "overall_score",
    ]

    path = write_results_csv(tmp_path)
    assert path == tmp_path / "results.csv"
    assert len(pd.read_csv(path)) == 4
