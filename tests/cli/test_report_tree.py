"""``sah report`` on results trees as real runs leave them: several models, failed, partial and
re-run (stale/) cells; every format parses."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from tests.support.cells import write_complete


def cell(
    base: Path, model: str, config: str, bench: str, score: float | None, **kw: object
) -> Path:
    """A cell folder: complete with ``score``; ``failed=True`` or ``partial=True`` otherwise."""
    folder = base / model.replace("/", "_") / config / bench
    folder.mkdir(parents=True)
    resolved = {"model_name": model, "sparse_config_name": config, "benchmark_name": bench}
    status = "failed" if kw.get("failed") else "complete"
    (folder / "config.json").write_text(
        json.dumps({"resolved_config": resolved, "execution": {"status": status}})
    )
    if kw.get("failed"):
        (folder / "error.txt").write_text("RuntimeError: boom\n")
    elif kw.get("partial"):
        (folder / "predictions.jsonl").write_text('{"request_index": 0}\n')
    else:
        answers = kw.get("answers")
        write_complete(folder, {"overall_score": score}, answers)  # type: ignore[arg-type]
    if "answers" in kw and (kw.get("failed") or kw.get("partial")):
        lines = [
            json.dumps({"row_id": row, "predicted_answer": answer})
            for row, answer in enumerate(kw["answers"])  # type: ignore[arg-type]
        ]
        (folder / "predictions.jsonl").write_text("".join(line + "\n" for line in lines))
    if "density" in kw:
        event = {"metric": "research_attention_density", "value": kw["density"], "metadata": {}}
        (folder / "micro_metrics.jsonl").write_text(json.dumps(event) + "\n")
    return folder


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    base = tmp_path / "results"
    for model in ("org/a", "org/b"):
        cell(base, model, "streaming", "mock_benchmark", 10.0, density=0.25, answers="abcd")
        cell(base, model, "dense", "mock_benchmark", 30.0, answers="abxy")
        cell(base, model, "dense", "synthetic_ruler_1024", 50.0)
    cell(base, "org/a", "streaming", "synthetic_ruler_1024", None, failed=True)
    cell(base, "org/b", "streaming", "synthetic_ruler_1024", None, partial=True)
    # an earlier run of a re-run cell, moved aside by the executor: never reported
    stale = base / "org_a" / "dense" / "mock_benchmark" / "stale" / "20260101_000000"
    stale.mkdir(parents=True)
    for name in ("config.json", "metrics.json"):
        text = (stale.parent.parent / name).read_text()
        (stale / name).write_text(text.replace("30.0", "99.0"))
    return base


def report(tree: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["-q", "report", str(tree), "--format", fmt]) == 0
    return capsys.readouterr().out


def test_json_rows_grouped_by_model_with_statuses(tree: Path, capsys) -> None:
    rows = json.loads(report(tree, "json", capsys))
    assert [(r["model"], r["config"]) for r in rows] == [
        ("org/a", "dense"),
        ("org/a", "streaming"),
        ("org/b", "dense"),
        ("org/b", "streaming"),
    ]
    assert rows[0]["mock_benchmark"] == 30.0 and rows[0]["mean"] == 40.0  # not the stale 99
    assert rows[1]["synthetic_ruler_1024"] == "failed"
    assert rows[3]["synthetic_ruler_1024"] == "partial"
    assert rows[1]["mean"] == 10.0 and rows[1]["density"] == 0.25
    assert rows[0]["density"] is None
    assert rows[1]["agreement"] == 0.5 and rows[0]["agreement"] is None  # 2 of 4 answers as dense


def test_csv_parses_to_the_same_rows(tree: Path, capsys) -> None:
    rows = list(csv.DictReader(io.StringIO(report(tree, "csv", capsys))))
    assert [(r["model"], r["config"]) for r in rows][:2] == [
        ("org/a", "dense"),
        ("org/a", "streaming"),
    ]
    assert rows[3]["synthetic_ruler_1024"] == "partial"
    assert float(rows[2]["mean"]) == 40.0 and rows[2]["density"] == ""
    assert float(rows[3]["agreement"]) == 0.5 and rows[2]["agreement"] == ""
    written = list(csv.DictReader((tree / "results.csv").open()))
    assert len(written) == 8  # the stale copy is not a cell
    assert {r["status"] for r in written} == {"complete", "failed", "partial"}
    assert sorted(r["dense_agreement"] for r in written if r["dense_agreement"]) == ["0.5", "0.5"]


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_text_formats_show_every_row(tree: Path, capsys, fmt: str) -> None:
    lines = report(tree, fmt, capsys).splitlines()
    body = [line.replace("|", " ").split() for line in lines[2:6]]
    assert [row[:2] for row in body] == [
        ["org/a", "dense"],
        ["org/a", "streaming"],
        ["org/b", "dense"],
        ["org/b", "streaming"],
    ]
    assert body[1][3] == "failed" and body[3][3] == "partial"


def test_a_config_cannot_be_named_stale(tmp_path: Path, capsys) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "models: [org/m]\nsparse_configs: {stale: dense}\nbenchmarks: [mock_benchmark]\n"
    )
    assert main(["-q", "run", str(path), "--dry-run"]) == 2
    assert "sparse_configs.stale: 'stale' is reserved" in capsys.readouterr().err


def test_report_prints_even_when_results_csv_cannot_be_written(tree: Path, capsys, caplog) -> None:
    (tree / "results.csv").mkdir()  # unwritable as a file, even for root
    rows = json.loads(report(tree, "json", capsys))
    assert len(rows) == 4
    assert "could not write" in caplog.text and "results.csv" in caplog.text
    assert not list(tree.glob(".results.csv.*.tmp"))
