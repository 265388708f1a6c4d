"""``sah tune`` for real on a local Ray instance: the tiny model, the mock benchmark, two
methods, two trials each. The chosen configs' realized densities lie within tolerance of
their targets; a rerun runs no new cell; tuned.yaml passes ``sah run --dry-run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytest.importorskip(
    "ray.tune", reason='Ray Tune is not installed: pip install "sparse-attention-hub[ray]"'
)

from sparse_attention_hub.cli import main

pytestmark = pytest.mark.slow

TUNE = {
    "models": [{"tiny_model": {"arch": "llama"}}],
    "benchmarks": [{"name": "mock_benchmark"}],
    "adapter": {"model_kwargs": {"dtype": "float32"}},
    "generation_kwargs": {"max_new_tokens": 2},
    "search": {
        "methods": [
            {
                "recipe": "oracle_top_k",
                "space": {"heavy_size": {"scale": [0.3, 0.8]}},
                "fixed": {"sink_size": 2, "window_size": 2},
            },
            "streaming_llm",
        ],
        "targets": [0.5],
        "tolerance": 0.25,
        "trials": 2,
        "seed": 0,
    },
}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tune")
    path = root / "tune.yaml"
    path.write_text(yaml.safe_dump({**TUNE, "result_dir": str(root / "res")}))
    assert main(["tune", str(path)]) == 0
    first = pd.read_csv(root / "res" / "trials.csv")
    assert main(["tune", str(path)]) == 0  # the rerun
    return {"root": root, "first": first, "second": pd.read_csv(root / "res" / "trials.csv")}


def test_chosen_densities_lie_within_tolerance(tuned: dict[str, Any]) -> None:
    table = tuned["first"]
    assert len(table) == 4 and table["ran"].sum() == 4
    chosen = table[table["chosen"]]
    assert set(chosen["method"]) == {"oracle_top_k", "streaming_llm"}
    assert ((chosen["density"] - chosen["target"]).abs() <= 0.25).all()
    for _, row in chosen.iterrows():  # the best objective among the trials within tolerance
        peers = table[(table["method"] == row["method"]) & table["within_tolerance"]]
        assert row["objective"] == peers["objective"].min()
    assert (tuned["root"] / "res" / "tune.png").stat().st_size > 0


def test_rerun_runs_no_new_trial(tuned: dict[str, Any]) -> None:
    second = tuned["second"]
    assert second["ran"].sum() == 0 and second["reused"].sum() == 4
    columns = ["config_name", "density", "objective", "chosen"]
    pd.testing.assert_frame_equal(tuned["first"][columns], second[columns])
    for cells in second["cells"]:  # each trial is a cell like any: config, predictions, metrics
        assert (Path(cells) / "predictions.jsonl").is_file()
        assert (Path(cells) / "micro_metrics.jsonl").is_file()


def test_tuned_yaml_passes_dry_run(
    tuned: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tuned["root"] / "res" / "tuned.yaml"
    configs = yaml.safe_load(path.read_text())["sparse_configs"]
    assert set(configs) == {"dense", "oracle_top_k.at_0.5", "streaming_llm.at_0.5"}
    capsys.readouterr()
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "oracle_top_k.at_0.5" in capsys.readouterr().out
