"""Resource figures per cell after a real tiny run: in resources.json, results.csv, the
execution summary and ``sah report --columns``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.executor.resources import RESOURCE_COLUMNS


@pytest.mark.slow
def test_resource_columns_are_recorded_per_cell(tiny_runs: dict[str, Path]) -> None:
    base = tiny_runs["run"]
    table = pd.read_csv(base / "results.csv")
    assert set(RESOURCE_COLUMNS) <= set(table.columns)
    assert len(table) == 4  # two models, dense and sink_local
    for row in table.to_dict("records"):
        cell = Path(row["result_dir"])
        records = [json.loads(line) for line in (cell / "predictions.jsonl").open()]
        metrics = json.loads((cell / "metrics.json").read_text())
        requests = len({r["request_index"] for r in records})
        assert row["requests"] == requests == metrics["num_requests"] == 3  # 8 rows, 3 contexts
        assert row["context_prefill_seconds"] > 0 and row["question_decode_seconds"] > 0
        tokens = sum(r["generated_tokens"] for r in records)
        assert tokens > 0
        assert row["tokens_per_second"] == pytest.approx(tokens / row["question_decode_seconds"])
        assert row["peak_rss_mb"] > 10  # the worker holds torch and a model
        assert pd.isna(row["peak_gpu_memory_mb"])  # a CPU run
        resources = json.loads((cell / "resources.json").read_text())
        assert resources["rss_source"] == "sampled" and resources["resumed"] is False
        assert resources["rows"] == len(records) == 8
    summary = json.loads((base / "execution_summary.json").read_text())
    assert all(c["resources"]["requests"] == 3 for c in summary["cells"])


@pytest.mark.slow
def test_report_columns_show_chosen_figures(tiny_runs: dict[str, Path], capsys) -> None:
    base = str(tiny_runs["run"])
    args = ["-q", "report", base, "--resamples", "0", "--format", "json"]
    assert main([*args, "--columns", "requests, tokens_per_second,peak_rss_mb"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["requests"] for r in rows] == [3, 3, 3, 3]
    assert all(r["tokens_per_second"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert main(args) == 0  # the default report has none of them
    assert "requests" not in json.loads(capsys.readouterr().out)[0]
    assert main(["-q", "report", base, "--resamples", "0", "--columns", "seconds"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[-1] == "seconds" and "seconds: wall time" in out


def test_unknown_report_column_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["-q", "report", str(tmp_path), "--columns", "requests,gpu"]) == 2
    err = capsys.readouterr().err
    assert "unknown column(s) gpu" in err
    assert "allowed: requests, seconds, context_prefill_seconds" in err
