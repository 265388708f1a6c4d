"""``sah demo`` end to end: the trained tiny model on CPU, 2 workers, 10 cells; the rerun reuses them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.cli import main

BENCHMARKS = ["synthetic_ruler_1024", "synthetic_ruler_2048"]
CONFIGS = ["dense", "oracle_top_k", "quest", "random_sampling", "streaming"]


@pytest.mark.slow
def test_demo_end_to_end_then_reuse(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SAH_CACHE_DIR", str(tmp_path / "cache"))
    out_dir = tmp_path / "demo"
    assert main(["-q", "demo", "--result-dir", str(out_dir)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = lines[0].split()
    with_deltas = [word for b in BENCHMARKS for word in (b, "Δ", b)]  # score ± h, then Δ b
    assert header == [
        "model", "config", *with_deltas, "mean", "density", "output_error", "agreement"
    ]  # fmt: skip
    rows = [line.split() for line in lines[2:7]]
    assert [row[1] for row in rows] == CONFIGS  # the order of the demo file
    assert rows[0][-3:] == ["-", "-", "-"]  # dense logs no density and is its own baseline
    for row in rows[1:]:
        assert 0.0 < float(row[-3]) < 1.0  # sparse configs attend to a fraction of the keys
        assert float(row[-2]) >= 0.0
        assert 0.0 <= float(row[-1]) <= 1.0  # a fraction of the dense config's answers
    # Oracle top-k keeps the heavy keys, so its attention output stays closer to dense than
    # StreamingLLM's at a similar density (a wiring bug that dropped the sparse config, or
    # broke it, would make the two alike).
    top_k, streaming = rows[1], rows[4]
    assert float(top_k[-2]) < float(streaming[-2])
    assert "demo: 10 cells: 10 ran" in out
    # the demo draws its figures and names the quality-vs-density one
    figure = out_dir / "figures" / "quality_vs_density.png"
    assert f"figure: {figure} (all figures and an HTML report" in out and figure.is_file()
    # `sah report` shows the rows in the order of the run (the demo file's), not by name
    assert main(["-q", "report", str(out_dir)]) == 0
    reported = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in reported[2:7]] == CONFIGS
    assert reported[:7] == lines[:7]
    # --plot draws the demo's three figures, --html the report
    page = tmp_path / "demo.html"
    assert main(["-q", "report", str(out_dir), "--plot", "--html", str(page)]) == 0
    written = capsys.readouterr().out
    for name in ("quality_vs_density", "layers", "task_scores"):
        assert f"figure: {out_dir / 'figures' / name}.png" in written
        assert (out_dir / "figures" / f"{name}.svg").is_file()
    assert f"html report: {page}" in written and "streaming" in page.read_text()

    table = pd.read_csv(out_dir / "results.csv")
    assert len(table) == 10 and set(table["status"]) == {"complete"}
    dense = table["sparse_config"] == "dense"
    assert table.loc[dense, "dense_agreement"].isna().all()
    assert table.loc[~dense, "dense_agreement"].between(0.0, 1.0).all()
    summary = json.loads((out_dir / "execution_summary.json").read_text())
    assert summary  # written by the executor
    model_dir = out_dir / "tiny_models" / "tiny-llama-trained"
    assert (model_dir / "config.json").exists()
    cells = list(out_dir.glob("*/streaming/synthetic_ruler_1024"))
    assert len(cells) == 1
    for name in ("metrics.json", "config.json", "predictions.jsonl", "micro_metrics.jsonl"):
        assert (cells[0] / name).exists(), name

    # The second run reuses every finished cell and says so.
    assert main(["-q", "demo", "--result-dir", str(out_dir)]) == 0
    again = capsys.readouterr().out
    assert f"demo: all 10 cells were already complete in {out_dir}; reusing them" in again
    assert "10 reused (already complete), 0 ran" in again
    assert again.splitlines()[1:8] == lines[:7]


def test_demo_dry_run_builds_nothing(tmp_path, capsys) -> None:
    assert main(["-q", "demo", "--dry-run", "--result-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"demo.yaml (built in): 10 cells: 10 pending under {tmp_path / 'd'}")
    assert not Path(tmp_path / "d" / "tiny_models").exists()
