"""``sah tune`` with ``searcher: optuna`` on a local Ray instance: the tiny model, the mock
benchmark, one method, three trials (TPE past its one random start). A rerun runs no new cell
and ends with the same points; a search killed mid-way resumes (replaying its finished trials
to the searcher) and ends with the points and choices of an uninterrupted one."""

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
pytest.importorskip(
    "optuna", reason='Optuna is not installed: pip install "sparse-attention-hub[tune-optuna]"'
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
        ],
        "targets": [0.5],
        "tolerance": 0.25,
        "trials": 3,
        "seed": 0,
        "searcher": "optuna",
    },
}
COLUMNS = ["method", "config_name", "params", "chosen"]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("tune_optuna")
    path = root / "tune.yaml"
    path.write_text(yaml.safe_dump({**TUNE, "result_dir": str(root / "res")}))
    assert main(["tune", str(path)]) == 0
    first = pd.read_csv(root / "res" / "trials.csv")
    assert main(["tune", str(path)]) == 0  # the rerun
    return {"root": root, "first": first, "second": pd.read_csv(root / "res" / "trials.csv")}


def test_points_stay_in_the_space_and_a_choice_is_made(tuned: dict[str, Any]) -> None:
    table = tuned["first"]
    assert len(table) == 3 and table["ran"].sum() == 3 and table["config_name"].is_unique
    for params in table["params"]:
        assert 0.15 <= yaml.safe_load(params)["heavy_size"] <= 0.4
    chosen = table[table["chosen"]]
    assert len(chosen) == 1 and abs(chosen["density"].iloc[0] - 0.5) <= 0.25


def test_rerun_runs_no_new_trial(tuned: dict[str, Any]) -> None:
    second = tuned["second"]
    assert second["ran"].sum() == 0 and second["reused"].sum() == 3
    columns = [*COLUMNS, "density", "objective"]
    pd.testing.assert_frame_equal(tuned["first"][columns], second[columns])


def _complete_cells(res: Path) -> int:
    cells = res.glob("tiny-*/*/mock_benchmark")
    return sum(cell_status(cell).status == COMPLETE for cell in cells)


def test_killed_search_resumes_to_the_same_choices(tuned: dict[str, Any], tmp_path: Path) -> None:
    """SIGKILL ``sah tune`` once 1 of its 3 trials is complete, run it again: it replays the
    finished trial (reused, not run), the searcher suggests the same next points, and the
    search ends with the uninterrupted search's points and choice."""
    res = tmp_path / "res"
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump({**TUNE, "result_dir": str(res)}))
    command = [sys.executable, "-m", "sparse_attention_hub", "tune", str(path)]
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while _complete_cells(res) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert proc.poll() is None, "the search ended before it could be killed"
        assert 1 <= _complete_cells(res) < 3
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:  # Ray's helper processes of the killed search share its process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (res / "trials.csv").exists()
    assert main(["tune", str(path)]) == 0
    resumed = pd.read_csv(res / "trials.csv")
    assert resumed["reused"].sum() >= 1 and resumed["ran"].sum() <= 2
    assert resumed["ran"].sum() + resumed["reused"].sum() == 3
    pd.testing.assert_frame_equal(tuned["first"][COLUMNS], resumed[COLUMNS])
    assert resumed["density"].tolist() == pytest.approx(tuned["first"]["density"].tolist())
    first = yaml.safe_load((tuned["root"] / "res" / "tuned.yaml").read_text())
    again = yaml.safe_load((res / "tuned.yaml").read_text())
    assert again["sparse_configs"] == first["sparse_configs"]
