"""``sah tune`` for real on a local Ray instance: the tiny model, the mock benchmark, two
methods, two trials each. The chosen configs' realized densities lie within tolerance of
their targets; a rerun runs no new cell; a search killed mid-way resumes and ends with the
choices of an uninterrupted one; tuned.yaml passes ``sah run --dry-run``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

pytest.importorskip(
    "ray.tune", reason='Ray Tune is not installed: pip install "sparse-attention-hub[ray]"'
)

from sparse_attention_hub.cell_store import COMPLETE, cell_status
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


def _complete_cells(res: Path) -> int:
    cells = res.glob("tiny-*/*/mock_benchmark")
    return sum(cell_status(cell).status == COMPLETE for cell in cells)


def test_killed_search_resumes_to_the_same_choices(tuned: dict[str, Any], tmp_path: Path) -> None:
    """SIGKILL ``sah tune`` once 2 of its 4 trials are complete, run it again: it reuses them,
    runs the rest, and chooses what the uninterrupted search (the fixture's) chose."""
    res = tmp_path / "res"
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({**TUNE, "result_dir": str(res)}))
    command = [sys.executable, "-m", "sparse_attention_hub", "tune", str(path)]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while _complete_cells(res) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.poll() is None, "the search ended before it could be killed"
        assert _complete_cells(res) >= 2
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:  # Ray's helper processes of the killed search share its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (res / "trials.csv").exists()
    assert main(["tune", str(path)]) == 0
    resumed = pd.read_csv(res / "trials.csv")
    assert resumed["reused"].sum() >= 2 and resumed["ran"].sum() <= 2
    assert resumed["ran"].sum() + resumed["reused"].sum() == 4
    columns = ["method", "config_name", "params", "chosen"]
    pd.testing.assert_frame_equal(tuned["first"][columns], resumed[columns])
    assert resumed["density"].tolist() == pytest.approx(tuned["first"]["density"].tolist())
    first = yaml.safe_load((tuned["root"] / "res" / "tuned.yaml").read_text())
    again = yaml.safe_load((res / "tuned.yaml").read_text())
    assert again["sparse_configs"] == first["sparse_configs"]
