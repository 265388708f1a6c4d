"""A worker whose parent dies is killed with it (PR_SET_PDEATHSIG), not a second later by the
fallback poll; and a killed worker leaves the parent no leaked semaphore to warn about."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_worker_dies_with_its_parent_by_pdeathsig(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(HERE / "orphan_script.py"), str(tmp_path / "results")],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"killed_by": signal.SIGKILL}, outcome  # {"exit": 3} is the 1 s poll


def _worker_of(parent: int) -> int:
    """The spawned worker among ``parent``'s children (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for child in children:
        command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in command and b"resource_tracker" not in command:
            return int(child)
    raise AssertionError(f"no worker among the children {children} of {parent}")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_worker_killed_mid_cell_leaks_no_semaphore(tmp_path: Path, tiny_model_dir: str) -> None:
    """The run loop's progress bar made tqdm create a multiprocessing lock in the worker; a
    worker killed with it made the parent's resource tracker warn at exit."""
    base = tmp_path / "results"
    study = subprocess.Popen(
        [sys.executable, str(HERE / "study_script.py"), str(base), tiny_model_dir, "dense"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(base.glob("*/dense/mock_benchmark/predictions.jsonl")):
        assert time.monotonic() < deadline and study.poll() is None, "the cell never started"
        time.sleep(0.01)
    os.kill(_worker_of(study.pid), signal.SIGKILL)
    _, err = study.communicate(timeout=180)
    assert study.returncode == 0, err
    summary = json.loads((base / "execution_summary.json").read_text())
    assert summary["worker_crashes"] == 1
    assert "leaked semaphore" not in err, err
