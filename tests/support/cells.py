"""Hand-made cell folders for results-table and report tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_complete(
    cell: Path, metrics: dict[str, Any], answers: list[str] | None = None, first_row: int = 0
) -> None:
    """The files that make ``cell`` (config.json already there) complete: a predictions log
    (``answers``, or one empty answer, numbered from ``first_row``), raw_results.csv, and
    metrics.json with the row count and config.json's fingerprint."""
    answers = [""] if answers is None else answers
    lines = [
        json.dumps({"row_id": row, "request_index": row, "predicted_answer": answer})
        for row, answer in enumerate(answers, start=first_row)
    ]
    (cell / "predictions.jsonl").write_text("".join(line + "\n" for line in lines))
    (cell / "raw_results.csv").write_text("row_id\n" + "".join(f"{i}\n" for i in range(len(lines))))
    fingerprint = json.loads((cell / "config.json").read_text()).get("fingerprint")
    stamped = {"num_rows": len(lines), "fingerprint": fingerprint, **metrics}
    (cell / "metrics.json").write_text(json.dumps(stamped))


def mock_cell(base: Path, config: str, answers: list[str], model: str = "m") -> Path:
    """A complete mock_benchmark cell of ``model`` whose files are those a run writes (its
    raw_results.csv scored by the real benchmark)."""
    from sparse_attention_hub.benchmarks.mock_benchmark.benchmark import MockBenchmark, mock_rows
    from sparse_attention_hub.benchmarks.run_loop import csv_ready

    folder = base / model.replace("/", "_") / config / "mock_benchmark"
    folder.mkdir(parents=True)
    resolved = {
        "model_name": model,
        "sparse_config_name": config,
        "benchmark_name": "mock_benchmark",
        "subset": None,
        "benchmark_kwargs": {},
    }
    (folder / "config.json").write_text(json.dumps({"resolved_config": resolved}))
    rows = mock_rows().drop(columns=["context"])
    rows.insert(0, "row_id", range(len(rows)))
    rows["predicted_answer"] = answers
    metrics = MockBenchmark().post_run_evaluate(rows)
    write_complete(folder, metrics, answers)
    csv_ready(rows).to_csv(folder / "raw_results.csv", index=False)
    return folder
