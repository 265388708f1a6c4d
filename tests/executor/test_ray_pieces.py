"""The Ray backend's parts that need no cluster: the lease, versions, settings, validation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparse_attention_hub.executor import BenchmarkExecutor, ExecutorConfigError
from sparse_attention_hub.executor.backend import ray_gpu_share, worker_settings
from sparse_attention_hub.executor.lease import (
    LEASE_FILE,
    STALE_AFTER,
    RunLease,
    check_lease_free,
)
from sparse_attention_hub.executor.lock import BaseDirLocked
from sparse_attention_hub.node_probe import node_facts, probe_storage, version_mismatches


def _holder(path: Path, host: str, pid: int, age: float = 0.0) -> None:
    path.write_text(json.dumps({"host": host, "pid": pid, "token": "x", "at": time.time()}))
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))


def test_the_lease_is_held_while_the_run_lasts_and_given_back(tmp_path: Path) -> None:
    with RunLease(tmp_path):
        assert (tmp_path / LEASE_FILE).exists()
        with pytest.raises(BaseDirLocked, match="another run"):
            check_lease_free(tmp_path)
        with pytest.raises(BaseDirLocked, match=f"host {socket.gethostname()}, pid {os.getpid()}"):
            RunLease(tmp_path).__enter__()
    assert not (tmp_path / LEASE_FILE).exists()
    check_lease_free(tmp_path)


def test_a_fresh_lease_of_another_machine_blocks_a_stale_one_does_not(tmp_path: Path) -> None:
    _holder(tmp_path / LEASE_FILE, "node-b", 1, age=5.0)
    with pytest.raises(BaseDirLocked, match=r"host node-b, pid 1.* expires 60 s"):
        check_lease_free(tmp_path)
    _holder(tmp_path / LEASE_FILE, "node-b", 1, age=STALE_AFTER + 5)
    check_lease_free(tmp_path)
    with RunLease(tmp_path) as lease:  # taken over
        assert json.loads((tmp_path / LEASE_FILE).read_text())["token"] == lease.token


def test_a_dead_process_of_this_machine_holds_no_lease(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    _holder(tmp_path / LEASE_FILE, socket.gethostname(), int(gone.stdout), age=1.0)
    check_lease_free(tmp_path)  # a kill -9'd run on this host: rerun at once


def test_version_mismatches_name_the_package_and_the_hosts() -> None:
    here = node_facts()
    assert version_mismatches([here, dict(here, host="other")]) == []
    other = dict(here, host="other", versions=dict(here["versions"], torch="0.0"))
    lines = version_mismatches([here, other])
    assert lines == [f"torch: {here['versions']['torch']} on {here['host']}; 0.0 on other"]


def test_ray_actors_share_gpus_as_local_workers_do() -> None:
    assert ray_gpu_share([0, 1], 4) == 0.5
    assert ray_gpu_share([0, 1, 2, 3], 2) == 1.0
    assert ray_gpu_share([], 3) == 0.0
    on_ray = worker_settings("ray", 3, [4, 5], max_records=7)
    assert [s.gpu_id for s in on_ray] == [0, 0, 0]  # Ray sets CUDA_VISIBLE_DEVICES per actor
    assert {s.max_records for s in on_ray} == {7}
    assert [s.gpu_id for s in worker_settings("local", 3, [4, 5])] == [4, 5, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "slurm"}, "backend='slurm': must be 'local' or 'ray'"),
        ({"ray_address": "auto"}, "ray_address='auto' is given but backend is 'local'"),
        ({"backend": "ray", "ray_address": " "}, "must be 'auto', 'local', 'host:port' or None"),
    ],
)
def test_bad_backend_settings_are_named(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ExecutorConfigError, match=message):
        BenchmarkExecutor(None, 1, **kwargs)  # type: ignore[arg-type]


def test_the_storage_probe_reports_what_a_node_cannot_see(tmp_path: Path) -> None:
    facts = probe_storage(str(tmp_path / "nowhere"), "token", "node-1")
    assert "FileNotFoundError" in facts["storage_error"]
    (tmp_path / "driver").write_text("another-token")
    assert (
        "another run's probe file"
        in probe_storage(str(tmp_path), "token", "node-1")["storage_error"]
    )
    (tmp_path / "driver").write_text("token")
    facts = probe_storage(str(tmp_path), "token", "node-1")
    assert facts["storage_error"] is None and (tmp_path / "node-1").read_text() == "token"
    assert set(facts["versions"]) >= {"torch", "transformers", "sparse-attention-hub"}


def test_a_cluster_without_the_resources_the_actors_need_is_an_error_up_front() -> None:
    from sparse_attention_hub.executor.ray_session import missing_resources

    assert missing_resources({"CPU": 4.0, "GPU": 8.0}, 0.25, 1.0) == []
    (gpu,) = missing_resources({"CPU": 4.0}, 0.5, 1.0)
    assert "0.5 GPU, but the Ray cluster has 0 GPU; give the study gpus: cpu" in gpu
    assert missing_resources({}, 0.0, 1.0) == [
        "each actor asks for 1 CPU, but the Ray cluster has none"
    ]


def test_the_gcs_watch_calls_a_cluster_lost_only_after_it_stays_silent() -> None:
    from sparse_attention_hub.executor.ray_health import GcsWatch

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        watch = GcsWatch(address, interval=0.0, lost_after=0.05)
        assert watch() is None  # it answers
    assert watch() is None  # closed: silent, but not yet for lost_after
    time.sleep(0.1)
    lost = watch()
    assert lost is not None and f"its GCS at {address} has not answered" in lost
    assert watch() == lost  # once lost, for good
