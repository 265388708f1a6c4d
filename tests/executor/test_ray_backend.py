"""The Ray backend on a real two-node Ray cluster (``ray.cluster_utils.Cluster``, on CPU).

One cluster serves the module: a head and a worker node of 1 CPU each, so two 1-CPU actors
land on different nodes. The tests: the demo study gives the local backend's predictions and
scores; Ctrl-C and kill -9 leave no actor behind and a rerun resumes; a timed-out cell's
actor is replaced; removing a node mid-run retries its cell on the other node and nothing is
lost (last: it shrinks the cluster).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip(
    "ray", reason='Ray is not installed: pip install "sparse-attention-hub[ray]"'
)

from ray.cluster_utils import Cluster  # noqa: E402

from sparse_attention_hub.executor import (  # noqa: E402
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkExecutor,
)
from tests.support.fault_benchmark import FAULT  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Any:
    nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    nodes.add_node(num_cpus=1)
    ray.init(address=nodes.address)
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def _alive_actors() -> list[dict[str, Any]]:
    from ray._private import state

    return [a for a in state.actors().values() if a["State"] != "DEAD"]


def _wait_for(path: Path, proc: subprocess.Popen[str] | None = None, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the driver exited early:\n{proc.communicate()[0]}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _wait_until(condition: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)
    return bool(condition())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cells(base: Path) -> dict[str, tuple[list[dict[str, Any]], Any]]:
    """cell folder -> (its predictions without their timings, metrics.json's overall score)."""
    out = {}
    for metrics in sorted(base.glob("*/*/*/metrics.json")):
        cell = metrics.parent
        score = json.loads(metrics.read_text()).get("overall_score")
        lines = (cell / "predictions.jsonl").read_text().splitlines()
        predictions = [
            {k: v for k, v in json.loads(line).items() if not k.endswith("_seconds")}
            for line in lines
        ]
        out[str(cell.relative_to(base))] = (predictions, score)
    return out


def test_demo_study_on_ray_matches_the_local_backend(cluster: Any, tmp_path: Path) -> None:
    from sparse_attention_hub.experiment import load_experiment
    from sparse_attention_hub.experiment.runner import run_experiment

    demo = load_experiment(str(ROOT / "examples" / "demo.yaml"))
    keep = ("oracle_top_k", "streaming")  # for time: two of its configs, 2 needles at 1k
    benchmark = demo.benchmarks[0]
    demo = replace(
        demo,
        sparse_configs=[c for c in demo.sparse_configs if c[0] in keep],
        benchmarks=[
            replace(
                benchmark,
                subsets=["1024"],
                benchmark_kwargs={**(benchmark.benchmark_kwargs or {}), "num_samples": 2},
            )
        ],
    )
    local = demo.with_overrides(result_dir=str(tmp_path / "local"))
    on_ray = demo.with_overrides(result_dir=str(tmp_path / "ray"), backend="ray")
    assert run_experiment(local, verbose=False).failed == []
    assert run_experiment(on_ray, verbose=False).failed == []

    expected, got = _cells(tmp_path / "local"), _cells(tmp_path / "ray")
    assert len(expected) == 2 and got == expected  # predictions and scores, cell by cell
    assert {score for _, score in got.values()} != {0}  # the trained model finds needles

    summary = json.loads((tmp_path / "ray" / "execution_summary.json").read_text())
    assert summary["backend"]["name"] == "ray"
    assert len(summary["backend"]["nodes"]) == 2  # both passed the shared-storage probe
    assert not (tmp_path / "ray" / ".sah_storage_probe").exists()  # which cleaned up
    assert not summary["backend"]["version_warnings"]
    cluster_nodes = {n["node_id"] for n in summary["backend"]["nodes"]}
    cell_nodes = {
        json.loads(p.read_text())["execution"]["ray_node_id"]
        for p in (tmp_path / "ray").glob("*/*/*/config.json")
    }
    assert cell_nodes <= cluster_nodes
    local_summary = json.loads((tmp_path / "local" / "execution_summary.json").read_text())
    assert set(local_summary) == set(summary)  # one format for both backends


STUDY = """
result_dir: {base}
models: [fake/model]
sparse_configs: {{dense: dense}}
benchmarks:
  - name: "tests.support.fault_benchmark:FaultInjectionBenchmark"
    subsets: [ok, sleep_3.0]
executor: {{gpus: cpu, max_concurrent_runs: 2}}
"""


def _driver(base: Path, cluster: Any) -> subprocess.Popen[str]:
    """``sah run study.yaml --backend ray --address <the cluster>`` in its own process group."""
    study = base.parent / "study.yaml"
    study.write_text(STUDY.format(base=base), encoding="utf-8")
    command = ["run", str(study), "--backend", "ray", "--address", cluster.address]
    return subprocess.Popen(
        [sys.executable, "-m", "sparse_attention_hub", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )


def _matrix() -> dict[str, Any]:
    """The study's matrix, for the executor's own API."""
    return dict(
        model_names=["fake/model"],
        sparse_attention_configs=[("dense", None)],
        benchmark_configs=[BenchmarkConfig(FAULT, ["ok", "sleep_3.0"])],
        adapter_config=AdapterConfig(),
    )


def _running(config: Path) -> bool:
    try:
        return json.loads(config.read_text())["execution"]["status"] == "running"
    except (OSError, ValueError, KeyError):
        return False


def test_ctrl_c_or_kill_leave_no_actor_and_a_rerun_resumes(cluster: Any, tmp_path: Path) -> None:
    """Ctrl-C a run; rerun it as ``sah run --backend ray`` and kill -9 that; a third run
    finishes the matrix."""
    from sparse_attention_hub.executor import ExecutionInterrupted

    base = tmp_path / "results"
    cells = base / "fake_model" / "dense"
    sleeper = cells / "fault_injection_sleep_3.0" / "config.json"

    def ctrl_c_once_the_sleeper_runs() -> None:
        _wait_for(cells / "fault_injection_ok" / "metrics.json")
        _wait_for(sleeper)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, caught by the executor's handler

    threading.Thread(target=ctrl_c_once_the_sleeper_runs, daemon=True).start()
    executor = BenchmarkExecutor(None, 2, base_result_dir=str(base), backend="ray", verbose=False)
    with pytest.raises(ExecutionInterrupted):
        executor.run_benchmark_matrix(**_matrix())
    assert _wait_until(lambda: not _alive_actors()), _alive_actors()
    summary = json.loads((base / "execution_summary.json").read_text())
    assert summary["interrupted"] == "SIGINT"
    statuses = {c["cell"].rsplit("_", 1)[-1]: c["status"] for c in summary["cells"]}
    assert statuses == {"ok": "complete", "3.0": "interrupted"}, summary["cells"]
    plan = BenchmarkExecutor(None, 2, base_result_dir=str(base)).plan_matrix(**_matrix())
    assert {stub.subset: status for stub, status in plan} == {
        "ok": "complete",
        "sleep_3.0": "interrupted",
    }

    proc = _driver(base, cluster)  # resumes: runs only the sleeper; killed while it sleeps
    assert _wait_until(lambda: _running(sleeper), 60), proc.poll()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _wait_until(lambda: not _alive_actors()), _alive_actors()

    results = executor.run_benchmark_matrix(**_matrix())
    assert [s.subset for s in results.skipped] == ["ok"]
    assert [r.stub.subset for r in results.individual_results] == ["sleep_3.0"]
    assert not results.failed_executions


def test_a_timed_out_cell_gets_its_actor_killed_and_replaced(cluster: Any, tmp_path: Path) -> None:
    executor = BenchmarkExecutor(
        None, 1, base_result_dir=str(tmp_path), backend="ray", timeout_per_benchmark=2.0
    )
    results = executor.run_benchmark_matrix(
        model_names=["fake/model"],
        sparse_attention_configs=[("dense", None)],
        benchmark_configs=[BenchmarkConfig(FAULT, ["hang", "ok"])],
        adapter_config=AdapterConfig(),
    )
    assert [r.stub.subset for r in results.individual_results] == ["ok"]  # on the replacement
    (failure,) = results.failed_executions
    assert failure.stub.subset == "hang" and failure.error_type == "timeout"
    assert "timed out after 2.0s" in Path(failure.traceback_path or "").read_text()
    assert len(results.execution_summary["backend"]["actors"]) == 2
    assert _wait_until(lambda: not _alive_actors()), _alive_actors()


def test_a_node_lost_mid_run_retries_its_cell_on_the_other(cluster: Any, tmp_path: Path) -> None:
    base = tmp_path / "results"
    executor = BenchmarkExecutor(None, 2, base_result_dir=str(base), backend="ray", verbose=False)
    matrix = dict(
        model_names=["fake/model"],
        sparse_attention_configs=[("a", None), ("b", None)],
        benchmark_configs=[BenchmarkConfig(FAULT, ["pidfile"], benchmark_kwargs={"seconds": 5})],
        adapter_config=AdapterConfig(),
    )
    outcome: dict[str, Any] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(results=executor.run_benchmark_matrix(**matrix))
    )
    thread.start()
    pid_files = [base / "fake_model" / c / "fault_injection_pidfile" / "pid.txt" for c in "ab"]
    for path in pid_files:  # both cells running, one per node
        _wait_for(path)
    pids = {path.read_text() for path in pid_files}
    assert len(pids) == 2, "one actor ran both cells: the other started more than 5 s later"
    worker_node = next(n for n in cluster.list_all_nodes() if n is not cluster.head_node)
    cluster.remove_node(worker_node)
    thread.join(120)
    assert not thread.is_alive()

    results = outcome["results"]
    assert not results.failed_executions
    assert sorted(r.stub.sparse_config_name for r in results.individual_results) == ["a", "b"]
    summary = results.execution_summary
    assert summary["worker_crashes"] == 1
    attempts = sorted(
        json.loads(p.read_text())["execution"]["attempt"] for p in base.glob("*/*/*/config.json")
    )
    assert attempts == [1, 2]  # the lost node's cell ran again, on the head node
    assert _wait_until(lambda: not _alive_actors()), _alive_actors()
