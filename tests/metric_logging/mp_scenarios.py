"""Process scenarios for test_processes.py, run as a script: python mp_scenarios.py MODE DIR.

Each scenario logs events and never calls flush() itself, so whatever reaches disk got there
through the logger's exit hooks. Every event's value is "<who>:<n>" so tests can count exactly.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sparse_attention_hub.metric_logging import MicroMetricLogger

METRIC = "scenario_metric"
MicroMetricLogger.register_metric(METRIC, str)


def log_n(who: str, n: int) -> None:
    logger = MicroMetricLogger()
    for i in range(n):
        logger.log(METRIC, f"{who}:{i}", {"pid": os.getpid()})


def child_configures_and_logs(log_dir: str, who: str, n: int) -> int:
    MicroMetricLogger().configure_logging(log_dir, [METRIC])
    log_n(who, n)
    return os.getpid()


def child_logs(who: str, n: int) -> int:
    log_n(who, n)
    return os.getpid()


def run_process(ctx: mp.context.BaseContext, target, args) -> None:  # type: ignore[no-untyped-def]
    process = ctx.Process(target=target, args=args)  # type: ignore[attr-defined]
    process.start()
    process.join(60)
    if process.exitcode != 0:
        raise SystemExit(f"child exited with {process.exitcode}")


def scenario_exit(base: Path) -> None:
    MicroMetricLogger(log_path=base, enabled_metrics=[METRIC], flush_every=10**6)
    log_n("main", 5)


def scenario_spawn(base: Path) -> None:
    ctx = mp.get_context("spawn")
    run_process(ctx, child_configures_and_logs, (str(base / "process"), "child", 4))
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        jobs = [
            pool.submit(child_configures_and_logs, str(base / f"pool{k}"), f"pool{k}", 3)
            for k in range(3)
        ]
        for job in jobs:
            job.result()


def scenario_fork(base: Path) -> None:
    MicroMetricLogger(log_path=base, enabled_metrics=[METRIC], flush_every=10**6)
    log_n("parent_before", 3)  # pending in the parent while it forks
    ctx = mp.get_context("fork")
    run_process(ctx, child_logs, ("child", 2))
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        for job in [pool.submit(child_logs, f"pool{k}", 2) for k in range(3)]:
            job.result()
    run_process(ctx, child_configures_and_logs, (str(base / "cell"), "cell_child", 2))
    log_n("parent_after", 1)


def main() -> None:
    mode, base = sys.argv[1], Path(sys.argv[2])
    {"exit": scenario_exit, "spawn": scenario_spawn, "fork": scenario_fork}[mode](base)


if __name__ == "__main__":
    main()
