"""Rendering the per-cell results table as a model x config report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sparse_attention_hub.experiment import report as r


def cells() -> pd.DataFrame:
    rows = [
        ("m", "dense", "mock_benchmark", None, "complete", 50.0, None),
        ("m", "dense", "synthetic_ruler", "1024", "complete", 100.0, None),
        ("m", "streaming", "mock_benchmark", None, "complete", 25.0, 0.25),
        ("m", "streaming", "synthetic_ruler", "1024", "failed", None, 0.75),
    ]
    cols = [r.MODEL, r.CONFIG, r.BENCHMARK, r.SUBSET, r.STATUS, r.SCORE, r.DENSITY]
    return pd.DataFrame(rows, columns=cols)


def test_summary_rows_and_columns() -> None:
    columns, rows = r.summarize(cells())
    assert columns == [
        "model",
        "config",
        "mock_benchmark",
        "synthetic_ruler_1024",
        "mean",
        "density",
    ]
    dense, streaming = rows
    assert dense == {
        "model": "m",
        "config": "dense",
        "mock_benchmark": 50.0,
        "synthetic_ruler_1024": 100.0,
        "mean": 75.0,
        "density": None,
    }
    assert streaming["synthetic_ruler_1024"] == "failed"
    assert streaming["mean"] == 25.0  # failed cells do not count
    assert streaming["density"] == 0.25  # complete cells only


def test_table_and_markdown() -> None:
    table = r.render_report(cells(), "table").splitlines()
    assert table[0].split() == [
        "model",
        "config",
        "mock_benchmark",
        "synthetic_ruler_1024",
        "mean",
        "density",
    ]
    assert table[2].split() == ["m", "dense", "50", "100", "75", "-"]
    assert table[3].split() == ["m", "streaming", "25", "failed", "25", "0.25"]
    markdown = r.render_report(cells(), "markdown").splitlines()
    assert markdown[0].startswith("| model | config")
    assert markdown[1].startswith("|---") and markdown[1].endswith(":|")
    assert markdown[3].replace(" ", "") == "|m|streaming|25|failed|25|0.25|"


def test_csv_and_json() -> None:
    csv = r.render_report(cells(), "csv").splitlines()
    assert csv[0] == "model,config,mock_benchmark,synthetic_ruler_1024,mean,density"
    assert csv[1] == "m,dense,50.0,100.0,75.0,"
    data = json.loads(r.render_report(cells(), "json"))
    assert data[1]["synthetic_ruler_1024"] == "failed" and data[1]["density"] == 0.25
    assert data[0]["density"] is None


def test_no_density_column_when_nothing_was_logged() -> None:
    frame = cells().drop(columns=[r.DENSITY])
    columns, _ = r.summarize(frame)
    assert "density" not in columns and "output_error" not in columns


def test_single_benchmark_has_no_mean_column() -> None:
    frame = cells().iloc[[0, 2]]
    columns, _ = r.summarize(frame)
    assert columns == ["model", "config", "mock_benchmark", "density"]


def with_agreement() -> pd.DataFrame:
    """``cells()`` plus a third benchmark and the dense_agreement column of results.csv."""
    extra = pd.DataFrame(
        [
            ("m", "dense", "niah", None, "complete", 0.0, None),
            ("m", "streaming", "niah", None, "complete", 0.0, 0.5),
        ],
        columns=list(cells().columns),
    )
    frame = pd.concat([cells(), extra], ignore_index=True)
    frame[r.AGREEMENT] = [None, None, 0.75, 1.0, None, 0.25]  # the failed cell's 1.0 is left out
    return frame


def test_agreement_column_averages_complete_cells_in_every_format() -> None:
    columns, (dense, streaming) = r.summarize(with_agreement())
    assert columns[-2:] == ["density", "agreement"]
    assert dense["agreement"] is None and streaming["agreement"] == 0.5
    table = r.render_report(with_agreement(), "table").splitlines()
    assert table[0].split()[-1] == "agreement"
    assert table[2].split()[-1] == "-" and table[3].split()[-1] == "0.5"
    assert "agreement: fraction of answers identical to the dense config's, per row" in table
    markdown = r.render_report(with_agreement(), "markdown").splitlines()
    assert markdown[0].endswith("| agreement |") and markdown[3].endswith("       0.5 |")
    csv = r.render_report(with_agreement(), "csv").splitlines()
    assert (
        csv[0].endswith(",density,agreement") and csv[1].endswith(",") and csv[2].endswith(",0.5")
    )
    data = json.loads(r.render_report(with_agreement(), "json"))
    assert data[0]["agreement"] is None and data[1]["agreement"] == 0.5


def test_no_agreement_column_without_a_dense_baseline() -> None:
    frame = with_agreement()
    frame[r.AGREEMENT] = None
    columns, _ = r.summarize(frame)
    assert "agreement" not in columns


def test_empty_and_bad_format() -> None:
    assert r.render_report(pd.DataFrame(), "table") == "no result cells found"
    with pytest.raises(ValueError, match="unknown report format 'xml'; allowed: table, markdown"):
        r.render_report(cells(), "xml")
