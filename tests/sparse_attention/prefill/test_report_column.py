"""``sah report`` shows the prefill density beside the decode density, only when logged, and
the results table reads it from a cell's micro metrics."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sparse_attention_hub.executor.results import MICRO_METRICS_FILE, mean_metrics
from sparse_attention_hub.experiment import report as r


def cells() -> pd.DataFrame:
    rows = [
        ("m", "dense", "mock_benchmark", None, "complete", 50.0, None),
        ("m", "dense", "synthetic_ruler", "1024", "complete", 100.0, None),
        ("m", "flex", "mock_benchmark", None, "complete", 25.0, 0.25),
        ("m", "flex", "synthetic_ruler", "1024", "complete", 20.0, 0.75),
    ]
    cols = [r.MODEL, r.CONFIG, r.BENCHMARK, r.SUBSET, r.STATUS, r.SCORE, r.DENSITY]
    return pd.DataFrame(rows, columns=cols)


def test_prefill_density_column_only_when_logged() -> None:
    frame = cells()
    assert "prefill_density" not in r.summarize(frame)[0]
    frame["mean_prefill_density"] = [None, None, 0.3, 0.5]
    columns, (dense, streaming) = r.summarize(frame)
    assert columns[columns.index("density") + 1] == "prefill_density"
    assert streaming["prefill_density"] == pytest.approx(0.4)
    assert dense["prefill_density"] is None


def test_the_results_table_means_the_logged_prefill_density(tmp_path) -> None:
    events = [
        {"metric": "prefill_density", "value": 0.2, "layer_idx": 0},
        {"metric": "prefill_density", "value": 0.4, "layer_idx": 1},
    ]
    (tmp_path / MICRO_METRICS_FILE).write_text("".join(json.dumps(e) + "\n" for e in events))
    assert mean_metrics(tmp_path)["mean_prefill_density"] == pytest.approx(0.3)
