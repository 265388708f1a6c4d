"""Where a matrix's workers run: the local backend (spawned processes) or Ray (actors).

Both backends run the same scheduler (:mod:`.scheduling`) with the same messages; only the
launcher differs, and the settings each worker gets:

- **local**: ``max_concurrent_runs`` processes on this machine, spread over ``gpu_ids``
  (several share a GPU when there are more runs than GPUs); CPU threads split evenly.
- **ray**: ``max_concurrent_runs`` actors anywhere on the cluster. With GPUs in the study,
  each actor asks Ray for ``len(gpu_ids) / max_concurrent_runs`` of a GPU (at most 1: the same
  sharing as the local backend, wherever Ray places it); without, each is a 1-CPU actor.
  Ray sets every actor's CUDA_VISIBLE_DEVICES, so its GPU is ``cuda:0``.

``open_backend`` is entered once per matrix while the results directory is locked. The Ray
backend also holds the cross-machine lease (:mod:`.lease`), connects to the cluster and
checks that every node shares the results directory (:mod:`.ray_session`); both happen only
when some cell is left to run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.executor.lease import RunLease, check_lease_free
from sparse_attention_hub.executor.local_launcher import Launcher, launch_local
from sparse_attention_hub.executor.protocol import WorkerSettings

BACKENDS = ("local", "ray")


@dataclass
class BackendSession:
    """A launcher for the scheduler and the ``backend`` entry of the summary (a callable: a
    Ray session learns its actors' nodes while the matrix runs)."""

    launcher: Launcher
    summary: Callable[[], dict[str, Any]] = field(default=lambda: {"name": "local"})
    health: Callable[[], str | None] = field(default=lambda: None)


def ray_gpu_share(gpu_ids: list[int], max_concurrent_runs: int) -> float:
    """GPUs per Ray actor: the local backend's sharing of ``gpu_ids`` by the runs.

    >>> ray_gpu_share([0, 1], 4), ray_gpu_share([0, 1, 2, 3], 2), ray_gpu_share([], 2)
    (0.5, 1.0, 0.0)
    """
    if not gpu_ids:
        return 0.0
    return min(1.0, len(gpu_ids) / max_concurrent_runs)


def worker_settings(
    backend: str, count: int, gpu_ids: list[int], **metrics: Any
) -> list[WorkerSettings]:
    """One WorkerSettings per worker (``metrics``: enabled_metrics, max_records,
    sampling_factor); see the module docstring for how each backend places them."""
    if backend == "ray":  # Ray sets each actor's CUDA_VISIBLE_DEVICES and OMP_NUM_THREADS
        gpus: list[int | None] = [0 if gpu_ids else None] * count
        threads = None
    else:
        gpus = [gpu_ids[i % len(gpu_ids)] if gpu_ids else None for i in range(count)]
        threads = None if gpu_ids else max(1, (os.cpu_count() or 1) // count)
    return [
        WorkerSettings(worker_index=i, gpu_id=gpus[i], num_threads=threads, **metrics)
        for i in range(count)
    ]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity where the system tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def crowding_warning(requested: int, workers: int, gpu_ids: list[int], cores: int) -> str | None:
    """Why ``workers`` local worker processes (``requested`` was max_concurrent_runs) will
    crowd this machine, or None: more than its CPU cores (every worker loads its own model, so
    memory adds up, and CPU workers share the cores).

    >>> "24 worker processes (one a cell) on 2 CPU cores" in crowding_warning(64, 24, [], 2)
    True
    >>> crowding_warning(4, 4, [0, 1], 8) is None
    True
    """
    if workers <= cores:
        return None
    where = f"{len(gpu_ids)} GPU(s) and " if gpu_ids else ""
    return (
        f"max_concurrent_runs={requested}: {workers} worker processes (one a cell) on {where}"
        f"{cores} CPU cores; each loads its own model and they share the cores: "
        f"{min(cores, len(gpu_ids)) if gpu_ids else cores} or fewer would run faster"
    )


@contextlib.contextmanager
def open_backend(
    backend: str,
    base_dir: str,
    needed: bool,
    ray_address: str | None = None,
    gpu_share: float = 0.0,
) -> Iterator[BackendSession]:
    """The session of ``backend`` for one matrix; ``needed``: some cell is left to run."""
    if backend != "ray":
        check_lease_free(base_dir)  # a Ray run of another machine may hold the directory
        yield BackendSession(launch_local)
        return
    if not needed:
        yield BackendSession(launch_local, lambda: {"name": "ray", "address": ray_address})
        return
    from sparse_attention_hub.executor.ray_session import close_session, open_session

    with RunLease(base_dir):
        session = open_session(ray_address, base_dir, gpu_share)
        try:
            yield BackendSession(session.launcher, session.summary, session.health)
        finally:
            close_session(session)
