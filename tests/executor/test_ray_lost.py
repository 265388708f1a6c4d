"""A Ray cluster lost mid-run (its head killed): the driver ends with a summary and one line.

Its own cluster (the one of test_ray_backend.py must outlive its tests): a 2-CPU head node
only, killed while two cells run. Ray would end the driver from C++ 60 s after the GCS went
away; the GCS watch (:mod:`sparse_attention_hub.executor.ray_health`) stops the run first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason='Ray is not installed: pip install "sparse-attention-hub[ray]"')

from ray.cluster_utils import Cluster

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STUDY = """
result_dir: {base}
models: [fake/model]
sparse_configs: {{dense: dense}}
benchmarks:
  - name: "tests.support.fault_benchmark:FaultInjectionBenchmark"
    subsets: [ok, hang, pidfile]
    benchmark_kwargs: {{seconds: 60}}
executor: {{gpus: cpu, max_concurrent_runs: 2}}
"""


def test_a_lost_cluster_ends_the_run_with_its_summary_and_one_line(tmp_path: Path) -> None:
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False}
    )
    base = tmp_path / "results"
    study = tmp_path / "study.yaml"
    study.write_text(STUDY.format(base=base), encoding="utf-8")
    command = ["run", str(study), "--backend", "ray", "--address", cluster.address]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sparse_attention_hub", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        pid_file = base / "fake_model" / "dense" / "fault_injection_pidfile" / "pid.txt"
        deadline = time.monotonic() + 120
        while not pid_file.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the pidfile cell never started"
            time.sleep(0.2)
        cluster.head_node.kill_all_processes(check_alive=False, allow_graceful=False)
        out, _ = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.communicate()
        cluster.shutdown()

    errors = [line for line in out.splitlines() if line.startswith("sah: error:")]
    assert len(errors) == 1, out[-3000:]
    assert "lost the Ray cluster" in errors[0] and "run the same command to resume" in errors[0]
    # Ended by sah, not by Ray: its line comes first (on a loaded machine, Ray's own 60 s
    # fatal message may still follow it while the driver writes the summary and exits).
    ray_fatal = out.find("Failed to connect to GCS")
    assert ray_fatal == -1 or ray_fatal > out.find("sah: error:"), out[-3000:]
    assert proc.returncode == 1
    summary = json.loads((base / "execution_summary.json").read_text())
    assert "lost the Ray cluster" in summary["error"]
    statuses = {c["cell"].rsplit("injection_", 1)[-1]: c["status"] for c in summary["cells"]}
    assert statuses == {"ok": "complete", "hang": "not_run", "pidfile": "not_run"}
