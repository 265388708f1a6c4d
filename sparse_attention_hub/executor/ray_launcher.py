"""Ray actors seen by the scheduler as worker processes (the Ray backend's launcher).

:class:`RayLauncher` gives the scheduler what :func:`.local_launcher.launch_local` gives it:
``(process, connection)``. The "process" is an :class:`ActorProcess`: a :class:`.ray_actor.CellActor`
on some node of the cluster plus a driver thread (the bridge) that

- waits for the actor's ``start`` and sends ``("ready", pid)`` (or ``("startup_failed", ...)``);
- forwards each ``("run", task)`` from the scheduler to ``actor.run``, drains the messages the
  cell posts while it runs ("started", "progress"), then sends ``("finished", outcome)``;
- on ``("stop",)``, closes the actor and kills it.

The bridge speaks to the scheduler over a local pipe, and ``sentinel`` is the read end of a
second pipe that the bridge closes when the actor is gone: the scheduler's single
``multiprocessing.connection.wait`` sees a dead actor as it sees a dead process, and retries
its cell on a replacement. ``terminate``/``kill`` are ``ray.kill`` (a timed-out cell, Ctrl-C);
``exit_reason`` is why the actor ended, for the cell's error.txt.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from typing import Any

from sparse_attention_hub.executor.protocol import WorkerSettings
from sparse_attention_hub.executor.records import record_stopped_cell

#: seconds between two drains of a running cell's messages
DRAIN_INTERVAL = 0.2
#: seconds the bridge waits for an idle actor to release its model before killing it
CLOSE_GRACE = 5.0


class ActorProcess:
    """One actor and its bridge thread, with the part of ``multiprocessing.Process`` the
    scheduler uses. ``facts`` holds the actor's node facts once it is ready."""

    def __init__(
        self, actor: Any, settings: WorkerSettings, is_lost: Callable[[], bool] = lambda: False
    ) -> None:
        self.actor = actor
        self.settings = settings
        self.is_lost = is_lost  # the cluster is gone: ray.kill would only wait for it
        self.facts: dict[str, Any] | None = None
        self.exit_reason: str | None = None
        self.exitcode: int | None = None
        self._killed: str | None = None
        self._task: Any = None  # the running CellTask
        self._task_started = 0.0
        self.sentinel, self._death = mp.Pipe(duplex=False)
        self.conn, self._bridge_end = mp.Pipe(duplex=True)
        self._thread = threading.Thread(
            target=self._serve, name=f"sah-ray-bridge-{settings.worker_index}", daemon=True
        )
        self._thread.start()

    # -- the scheduler's view ------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return None if self.facts is None else int(self.facts["pid"])

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def terminate(self) -> None:
        """Kill the actor now (Ray has no gentler stop for a busy actor)."""
        import ray

        self._killed = self._killed or "killed by the driver"
        if self.is_lost():
            return
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)

    kill = terminate

    # -- the bridge ----------------------------------------------------------------------
    def _serve(self) -> None:
        import ray

        try:
            self._start(ray)
            while True:
                if not self._bridge_end.poll(DRAIN_INTERVAL):
                    if self._killed:
                        raise RuntimeError(self._killed)
                    continue
                message = self._bridge_end.recv()
                if message[0] == "stop":
                    with contextlib.suppress(Exception):
                        ray.get(self.actor.close.remote(), timeout=CLOSE_GRACE)
                    self.exit_reason = "stopped"
                    return
                self._run(ray, message[1])
        except (EOFError, OSError):  # the scheduler closed its end: it is done with us
            self.exit_reason = self.exit_reason or self._killed or "its driver pipe closed"
        except Exception as exc:  # the actor died (node lost, OOM kill, ray.kill)
            self.exit_reason = self._killed or _death_text(exc)
            if self._killed and self._task is not None:  # as a local worker does on SIGTERM
                seconds = time.monotonic() - self._task_started
                why = f"stopped: its Ray actor was {self._killed}"
                record_stopped_cell(self._task.stub, self._task.attempt, seconds, why)
        finally:
            self.exitcode = 0 if self.exit_reason == "stopped" else -1
            if not self.is_lost():
                with contextlib.suppress(Exception):
                    ray.kill(self.actor, no_restart=True)
            self._death.close()  # the scheduler's wait() now sees this worker as gone

    def _start(self, ray: Any) -> None:
        ref = self.actor.start.remote()
        while True:  # an actor waiting for free resources is not an error: keep waiting
            done, _ = ray.wait([ref], timeout=0.5)
            if done:
                break
            if self._killed:
                raise RuntimeError(self._killed)
        try:
            self.facts = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # start-up raised: tell why, then leave
            self._bridge_end.send(("startup_failed", str(exc)))
            raise
        self._bridge_end.send(("ready", self.pid))

    def _run(self, ray: Any, task: Any) -> None:
        ref = self.actor.run.remote(task)
        self._task, self._task_started = task, time.monotonic()
        while True:
            done, _ = ray.wait([ref], timeout=DRAIN_INTERVAL)
            for message in ray.get(self.actor.drain.remote()):
                self._bridge_end.send(message)
            if done:
                outcome = ray.get(ref)
                self._task = None
                self._bridge_end.send(("finished", outcome))
                return


def _death_text(exc: BaseException) -> str:
    """The first line of Ray's explanation of an actor's death."""
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)
    return f"its Ray actor died ({type(exc).__name__}: {first.strip()[:300]})"


class RayLauncher:
    """``launcher(settings) -> (ActorProcess, connection)`` for the scheduler.

    Args:
        num_gpus: GPUs (or a share of one) per actor; 0 for CPU actors.
        num_cpus: CPUs per actor.
        environment: variables every actor sets before it imports anything. They travel as an
            argument, not as a Ray runtime_env, which would start a fresh worker process per
            actor instead of using the ones Ray keeps ready.
    """

    def __init__(
        self, num_gpus: float, num_cpus: float = 1.0, environment: dict[str, str] | None = None
    ) -> None:
        self.num_gpus = num_gpus
        self.num_cpus = num_cpus
        self.environment = dict(environment or {})
        self.processes: list[ActorProcess] = []
        self._actor_class: Any = None
        self.is_lost: Callable[[], bool] = lambda: False  # set by the session's GCS watch

    def __call__(self, settings: WorkerSettings) -> tuple[ActorProcess, Any]:
        import ray

        from sparse_attention_hub.executor.ray_actor import CellActor

        if self._actor_class is None:
            self._actor_class = ray.remote(CellActor)
        options: dict[str, Any] = {
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "max_restarts": 0,  # the scheduler replaces a dead actor and retries its cell
            "max_concurrency": 2,  # run and drain at once
        }
        actor = self._actor_class.options(**options).remote(settings, self.environment)
        process = ActorProcess(actor, settings, self.is_lost)
        self.processes.append(process)
        return process, process.conn

    def nodes_used(self) -> list[dict[str, Any]]:
        """Facts of every actor that became ready (host, pid, versions), in start order."""
        return [p.facts for p in self.processes if p.facts is not None]


def wait_for_bridges(processes: list[ActorProcess], seconds: float) -> None:
    """Join every bridge thread, ``seconds`` in all (a killed actor's bridge ends at once)."""
    deadline = time.monotonic() + seconds
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
