"""A small study tree for the report's figures and HTML: real mock-benchmark cells.

Configs: ``dense`` (every answer right), ``streaming`` (sink + local; its micro metrics are
not logged, so its density is nominal) and a sweep of oracle top-k over two heavy sizes
(``topk.heavy_size=0.1``, ``topk.heavy_size=0.3``) with per-layer density and output error
logged; plus one failed cell of each config's ``fault_injection_raise`` (an error.txt holding
markup, which the HTML report must escape). The files are those a run writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparse_attention_hub.benchmarks.mock_benchmark.benchmark import MockBenchmark, mock_rows
from sparse_attention_hub.benchmarks.run_loop import csv_ready

MODEL = "m"
CONFIGS = ["dense", "streaming", "topk.heavy_size=0.1", "topk.heavy_size=0.3"]
SWEEP = CONFIGS[2:]
SINK, WINDOW = 4, 16
MASKERS: dict[str, Any] = {
    "dense": None,
    "streaming": [{"sink": {"sink_size": SINK}}, {"local": {"window_size": WINDOW}}],
    **{
        f"topk.heavy_size={h}": [
            {"sink": {"sink_size": SINK}},
            {"local": {"window_size": WINDOW}},
            {"oracle_top_k": {"heavy_size": h}},
        ]
        for h in (0.1, 0.3)
    },
}
WRONG = {"dense": 0, "streaming": 4, "topk.heavy_size=0.1": 2, "topk.heavy_size=0.3": 1}
DENSITY = {"topk.heavy_size=0.1": (0.2, 0.3), "topk.heavy_size=0.3": (0.4, 0.5)}  # per layer
CONTEXT_TOKENS, QUESTION_TOKENS = 100, 28  # K = 128 keys for every request
ERROR_TEXT = "RuntimeError: <script>alert('boom')</script> & more"


def _resolved(config: str, benchmark: str) -> dict[str, Any]:
    maskers = MASKERS[config]
    return {
        "model": MODEL,
        "model_name": "org/tiny",
        "adapter_name": "huggingface",
        "model_kwargs": {"dtype": "float32"},
        "sparse_config_name": config,
        "sparse_attention_config": {"maskers": maskers} if maskers else None,
        "benchmark_name": benchmark,
        "subset": None,
        "benchmark_kwargs": {},
        "generation_kwargs": {"max_new_tokens": 4, "do_sample": False},
    }


def _events(config: str) -> str:
    lines = []
    for request in range(3):
        for layer, density in enumerate(DENSITY[config]):
            meta = {"request_index": request, "question_index": 0, "layer_idx": layer}
            for metric, value in (
                ("research_attention_density", density),
                ("research_attention_output_error", density / 10),
            ):
                record = {"timestamp": "2026-01-01T00:00:00+00:00", "metric": metric}
                lines.append(json.dumps({**record, "value": value, "metadata": meta}))
    return "".join(line + "\n" for line in lines)


def mock_cell(base: Path, config: str) -> Path:
    """A complete mock_benchmark cell of ``config`` with its first WRONG[config] rows wrong."""
    folder = base / MODEL / config / "mock_benchmark"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(
        json.dumps({"resolved_config": _resolved(config, "mock_benchmark")})
    )
    rows = mock_rows().drop(columns=["context"])
    rows.insert(0, "row_id", range(len(rows)))
    answers = [a[0] for a in rows["answer"]]
    answers[: WRONG[config]] = ["<b>nothing</b>"] * WRONG[config]
    rows["predicted_answer"] = answers
    metrics = MockBenchmark().post_run_evaluate(rows)
    predictions = [
        {
            "row_id": i,
            "request_index": i,
            "predicted_answer": a,
            "context_tokens": CONTEXT_TOKENS,
            "question_tokens": QUESTION_TOKENS,
        }
        for i, a in enumerate(answers)
    ]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    csv_ready(rows).to_csv(folder / "raw_results.csv", index=False)
    stamped = {"num_rows": len(rows), "fingerprint": None, **metrics}
    (folder / "metrics.json").write_text(json.dumps(stamped))
    if config in DENSITY:
        (folder / "micro_metrics.jsonl").write_text(_events(config))
    return folder


def failed_cell(base: Path, config: str) -> Path:
    """A cell that failed: config.json and error.txt only."""
    folder = base / MODEL / config / "fault_injection_raise"
    folder.mkdir(parents=True)
    resolved = _resolved(config, "fault_injection")
    resolved["subset"] = "raise"
    config_json = {"resolved_config": resolved, "execution": {"status": "failed"}}
    (folder / "config.json").write_text(json.dumps(config_json))
    (folder / "error.txt").write_text(f"category: other\n\n{ERROR_TEXT}\n")
    return folder


def build_study(base: Path) -> Path:
    """The whole tree under ``base``, with an execution_summary.json naming the config order."""
    base.mkdir(parents=True, exist_ok=True)
    for config in CONFIGS:
        mock_cell(base, config)
    failed_cell(base, "dense")
    summary = {
        "sparse_configs": CONFIGS,
        "versions": {"torch": "2.x", "git_commit": "abc123"},
        "timing": {"started": "2026-01-01T00:00:00+0000", "wall_seconds": 1.0},
        "devices": ["cpu"],
        "workers": 1,
        "totals": {"cells": 5, "completed": 4, "failed": 1},
    }
    (base / "execution_summary.json").write_text(json.dumps(summary))
    return base
