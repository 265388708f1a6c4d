"""No loss at exit and no duplicates across fork, with real processes (see mp_scenarios.py)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("mp_scenarios.py")


def _run(mode: str, base: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), mode, str(base)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def _values(directory: Path, read_events) -> list[str]:
    return [event["value"] for event in read_events(directory)]


def test_main_process_flushes_at_exit(tmp_path: Path, read_events):
    _run("exit", tmp_path)
    assert _values(tmp_path, read_events) == [f"main:{i}" for i in range(5)]


def test_spawned_children_flush_at_exit(tmp_path: Path, read_events):
    _run("spawn", tmp_path)
    assert _values(tmp_path / "process", read_events) == [f"child:{i}" for i in range(4)]
    for k in range(3):
        assert _values(tmp_path / f"pool{k}", read_events) == [f"pool{k}:{i}" for i in range(3)]


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_forked_children_flush_their_own_events_and_never_the_parents(tmp_path, read_events):
    _run("fork", tmp_path)
    counts = Counter(_values(tmp_path, read_events))
    expected = (
        [f"parent_before:{i}" for i in range(3)]
        + [f"child:{i}" for i in range(2)]
        + [f"pool{k}:{i}" for k in range(3) for i in range(2)]
        + ["parent_after:0"]
    )
    assert counts == Counter(expected)  # each exactly once: nothing lost, nothing duplicated
    assert _values(tmp_path / "cell", read_events) == ["cell_child:0", "cell_child:1"]
    pids = {event["metadata"]["pid"] for event in read_events(tmp_path)}
    assert len(pids) >= 3
