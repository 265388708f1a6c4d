"""The ``sah`` command in-process: run --dry-run, report, list, and user errors (exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub import __version__
from sparse_attention_hub.cli import main
from tests.support.cells import write_complete

EXPERIMENT = """
models:
  - tiny_model: {arch: llama}
sparse_configs:
  dense: dense
  streaming:
    - sink: {sink_size: 4}
    - local: {window_size: 16}
benchmarks:
  - mock_benchmark
  - name: synthetic_ruler
    subsets: [1024, 2048]
    benchmark_kwargs: {num_samples: 1}
executor:
  gpus: cpu
  max_concurrent_runs: 2
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_python_dash_m_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"sah {__version__}"


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models: [m]\nsparse_configs: {dense: dense}\nbenchmarks: [nope]\n",
            "benchmarks[0]: unknown benchmark 'nope'",
        ),
        (
            "models: [m]\nsparse_configs: {s: [{sinkk: {}}]}\nbenchmarks: [mock]\n",
            "sparse_configs.s[0]: unknown masker 'sinkk'",
        ),
        (
            "models: [m]\nsparse_configs: {dense: dense}\nbenchmarks: [mock]\nexecuter: {}\n",
            "executer: unknown key",
        ),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, text: str, expected: str) -> None:
    path = write(tmp_path / "exp.yaml", text)
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sah: error: {path}: ") and expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_experiment_file(tmp_path, capsys) -> None:
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err == f"sah: error: {tmp_path / 'missing.yaml'}: no such file\n"


def test_bad_gpus_flag(tmp_path, capsys) -> None:
    path = write(tmp_path / "exp.yaml", EXPERIMENT)
    assert main(["run", str(path), "--dry-run", "--gpus", "0,zero"]) == 2
    assert "sah: error: --gpus: bad GPU id str 'zero'" in capsys.readouterr().err


def test_gpus_that_do_not_exist_are_a_user_error(tmp_path, capsys) -> None:
    """The run refuses them; --dry-run lists the cells with a note (a study for a GPU server,
    checked on a laptop)."""
    path = write(tmp_path / "exp.yaml", EXPERIMENT)
    assert main(["-q", "run", str(path), "--dry-run", "--gpus", "97"]) == 0
    out = capsys.readouterr().out
    assert "6 cells: 6 pending" in out and "note: executor.gpus [97]: GPU(s) [97] are not" in out
    assert main(["run", str(path), "--gpus", "97", "--result-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sah: error: {path}: ") and "97" in err and err.count("\n") == 1
    assert err.endswith("(on a machine without those GPUs: --gpus cpu, or executor.gpus: cpu)\n")


def test_quiet_flag_after_the_subcommand(tmp_path, capsys) -> None:
    path = write(tmp_path / "exp.yaml", EXPERIMENT)
    assert main(["run", str(path), "--dry-run", "-q", "--max-concurrent-runs", "1"]) == 0
    assert "6 cells: 6 pending" in capsys.readouterr().out


def test_bad_max_concurrent_runs_flag(tmp_path, capsys) -> None:
    path = write(tmp_path / "exp.yaml", EXPERIMENT)
    with pytest.raises(SystemExit) as info:
        main(["run", str(path), "--max-concurrent-runs", "0"])
    assert info.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_dry_run_lists_every_cell_and_runs_nothing(tmp_path, capsys) -> None:
    path = write(tmp_path / "exp.yaml", EXPERIMENT)
    out_dir = tmp_path / "out"
    assert main(["-q", "run", str(path), "--dry-run", "--result-dir", str(out_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: 6 cells: 6 pending under {out_dir}"
    blank = out.index("")  # the plan, then the preflight report
    cells = [line.split() for line in out[3:blank]]
    assert len(cells) == 6
    assert {(c[1], c[2], c[3]) for c in cells} == {
        (config, bench, "pending")
        for config in ("dense", "streaming")
        for bench in ("mock_benchmark", "synthetic_ruler_1024", "synthetic_ruler_2048")
    }
    model = str(Path(out_dir, "tiny_models", "tiny-llama-s0"))
    assert all(c[0] == model for c in cells)
    assert (
        out[blank + 1].startswith("preflight (")
        and "every model and dataset found" in out[blank + 1]
    )
    assert out[blank + 2 :] == [f"  model {model}: tiny llama model, built when the run starts"]
    assert not (out_dir / "tiny_models").exists()  # nothing built
    assert not list(out_dir.rglob("config.json")) if out_dir.exists() else True


def make_cell(
    base: Path,
    config: str,
    bench: str,
    subset: str | None,
    score: float | None,
    density: list[float] = (),
    error: bool = False,
) -> Path:
    """A cell directory as the executor leaves it (config.json, metrics.json, micro metrics)."""
    cell = base / "org_model" / config / (bench if subset is None else f"{bench}_{subset}")
    cell.mkdir(parents=True)
    resolved = {
        "model_name": "org/model",
        "sparse_config_name": config,
        "benchmark_name": bench,
        "subset": subset,
    }
    execution = {"status": "failed" if error else "complete", "seconds": 2.0}
    (cell / "config.json").write_text(
        json.dumps({"resolved_config": resolved, "fingerprint": "x", "execution": execution})
    )
    if error:
        (cell / "error.txt").write_text("Traceback ...\nRuntimeError: boom\n")
    else:
        metrics = {"overall_score": score, "task_scores": {"a": score}}
        # rows of sparse configs are not the dense rows: no agreement column in these tests
        write_complete(cell, metrics, first_row=0 if config == "dense" else 1000)
    events = [
        {"metric": "research_attention_density", "value": d, "metadata": {"layer_idx": i}}
        for i, d in enumerate(density)
    ]
    if events:
        (cell / "micro_metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return cell


@pytest.fixture
def results_tree(tmp_path) -> Path:
    base = tmp_path / "results"
    make_cell(base, "dense", "mock_benchmark", None, 40.0)
    make_cell(base, "dense", "synthetic_ruler", "1024", 80.0)
    make_cell(base, "streaming", "mock_benchmark", None, 20.0, density=[0.2, 0.4])
    make_cell(base, "streaming", "synthetic_ruler", "1024", None, density=[0.1], error=True)
    return base


def test_report_table_writes_results_csv(results_tree: Path, capsys) -> None:
    assert main(["report", str(results_tree)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "model",
        "config",
        "mock_benchmark",
        "synthetic_ruler_1024",
        "mean",
        "density",
    ]
    assert lines[2].split() == ["org/model", "dense", "40", "80", "60", "-"]
    assert lines[3].split() == ["org/model", "streaming", "20", "failed", "20", "0.3"]
    table = pd.read_csv(results_tree / "results.csv")
    assert len(table) == 4
    assert set(table["status"]) == {"complete", "failed"}


@pytest.mark.parametrize("fmt", ["markdown", "csv", "json"])
def test_report_formats(results_tree: Path, capsys, fmt: str) -> None:
    assert main(["report", str(results_tree), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "markdown":
        assert out.splitlines()[2].replace(" ", "") == "|org/model|dense|40|80|60|-|"
    elif fmt == "csv":
        assert (
            out.splitlines()[0] == "model,config,mock_benchmark,synthetic_ruler_1024,mean,density"
        )
    else:
        rows = json.loads(out)
        assert [r["config"] for r in rows] == ["dense", "streaming"]
        assert rows[1]["density"] == pytest.approx(0.3)  # complete cells only


def test_report_on_missing_or_empty_directory(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such results directory" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no result cells found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("what", "names"),
    [
        ("maskers", ["sink", "local", "oracle_top_k"]),
        ("benchmarks", ["mock_benchmark", "synthetic_ruler"]),
    ],
)
def test_list(capsys, what: str, names: list[str]) -> None:
    assert main(["list", what]) == 0
    out = capsys.readouterr().out
    firsts = {line.split()[0] for line in out.splitlines() if line and not line.startswith(" ")}
    assert set(names) <= firsts


def test_help_lists_every_command_on_one_line(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    for command in ("list", "make-tiny-model", "run", "report", "demo"):
        line = next(line for line in lines if line.split()[:1] == [command])
        assert len(line.split()) > 2, line  # the name, then its help on the same line


def test_python_dash_m_demo_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "--result-dir" in done.stdout and "--dry-run" in done.stdout


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_unusable_result_dir_is_a_user_error(tmp_path, capsys) -> None:
    """A result_dir that cannot be created (even as root): one line naming file and key."""
    path = write(tmp_path / "exp.yaml", EXPERIMENT + "result_dir: /proc/sah-none/results\n")
    assert main(["-q", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sah: error: {path}: result_dir /proc/sah-none/results: "), err
    assert "Traceback" not in err and err.count("\n") == 1


def test_report_on_a_file(tmp_path, capsys) -> None:
    (tmp_path / "results.csv").write_text("")
    assert main(["report", str(tmp_path / "results.csv")]) == 2
    assert "results.csv: not a directory" in capsys.readouterr().err


def test_make_tiny_model_onto_a_file_is_a_user_error(tmp_path, capsys) -> None:
    (tmp_path / "taken").write_text("")
    assert main(["make-tiny-model", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sah: error: {tmp_path / 'taken'}: cannot write a model there (")
    assert err.count("\n") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_a_second_run_on_a_busy_results_dir_is_one_line(tmp_path, capsys) -> None:
    """Another executor holds <result_dir>/.sah_executor.lock: say so, run nothing."""
    import fcntl

    out_dir = tmp_path / "busy"
    out_dir.mkdir()
    path = write(tmp_path / "exp.yaml", EXPERIMENT + f"result_dir: {out_dir}\n")
    with open(out_dir / ".sah_executor.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("12345")
        handle.flush()
        assert main(["-q", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sah: error: {path}: another BenchmarkExecutor (pid 12345) is running")
    assert err.count("\n") == 1
    assert not list(out_dir.glob("*/dense"))  # no cell ran


def test_workers_dying_at_start_up_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch) -> None:
    import dataclasses

    from sparse_attention_hub.executor import BenchmarkExecutor

    original = BenchmarkExecutor._worker_settings

    def broken(self, num_cells):  # type: ignore[no-untyped-def]  # set_num_threads(-1) raises
        return [dataclasses.replace(s, num_threads=-1) for s in original(self, num_cells)]

    monkeypatch.setattr(BenchmarkExecutor, "_worker_settings", broken)
    text = (
        "models: [org/m]\nsparse_configs: {dense: dense}\n"
        'benchmarks: [{name: "tests.support.fault_benchmark:FaultInjectionBenchmark", subsets: [ok]}]\n'
        f"result_dir: {tmp_path / 'out'}\nexecutor: {{gpus: cpu}}\n"
    )
    path = write(tmp_path / "exp.yaml", text)
    assert main(["-q", "run", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"sah: error: {path}: ") and "set_num_threads" in err
    assert err.endswith(f"(see {tmp_path / 'out'}/execution_summary.json)\n")
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", ["run", "demo"])
def test_an_empty_result_dir_flag_is_refused(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Issue 14, defect 5: ``--result-dir ''`` would write into the current directory."""
    monkeypatch.chdir(tmp_path)
    study = write(tmp_path / "exp.yaml", "models: [org/m]\nbenchmarks: [mock_benchmark]\n")
    args = [command, str(study)] if command == "run" else [command]
    with pytest.raises(SystemExit) as info:
        main([*args, "--result-dir", ""])
    assert info.value.code == 2
    assert "--result-dir must name a directory, got ''" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]
