"""Start a worker as a spawned process on this machine (the local backend).

A launcher turns a worker's settings into ``(process, connection)``: the scheduler waits on
the connection and on ``process.sentinel``, and stops the worker with ``terminate``/``kill``.
:mod:`.ray_launcher` gives the same pair for a Ray actor.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from typing import Any

from sparse_attention_hub.executor.protocol import WorkerSettings
from sparse_attention_hub.executor.worker import worker_main

#: settings -> (process, the parent's end of a duplex pipe)
Launcher = Callable[[WorkerSettings], tuple[Any, Any]]


def launch_local(settings: WorkerSettings) -> tuple[Any, Any]:
    """A spawned worker process that sees only its GPU (CUDA_VISIBLE_DEVICES), and its pipe."""
    context = mp.get_context("spawn")
    parent_conn, child_conn = context.Pipe(duplex=True)
    visible = settings.cuda_visible_devices
    process = context.Process(
        target=worker_main,
        args=(child_conn, settings, os.getpid(), visible),
        name=f"sah-worker-{settings.worker_index}",
        daemon=True,
    )
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # spawn starts the child with the parent's environment
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    try:
        process.start()
    finally:
        if visible is not None:
            if saved is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = saved
    child_conn.close()
    return process, parent_conn
