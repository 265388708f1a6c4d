"""results.csv rebuilt from a results tree alone: no process, no model."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.executor import results as results_module
from sparse_attention_hub.executor.results import build_results_table, write_results_csv


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
    metrics = files.get("metrics__json")
    if isinstance(metrics, dict):  # a complete cell: a predictions log and raw results to match
        predictions = files.setdefault(
            "predictions__jsonl",
            "".join(json.dumps({"row_id": i}) + "\n" for i in range(metrics.get("num_rows", 1))),
        )
        rows = len(str(predictions).splitlines())
        files["metrics__json"] = {"fingerprint": "f", "num_rows": rows, **metrics}
        files.setdefault("raw_results__csv", "row_id\n")
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
        + _events("research_attention_output_error", [0.1]),
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


def test_a_damaged_micro_metrics_line_makes_a_complete_cell_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The rerun trims the log; meanwhile the table names the file and keeps the means of the
    sound lines."""
    events = _events("research_attention_density", [0.2]) + "{torn line\n"
    cell = _cell(
        tmp_path, "org/m", "sink", "mock_benchmark", None,
        metrics__json={"overall_score": 0.5, "num_rows": 1},
        micro_metrics__jsonl=events + _events("research_attention_density", [0.4]),
    )  # fmt: skip
    with caplog.at_level(logging.WARNING):
        (row,) = build_results_table(tmp_path).itertuples()
    assert row.status == "corrupt" and pd.isna(row.overall_score)
    assert math.isclose(row.mean_density, 0.3)
    assert f"{cell / 'micro_metrics.jsonl'} has damaged line(s) 2" in caplog.text


def _predictions(answers: dict[int, str], torn: str = "") -> str:
    lines = [
        json.dumps({"row_id": r, "predicted_answer": a, "task": "t"}) for r, a in answers.items()
    ]
    return "".join(line + "\n" for line in lines) + torn


def test_dense_agreement_is_the_fraction_of_common_rows_answered_as_dense(
    tmp_path: Path, monkeypatch
) -> None:
    done = {"metrics__json": {"overall_score": 0.0}}
    answers = {0: "a", 1: "b", 2: "c", 3: "d"}
    _cell(tmp_path, "org/m", "dense", "mock_benchmark", None, **done,
          predictions__jsonl=_predictions(answers))  # fmt: skip
    _cell(tmp_path, "org/m", "sink", "mock_benchmark", None, **done,
          predictions__jsonl=_predictions({0: "a", 1: "b", 2: "x", 3: "d"}))  # fmt: skip
    # interrupted: rows 0-1 answered (row 9 is not in the dense cell), then a torn line
    torn = '{"row_id": 2, "predicted_answer": "c"'
    partial = _cell(
        tmp_path, "org/m", "streaming", "mock_benchmark", None,
        predictions__jsonl=_predictions({0: "a", 1: "B", 9: "z"}, torn=torn),
        execution={"status": "interrupted"},
    )  # fmt: skip
    # the dense cell of this benchmark failed: nothing to compare with
    _cell(tmp_path, "org/m", "dense", "synthetic_ruler", "1024",
          predictions__jsonl=_predictions({0: "a"}), execution={"status": "failed"})  # fmt: skip
    _cell(tmp_path, "org/m", "sink", "synthetic_ruler", "1024", **done,
          predictions__jsonl=_predictions({0: "a"}))  # fmt: skip
    # complete on both sides but no row in common
    _cell(tmp_path, "org/m", "dense", "synthetic_ruler", "2048", **done,
          predictions__jsonl=_predictions({0: "a", 1: "b"}))  # fmt: skip
    _cell(tmp_path, "org/m", "sink", "synthetic_ruler", "2048", **done,
          predictions__jsonl=_predictions({2: "c", 3: "d"}))  # fmt: skip
    # another model without a dense cell of its own: never compared with org/m's
    _cell(tmp_path, "org/n", "sink", "mock_benchmark", None, **done,
          predictions__jsonl=_predictions(answers))  # fmt: skip
    before = (partial / "predictions.jsonl").read_bytes()
    reads: list[Path] = []
    real_read = results_module.read_predictions

    def counting_read(path: Path, repair: bool = True) -> list[dict[str, object]]:
        reads.append(Path(path))
        return real_read(path, repair=repair)

    monkeypatch.setattr(results_module, "read_predictions", counting_read)

    table = build_results_table(tmp_path)
    agreement = {
        (r.model, r.sparse_config, r.benchmark, r.subset if isinstance(r.subset, str) else None): (
            r.dense_agreement
        )
        for r in table.itertuples()
    }
    assert agreement[("org/m", "sink", "mock_benchmark", None)] == 0.75
    assert agreement[("org/m", "streaming", "mock_benchmark", None)] == 0.5
    assert math.isnan(agreement[("org/m", "dense", "mock_benchmark", None)])  # not 1.0
    assert math.isnan(agreement[("org/m", "sink", "synthetic_ruler", "1024")])
    assert math.isnan(agreement[("org/m", "sink", "synthetic_ruler", "2048")])
    assert math.isnan(agreement[("org/n", "sink", "mock_benchmark", None)])
    assert table["dense_agreement"].dtype == "float64"
    columns = list(table.columns)
    assert columns[columns.index("mean_output_error") + 1] == "dense_agreement"
    assert len(reads) == len(set(reads)) == 5  # each cell with a complete dense peer, once
    assert (partial / "predictions.jsonl").read_bytes() == before  # a reader never repairs

    written = pd.read_csv(write_results_csv(tmp_path))
    assert sorted(written["dense_agreement"].dropna()) == [0.5, 0.75]
