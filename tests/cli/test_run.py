"""``sah run`` for real: failed cells give exit code 1, Ctrl-C gives 130.

Uses the hidden ``fault_injection`` benchmark (no model needed) on one worker process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.cli import main


def experiment(tmp_path: Path, subsets: list[str], kwargs: str = "{}") -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            result_dir: {tmp_path / "out"}
            models: [org/no-model]
            sparse_configs: {{dense: dense}}
            benchmarks:
              - name: "tests.support.fault_benchmark:FaultInjectionBenchmark"
                subsets: {subsets}
                benchmark_kwargs: {kwargs}
            executor: {{gpus: cpu, max_concurrent_runs: 1, max_retries: 0}}
            """
        ),
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_failed_cells_exit_1_and_are_listed(tmp_path, capsys) -> None:
    path = experiment(tmp_path, ["ok", "raise"])
    assert main(["-q", "run", str(path)]) == 1
    out = capsys.readouterr().out
    assert "1 cell(s) failed; see error.txt in:" in out
    assert "fault_injection_raise" in out
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:2] == ["model", "config"] and "fault_injection_ok" in header
    assert "failed" in lines[2].split()
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(table["status"]) == ["complete", "failed"]
    # The rerun reuses the complete cell and retries the failed one.
    assert main(["-q", "run", str(path)]) == 1
    assert "reusing 1 finished cell(s) of 2" in capsys.readouterr().out
    assert main(["-q", "run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    plan = {line.split()[2]: line.split()[3] for line in out[3 : out.index("")]}
    assert plan["fault_injection_ok"] == "complete"
    assert plan["fault_injection_raise"] != "complete"
    # A changed setting makes the finished cell stale: it would run again.
    path.write_text(path.read_text() + "generation_kwargs: {max_new_tokens: 3}\n")
    assert main(["-q", "run", str(path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert " 2 cells: " in lines[0] and "stale" in lines[0]
    plan = {line.split()[2]: line.split()[3] for line in lines[3 : lines.index("")]}
    assert plan["fault_injection_ok"] == "stale"


@pytest.mark.slow
def test_ctrl_c_exits_130_and_marks_nothing_complete(tmp_path) -> None:
    path = experiment(tmp_path, ["ok", "pidfile"], "{seconds: 60}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparse_attention_hub", "-q", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    pid_file = tmp_path / "out" / "org_no-model" / "dense" / "fault_injection_pidfile" / "pid.txt"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert pid_file.exists(), proc.communicate(timeout=30)[0]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted; run the same command again to resume" in out
    assert "Traceback" not in out
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    statuses = dict(zip(table["subset"], table["status"], strict=True))
    assert statuses["pidfile"] != "complete"


def test_a_ray_address_without_the_ray_backend_is_bad_input(tmp_path, capsys) -> None:
    path = experiment(tmp_path, ["ok"])
    assert main(["run", str(path), "--address", "auto"]) == 2
    err = capsys.readouterr().err
    assert "--address is a Ray address: add --backend ray" in err, err
    assert not (tmp_path / "out").exists()  # nothing ran
