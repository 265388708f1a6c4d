"""Defect 7 of issue 14: a full disk, for real (a small tmpfs; needs root, else skipped).

The study fails with one clear line and exit code 3, leaves no empty or temporary file
behind, and once space is freed the same command resumes every cell: nothing moves to stale/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

FREE_BYTES = 40 * 1024  # room for a cell or so: the run starts, then the disk fills up


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for the test."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int) -> Path:
    stats = os.statvfs(mount)
    filler = mount / "filler"
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def _study(tmp_path: Path, model: str, result_dir: Path) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            result_dir: {result_dir}
            models: [{model}]
            sparse_configs:
              dense: dense
              sink_local: [{{sink: {{sink_size: 2}}}}, {{local: {{window_size: 4}}}}]
            benchmarks: [mock_benchmark]
            adapter: {{model_kwargs: {{dtype: float32}}}}
            generation_kwargs: {{max_new_tokens: 3}}
            executor:
              gpus: cpu
              max_concurrent_runs: 1
              enabled_metrics: [research_attention_density, research_attention_output_error]
            """
        )
    )
    return path


def _sah(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", "-q", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_full_disk_fails_cleanly_and_a_rerun_resumes(
    small_disk: Path, tmp_path: Path, tiny_model_dir: str
) -> None:
    out = small_disk / "out"
    study = _study(tmp_path, tiny_model_dir, out)
    filler = _fill(small_disk, FREE_BYTES)
    first = _sah("run", str(study))
    assert first.returncode == 3, first.stdout + first.stderr
    assert "Traceback" not in first.stderr, first.stderr
    lines = first.stderr.splitlines()
    errors = [line for line in lines if line.startswith("sah: error:")]
    assert len(errors) == 1 and "No space left on device" in errors[0], first.stderr
    assert len([line for line in lines if "No space left" in line]) <= 2, first.stderr
    assert "free space and run the same command again" in errors[0]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.stat().st_size == 0 and p.name != ".sah_executor.lock"]
    assert not [p for p in files if p.name.endswith(".tmp")]

    filler.unlink()
    second = _sah("run", str(study))
    assert second.returncode == 0, second.stdout + second.stderr
    assert not list(out.rglob("stale")), "a cell was wrongly moved to stale/"
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 2 and table["status"].eq("complete").all()
