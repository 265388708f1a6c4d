"""``sah report --plot`` on a study tree of real mock-benchmark cells (tests/support/study.py):
the files, and what the figures draw."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.executor.results import build_results_table
from sparse_attention_hub.experiment.cell_stats import add_intervals
from sparse_attention_hub.experiment.plots import build_figures, styles_for
from sparse_attention_hub.experiment.plots.points import (
    budget_tokens,
    nominal_density,
    quality_points,
)
from sparse_attention_hub.experiment.plots.quality import NOMINAL_NOTE, X_LABEL, Y_LABEL
from sparse_attention_hub.experiment.plots.style import (
    DENSE_COLOR,
    config_styles,
    pyplot,
    sweep_base,
)
from tests.support.study import (
    CONFIGS,
    CONTEXT_TOKENS,
    QUESTION_TOKENS,
    SINK,
    SWEEP,
    WINDOW,
    build_study,
)

NAMES = ("quality_vs_density", "layers", "task_scores")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_study(tmp_path_factory.mktemp("plots") / "results")


@pytest.fixture(scope="module")
def table(study: Path) -> pd.DataFrame:
    return add_intervals(build_results_table(study), resamples=200, seed=0)


@pytest.fixture(scope="module")
def figures(table: pd.DataFrame):
    drawn = build_figures(table, CONFIGS)
    yield drawn
    for figure in drawn.values():
        pyplot().close(figure)


def test_plot_writes_png_and_svg_of_the_three_figures(study: Path, tmp_path, capsys) -> None:
    out = tmp_path / "figs"
    assert main(["-q", "report", str(study), "--plot", "--out", str(out), "--resamples", "50"]) == 0
    printed = [
        line.removeprefix("figure: ")
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("figure: ")
    ]
    expected = [str(out / f"{name}.{fmt}") for name in NAMES for fmt in ("png", "svg")]
    assert printed == expected
    from PIL import Image

    for name in NAMES:
        with Image.open(out / f"{name}.png") as image:
            image.verify()  # a valid PNG
            assert image.format == "PNG"
        root = ET.parse(out / f"{name}.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "density (fraction of keys attended)" in (out / "quality_vs_density.svg").read_text()


def test_out_without_plot_is_refused(study: Path, capsys) -> None:
    assert main(["-q", "report", str(study), "--out", "x"]) == 2
    assert "--out names the folder of the figures: give --plot too" in capsys.readouterr().err


def test_quality_vs_density_points_sweep_line_dense_and_nominal(figures) -> None:
    (ax,) = figures["quality_vs_density"].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == (X_LABEL, Y_LABEL)
    bars = {c.get_label(): c for c in ax.containers}
    assert list(bars) == CONFIGS  # one point per config, in the study's order
    x = {name: bars[name].lines[0].get_xdata()[0] for name in CONFIGS}
    assert x["dense"] == 1.0
    assert x["topk.heavy_size=0.1"] == pytest.approx(0.25)  # the logged mean density
    assert x["topk.heavy_size=0.3"] == pytest.approx(0.45)
    assert x["streaming"] == pytest.approx((SINK + WINDOW) / (CONTEXT_TOKENS + QUESTION_TOKENS))
    streaming = bars["streaming"].lines[0]
    assert streaming.get_markerfacecolor() == "none"  # nominal: hollow
    assert bars["topk.heavy_size=0.1"].lines[0].get_markerfacecolor() != "none"
    # the two sweep points are joined by one line in the sweep's colour; dense is a reference
    joined = [
        line for line in ax.lines if len(line.get_xdata()) == 2 and line.get_linestyle() == "-"
    ]
    assert len(joined) == 1
    assert list(joined[0].get_xdata()) == pytest.approx([0.25, 0.45])
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == 100.0
    legend = [t.get_text() for t in figures["quality_vs_density"].legends[0].get_texts()]
    assert legend == [*CONFIGS, NOMINAL_NOTE]


def test_error_bars_are_the_bootstrap_intervals(figures, table: pd.DataFrame) -> None:
    (ax,) = figures["quality_vs_density"].axes
    bars = {c.get_label(): c for c in ax.containers}
    row = table[table["sparse_config"] == "streaming"].iloc[0]
    segment = bars["streaming"].lines[2][0].get_segments()[0]  # ((x, low), (x, high))
    assert (segment[0][1], segment[1][1]) == pytest.approx(
        (row["score_ci_low"], row["score_ci_high"])
    )
    assert row["score_ci_low"] < row["overall_score"] < row["score_ci_high"]


def test_one_colour_per_config_in_every_figure(figures, table: pd.DataFrame) -> None:
    styles = styles_for(table, CONFIGS)
    assert styles["dense"].color == DENSE_COLOR
    assert styles[SWEEP[0]].color == styles[SWEEP[1]].color  # one sweep, one colour
    assert styles[SWEEP[0]].marker != styles[SWEEP[1]].marker  # told apart by marker
    assert styles["streaming"].color != styles[SWEEP[0]].color
    from matplotlib.colors import to_hex

    for name in ("quality_vs_density", "task_scores"):
        for ax in figures[name].axes:
            for bar in ax.containers:
                assert to_hex(bar.lines[0].get_color()) == styles[bar.get_label()].color.lower()
    for ax in (ax for ax in figures["layers"].axes if ax.images):  # not the colour bars
        for tick in ax.get_yticklabels():
            assert to_hex(tick.get_color()) == styles[tick.get_text()].color.lower()


def test_layers_heatmap_holds_the_logged_means(figures) -> None:
    heatmaps = [ax for ax in figures["layers"].axes if ax.images]
    assert [ax.get_title() for ax in heatmaps] == ["density", "output error"]
    density = heatmaps[0].images[0].get_array()
    assert [t.get_text() for t in heatmaps[0].get_yticklabels()] == SWEEP  # configs that logged
    assert np.asarray(density) == pytest.approx(np.array([[0.2, 0.3], [0.4, 0.5]]))
    assert heatmaps[0].get_xlabel() == "layer"


def test_task_scores_one_panel_per_benchmark_with_each_task(figures) -> None:
    axes = [ax for ax in figures["task_scores"].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["mock_benchmark"]
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["reading", "science", "travel"]
    bars = {c.get_label(): c for c in axes[0].containers}
    assert list(bars) == CONFIGS
    streaming = bars["streaming"].lines[0].get_ydata()
    assert list(streaming) == pytest.approx([0.0, 50.0, 100.0])  # 4 wrong: 3 reading, 1 science


def test_nominal_density_sums_budgets_at_each_prompt_length(study: Path) -> None:
    cell = study / "m" / "topk.heavy_size=0.1" / "mock_benchmark"
    k = CONTEXT_TOKENS + QUESTION_TOKENS
    assert nominal_density(cell) == pytest.approx((SINK + WINDOW + int(0.1 * k)) / k)
    assert nominal_density(study / "m" / "dense" / "mock_benchmark") == 1.0


@pytest.mark.parametrize("size", [0, 4, 200, 0.001, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("k", [0, 1, 128])
def test_budget_tokens_follows_the_maskers_rule(size: int | float, k: int) -> None:
    from sparse_attention_hub.sparse_attention.maskers.base import resolve_size

    assert budget_tokens(size, k) == resolve_size(size, k)


def test_points_skip_failed_cells(table: pd.DataFrame) -> None:
    points = quality_points(table)
    assert sorted(p.config for p in points) == sorted(CONFIGS)
    assert {p.label for p in points} == {"mock_benchmark"}


@pytest.mark.parametrize(
    ("name", "maskers", "base"),
    [
        ("topk.heavy_size=0.02", (), "topk"),
        ("topk.heavy_size=0.02+sink_size=4", (), "topk"),
        ("topk.oracle_top_k.heavy_size=0.1", ("sink", "oracle_top_k"), "topk"),
        ("my.cfg.heavy_size=0.1", ("oracle_top_k",), "my.cfg"),
        ("streaming", (), "streaming"),
        ("v1.2", (), "v1.2"),
    ],
)
def test_sweep_base(name: str, maskers: tuple[str, ...], base: str) -> None:
    assert sweep_base(name, maskers) == base


def test_styles_cycle_colours_per_sweep_and_keep_dense_black() -> None:
    names = ["a", "dense", "b.x=1", "b.x=2", "c"]
    styles = config_styles(names)
    assert styles["dense"].color == DENSE_COLOR
    assert len({styles[n].color for n in ("a", "b.x=1", "c")}) == 3
    assert styles["b.x=1"].color == styles["b.x=2"].color
    assert config_styles(names) == styles  # the same mapping every time


def test_machine_formats_keep_stdout_parseable(study: Path, tmp_path, capsys) -> None:
    out = tmp_path / "figs"
    args = ["-q", "report", str(study), "--format", "json", "--plot", "--out", str(out)]
    assert main([*args, "--resamples", "20"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == len(CONFIGS)  # the rows, nothing else
    assert f"figure: {out / 'quality_vs_density.png'}" in captured.err
