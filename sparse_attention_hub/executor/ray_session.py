"""The Ray backend's session: connect to the cluster, check its storage, record its nodes.

``open_session`` runs once per matrix, before any cell:

1. ``ray.init(address=...)`` unless Ray is already initialised in this process (then that
   connection is used and left open). ``address`` is Ray's: ``"auto"`` joins the cluster
   started on this machine (``ray start --head``) or named by RAY_ADDRESS, ``"host:port"``
   joins that one, ``"local"`` starts a private instance, None follows Ray's own rule.
2. Shared storage: the driver writes a token file under ``result_dir``; a task pinned to
   every alive node reads it and writes its own, which the driver then reads. A node that
   cannot is one :class:`SharedStorageError` naming the node and the path (cells are written
   by actors on any node into ``result_dir``, so it must be one filesystem for all).
3. Every node's host, Python and package versions go into the summary; nodes that differ
   are a warning.

Environment variables the actors need from the driver (``PYTHONPATH`` and those starting
with ``HF_``, ``TRANSFORMERS_`` or ``SAH_``) are set in every actor before it imports
anything (:class:`.ray_actor.CellActor`).
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparse_attention_hub.executor.ray_health import GcsWatch
from sparse_attention_hub.executor.ray_launcher import RayLauncher
from sparse_attention_hub.executor.validation import ExecutorConfigError
from sparse_attention_hub.node_probe import probe_storage, version_mismatches

log = logging.getLogger(__name__)

PROBE_DIR = ".sah_storage_probe"
PROBE_TIMEOUT = 120.0
FORWARDED_PREFIXES = ("HF_", "TRANSFORMERS_", "SAH_")
INSTALL_HINT = 'the Ray backend needs Ray: pip install "sparse-attention-hub[ray]"'


class SharedStorageError(ExecutorConfigError):
    """A node of the Ray cluster cannot read or write the results directory."""


@dataclass
class RaySession:
    """A connection to a cluster, what its nodes are, and the launcher of its actors."""

    address: str | None
    started_here: bool
    launcher: RayLauncher
    nodes: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    watch: GcsWatch | None = None

    def health(self) -> str | None:
        """None while the cluster answers; one line once it is lost (see :mod:`.ray_health`)."""
        return None if self.watch is None else self.watch()

    def summary(self) -> dict[str, Any]:
        """The ``backend`` entry of execution_summary.json: the cluster's nodes (from the
        storage probe) and every actor that started (worker index, node, pid)."""
        return {
            "name": "ray",
            "address": self.address,
            "nodes": self.nodes,
            "actors": [
                {k: facts[k] for k in ("worker", "node_id", "host", "pid")}
                for facts in self.launcher.nodes_used()
            ],
            "version_warnings": self.warnings,
            "actor_gpus": self.launcher.num_gpus,
            "actor_cpus": self.launcher.num_cpus,
        }


def forwarded_environment() -> dict[str, str]:
    """The driver's variables the actors must see (module path, hub and package settings)."""
    return {
        k: v for k, v in os.environ.items() if k == "PYTHONPATH" or k.startswith(FORWARDED_PREFIXES)
    }


def import_ray() -> Any:
    """``ray``, or an ImportError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return ray


def open_session(address: str | None, result_dir: str, num_gpus: float) -> RaySession:
    """Connect, probe the shared storage on every node, record the nodes; see the module."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    launcher = RayLauncher(num_gpus, 1.0, forwarded_environment())
    session = RaySession(address, started_here, launcher)
    try:
        session.watch = GcsWatch(str(ray.get_runtime_context().gcs_address))
    except (AttributeError, ValueError) as exc:  # an older Ray: no watch, Ray's own limit
        log.warning("cannot watch the Ray cluster's GCS (%s)", exc)
    launcher.is_lost = lambda: session.watch is not None and session.watch.lost is not None
    try:
        resource_problems = missing_resources(ray.cluster_resources(), num_gpus, 1.0)
        if resource_problems:
            raise ExecutorConfigError(resource_problems)
        session.nodes = probe_nodes(ray, Path(result_dir))
    except BaseException:
        close_session(session)
        raise
    session.warnings = version_mismatches(session.nodes)
    for line in session.warnings:
        log.warning("Ray nodes run different versions: %s", line)
    return session


def missing_resources(cluster: dict[str, float], num_gpus: float, num_cpus: float) -> list[str]:
    """Why no actor could ever start on a cluster with ``cluster`` resources (empty: fine).

    >>> missing_resources({"CPU": 16.0}, 0.5, 1.0)[0][:60]
    'each actor asks for 0.5 GPU, but the Ray cluster has no GPU; '
    """
    problems = []
    if num_gpus > 0 and cluster.get("GPU", 0.0) < num_gpus:
        problems.append(
            f"each actor asks for {num_gpus:g} GPU, but the Ray cluster has "
            f"{cluster.get('GPU', 0.0):g} GPU; give the study gpus: cpu, or start the "
            "nodes with their GPUs (ray start --num-gpus ...)"
        )
    if cluster.get("CPU", 0.0) < num_cpus:
        problems.append(f"each actor asks for {num_cpus:g} CPU, but the Ray cluster has none")
    return problems


def close_session(session: RaySession) -> None:
    """Disconnect if this session connected (actors are already gone: the scheduler kills them)."""
    if session.started_here and session.health() is None:  # a lost GCS: shutdown would wait
        import ray

        ray.shutdown()


def probe_nodes(ray: Any, result_dir: Path) -> list[dict[str, Any]]:
    """Facts of every alive node after the storage round trip; raises SharedStorageError."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    directory = result_dir / PROBE_DIR / uuid.uuid4().hex[:12]
    directory.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    (directory / "driver").write_text(token, encoding="utf-8")
    probe = ray.remote(num_cpus=0, max_retries=0)(probe_storage)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = [
        probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(str(directory), token, n["NodeID"])
        for n in nodes
    ]
    problems, facts = [], []
    try:
        for node, ref in zip(nodes, refs, strict=True):
            where = f"node {node.get('NodeManagerAddress')} (Ray node id {node['NodeID'][:12]})"
            try:
                fact = ray.get(ref, timeout=PROBE_TIMEOUT)
            except Exception as exc:  # the task could not run there
                problems.append(f"{where}: the storage probe did not run: {str(exc)[:300]}")
                continue
            fact.pop("pid", None)  # the probe task's, of no interest
            fact.update(node_id=node["NodeID"], ip=node.get("NodeManagerAddress"))
            written = directory / node["NodeID"]
            error = fact.pop("storage_error")
            if error is None and not written.is_file():
                error = "it wrote its probe file, but the driver cannot see it"
            if error is not None:
                problems.append(
                    f"{where}, host {fact['host']}: cannot share result_dir {str(result_dir)!r} "
                    f"with the driver ({error}); result_dir must be on a filesystem every node "
                    "mounts at the same path (NFS, Lustre, ...)"
                )
            facts.append(fact)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        if directory.parent.is_dir() and not any(directory.parent.iterdir()):
            directory.parent.rmdir()
    if problems:
        raise SharedStorageError(problems)
    return facts
