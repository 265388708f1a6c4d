"""``sah report`` shows the realized eviction ratio (the micro metric
``eviction_compression_ratio``) beside density, in every format, only where it was logged."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig, BenchmarkExecutor
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

RATIO = 0.5


@pytest.fixture(scope="module")
def eviction_run(tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dense, sink_local and knorm 0.5 on the mock benchmark, density and ratio logged."""
    base = tmp_path_factory.mktemp("eviction_run")
    sink_local = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 2}}, {"local": {"window_size": 4}}]}
    )
    knorm = ResearchAttentionConfig.from_dict(
        {"maskers": [{"knorm": {"compression_ratio": RATIO}}]}
    )
    executor = BenchmarkExecutor(
        None,
        1,
        base_result_dir=str(base),
        enabled_metrics=["research_attention_density", "eviction_compression_ratio"],
    )
    results = executor.run_benchmark_matrix(
        model_names=[tiny_model_dir],
        sparse_attention_configs=[("dense", None), ("sink_local", sink_local), ("knorm", knorm)],
        benchmark_configs=[BenchmarkConfig("mock_benchmark")],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "float32"}),
        generation_kwargs={"max_new_tokens": 3},
    )
    assert not results.failed_executions, [f.error_message for f in results.failed_executions]
    return base


def _report(base: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["-q", "report", str(base), "--resamples", "0", "--format", fmt]) == 0
    return capsys.readouterr().out


def test_the_realized_ratio_is_a_column_beside_density(eviction_run: Path, capsys) -> None:
    rows = {r["config"]: r for r in json.loads(_report(eviction_run, "json", capsys))}
    # int(L * 0.5) kept of each context: the realized ratio is 0.5 to one key in L
    assert rows["knorm"]["compression_ratio"] == pytest.approx(RATIO, abs=0.02)
    assert rows["sink_local"]["compression_ratio"] is None  # not an eviction: not logged
    assert rows["dense"]["compression_ratio"] is None
    assert (
        list(rows["knorm"]).index("compression_ratio") == list(rows["knorm"]).index("density") + 1
    )
    table = list(csv.DictReader(io.StringIO(_report(eviction_run, "csv", capsys))))
    knorm = next(r for r in table if r["config"] == "knorm")
    assert float(knorm["compression_ratio"]) == pytest.approx(RATIO, abs=0.02)
    for fmt in ("table", "markdown"):
        header = _report(eviction_run, fmt, capsys).splitlines()[0].replace("|", " ").split()
        assert header[header.index("density") + 1] == "compression_ratio", fmt
    assert "compression_ratio: realized fraction" in _report(eviction_run, "table", capsys)


def test_no_column_where_no_eviction_ratio_was_logged(eviction_run: Path, capsys, tmp_path) -> None:
    for config in ("sink_local", "dense"):
        source = next(eviction_run.glob(f"*/{config}"))
        target = tmp_path / source.parent.name / config
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target)
    for fmt in ("json", "csv", "table", "markdown"):
        out = _report(tmp_path, fmt, capsys)
        assert "density" in out and "compression_ratio" not in out, fmt
