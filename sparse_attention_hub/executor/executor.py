"""BenchmarkExecutor: the whole matrix on every GPU it is given, resumable and crash-proof.

    executor = BenchmarkExecutor(gpu_ids=[0, 1], max_concurrent_runs=4, base_result_dir="runs")
    results = executor.run_benchmark_matrix(
        model_names=["meta-llama/Llama-3.1-8B-Instruct"],
        sparse_attention_configs=[("dense", None), ("streaming", streaming_config)],
        benchmark_configs=[BenchmarkConfig("longbench", ["narrativeqa"])],
        adapter_config=AdapterConfig(model_kwargs={"torch_dtype": "bfloat16"}),
        generation_kwargs={"max_new_tokens": 64},
    )

Flow: validate everything (one error listing every problem) -> expand the matrix into stubs ->
preflight: every model and dataset resolved once in the parent (:mod:`.preflight`; one
:class:`PreflightError` listing every missing item, before any worker starts) ->
skip complete cells, move stale ones into ``stale/<timestamp>/`` -> run the rest on persistent
worker processes (:mod:`.scheduling`, :mod:`.worker`) -> write ``execution_summary.json`` and
``results.csv`` at the base directory. Ctrl-C or SIGTERM stops the workers, writes the
summary and raises :class:`ExecutionInterrupted` (a KeyboardInterrupt subclass: uncaught, it
ends the process with status 1, not the 130 of a plain Ctrl-C; ``sah run`` returns 130);
a rerun resumes. If no worker process can start (a broken
environment), the cells are recorded as failed with the reason, the summary is written, and
:class:`WorkerStartupError` (a RuntimeError) is raised.

Workers are started with the spawn method, which imports the caller's main module again: a
script must call the executor under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store import (
    COMPLETE,
    CORRUPT,
    DEFAULT_REQUIRED_FILES,
    PENDING,
    STALE,
    CellState,
    cell_status,
)
from sparse_attention_hub.executor.artefact_check import check_artefacts
from sparse_attention_hub.executor.backend import (
    BackendSession,
    crowding_warning,
    open_backend,
    ray_gpu_share,
    usable_cores,
    worker_settings,
)
from sparse_attention_hub.executor.config import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkStub,
    ClusterLostError,
    ExecutionInterrupted,
    ExecutionResults,
    WorkerStartupError,
)
from sparse_attention_hub.executor.local_launcher import launch_local
from sparse_attention_hub.executor.lock import BaseDirLock
from sparse_attention_hub.executor.model_limits import check_model_limits
from sparse_attention_hub.executor.planning import (
    checked_stubs,
    drop_interrupted_writes,
    move_stale_cells,
)
from sparse_attention_hub.executor.preflight import PreflightReport, preflight, preflight_timeout
from sparse_attention_hub.executor.progress import DEFAULT_PROGRESS_INTERVAL, ProgressReporter
from sparse_attention_hub.executor.protocol import WorkerSettings
from sparse_attention_hub.executor.scheduler_state import SchedulerReport
from sparse_attention_hub.executor.scheduling import Scheduler
from sparse_attention_hub.executor.signals import StopOnSignals
from sparse_attention_hub.executor.summary import summarise_run, write_tables
from sparse_attention_hub.executor.validation import (
    ExecutorConfigError,
    backend_problems,
    executor_settings_problems,
    run_option_problems,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 12 * 3600.0


class BenchmarkExecutor:
    """Runs a models x sparse configs x benchmarks x subsets matrix; see the module docstring.

    Args:
        gpu_ids: GPUs to use; None or [] runs on CPU.
        max_concurrent_runs: cells running at once (worker processes), spread evenly over
            gpu_ids; several share a GPU when it exceeds len(gpu_ids).
        base_result_dir: root of the cell directories.
        enable_resumability: skip complete cells with a matching fingerprint and resume
            partial ones. When False every cell runs again from scratch (earlier files,
            partial ones included, move to ``stale/``).
        result_file_validation: a cell is complete only if required_result_files exist too.
        required_result_files: defaults to metrics.json and raw_results.csv.
        timeout_per_benchmark: seconds a cell may run (model load included) before its worker
            is killed and replaced; None for no limit.
        verbose: show a progress bar and info messages; False shows only warnings.
        max_records, sampling_factor, enabled_metrics: MicroMetricLogger settings for each
            cell (by default no metric is enabled).
        max_retries: how often a cell whose worker died (killed, segfault, OOM killer) is run
            again in the same run. Exceptions and timeouts are not retried (an exception is
            usually deterministic; a hang would burn another timeout); rerunning the matrix
            retries every failed cell.
        preflight: before any worker starts, resolve every model and dataset once (hub with
            a short timeout, local cache, local files); a missing one raises PreflightError.
        progress_interval: seconds between the progress log lines of each running cell when
            stderr is not a terminal (on a terminal the bar shows it live).
        backend: "local" (worker processes on this machine) or "ray" (Ray actors on a
            cluster; see :mod:`.backend`). Cells, statuses and tables are the same.
        ray_address: the Ray backend's cluster ("auto", "host:port", "local" or None for
            Ray's own rule; see :mod:`.ray_session`).
    """

    def __init__(
        self,
        gpu_ids: list[int] | None,
        max_concurrent_runs: int,
        base_result_dir: str = "./benchmark_results",
        enable_resumability: bool = True,
        result_file_validation: bool = True,
        required_result_files: list[str] | None = None,
        timeout_per_benchmark: float | None = DEFAULT_TIMEOUT_SECONDS,
        verbose: bool = True,
        max_records: int | None = None,
        sampling_factor: float = 1.0,
        enabled_metrics: str | list[str] | None = None,
        max_retries: int = 1,
        preflight: bool = True,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        backend: str = "local",
        ray_address: str | None = None,
    ) -> None:
        problems = executor_settings_problems(
            gpu_ids,
            max_concurrent_runs,
            timeout_per_benchmark,
            max_retries,
            max_records,
            sampling_factor,
        )
        problems += run_option_problems(preflight, progress_interval)
        problems += backend_problems(backend, ray_address)
        if problems:
            raise ExecutorConfigError(problems)
        self.gpu_ids: list[int] = list(gpu_ids or [])
        self.max_concurrent_runs = max_concurrent_runs
        self.base_result_dir = str(base_result_dir)
        self.enable_resumability = enable_resumability
        self.result_file_validation = result_file_validation
        self.required_result_files = tuple(required_result_files or DEFAULT_REQUIRED_FILES)
        self.timeout_per_benchmark = timeout_per_benchmark
        self.verbose = verbose
        self.max_records = max_records
        self.sampling_factor = float(sampling_factor)
        self.enabled_metrics = enabled_metrics
        self.max_retries = max_retries
        self.preflight = preflight
        self.progress_interval = float(progress_interval)
        self.backend = backend
        self.ray_address = ray_address
        self._stop_signal: str | None = None
        self._startup_error: str | None = None
        self._backend_error: str | None = None
        self._workers: list[WorkerSettings] = []
        self._session: BackendSession = BackendSession(launch_local)

    # -- planning ----------------------------------------------------------------------------
    def _state(self, stub: BenchmarkStub) -> CellState:
        required = self.required_result_files if self.result_file_validation else ()
        state = cell_status(stub.result_dir, stub.fingerprint, required)
        if state.status not in (PENDING, STALE) and not self.enable_resumability:
            # a fresh run: nothing of the earlier one is reused, partial or not
            return CellState(STALE, "enable_resumability=False: the cell runs from scratch")
        return state

    def plan_matrix(
        self,
        model_names: list[str],
        sparse_attention_configs: list[tuple[str, Any]],
        benchmark_configs: list[BenchmarkConfig],
        adapter_config: AdapterConfig,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
    ) -> list[tuple[BenchmarkStub, str]]:
        """Every cell with its status (a word of ``cell_store.STATUSES``); runs nothing and
        writes nothing. Raises ExecutorConfigError like run_benchmark_matrix.
        """
        stubs = checked_stubs(
            self.base_result_dir, self.enabled_metrics, model_names, sparse_attention_configs,
            benchmark_configs, adapter_config, generation_kwargs, request_kwargs,
            on_gpu=bool(self.gpu_ids),
        )  # fmt: skip
        return [(stub, self._state(stub).status) for stub in stubs]

    def preflight_matrix(
        self,
        model_names: list[str],
        benchmark_configs: list[BenchmarkConfig],
        adapter_config: AdapterConfig,
        skip_models: dict[str, str] | None = None,
        stubs: list[BenchmarkStub] | None = None,
    ) -> PreflightReport:
        """Resolve every model and dataset of the matrix once (see :mod:`.preflight`); runs
        nothing, raises nothing for a missing item (the report lists it). With the planned
        ``stubs``, also check their settings against each model's config
        (:mod:`.model_limits`). Call it after plan_matrix, which validates the arguments."""
        report = preflight(model_names, benchmark_configs, adapter_config, skip_models=skip_models)
        if stubs:
            check_model_limits(report, stubs, preflight_timeout(), skip_models)
        return report

    # -- running -----------------------------------------------------------------------------
    def run_benchmark_matrix(
        self,
        model_names: list[str],
        sparse_attention_configs: list[tuple[str, Any]],
        benchmark_configs: list[BenchmarkConfig],
        adapter_config: AdapterConfig,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
    ) -> ExecutionResults:
        """Run every cell of the matrix that is not complete; see the module docstring."""
        started_at, start = time.time(), time.perf_counter()
        plan = self.plan_matrix(
            model_names, sparse_attention_configs, benchmark_configs, adapter_config,
            generation_kwargs, request_kwargs,
        )  # fmt: skip
        check_artefacts([stub for stub, status in plan if status != COMPLETE]).raise_if_problems()
        if self.preflight and any(status != COMPLETE for _, status in plan):
            stubs = [stub for stub, _ in plan]
            report = self.preflight_matrix(
                model_names, benchmark_configs, adapter_config, stubs=stubs
            )
            report.raise_if_problems()
            for note in report.notes:
                log.warning("preflight: %s", note)
            self._info(
                "preflight: %d models and datasets found in %.1f s",
                len(report.lines),
                report.seconds,
            )
        Path(self.base_result_dir).mkdir(parents=True, exist_ok=True)
        with (
            BaseDirLock(self.base_result_dir),
            open_backend(
                self.backend,
                self.base_result_dir,
                needed=any(status != COMPLETE for _, status in plan),
                ray_address=self.ray_address,
                gpu_share=ray_gpu_share(self.gpu_ids, self.max_concurrent_runs),
            ) as self._session,
        ):
            states = [(stub, self._state(stub)) for stub, _ in plan]  # now that we hold the dir
            results = self._run_plan(states, started_at, start)
        if results.interrupted:
            raise ExecutionInterrupted(results, self._stop_signal or "a stop request")
        if self._startup_error is not None:
            raise WorkerStartupError(results, self._startup_error)
        if self._backend_error is not None:
            unfinished = results.execution_summary["totals"]["not_run"]
            raise ClusterLostError(
                results,
                f"{self._backend_error}; {unfinished} cell(s) unfinished: start the cluster "
                "again and run the same command to resume",
            )
        return results

    def _run_plan(
        self, plan: list[tuple[BenchmarkStub, CellState]], started_at: float, start: float
    ) -> ExecutionResults:
        skipped = [stub for stub, state in plan if state.status == COMPLETE]
        drop_interrupted_writes([stub for stub, _ in plan])
        stale_moved, unmovable = move_stale_cells(plan)
        blocked = {task.stub.cell_id for task, _ in unmovable}
        to_run = [s for s, st in plan if st.status != COMPLETE and s.cell_id not in blocked]
        for stub, state in plan:
            if state.status == CORRUPT and state.resumable:
                log.warning("%s: %s; it is re-scored or resumed", stub.cell_id, state.reason)
        self._info(
            "%d cells: %d complete (skipped), %d to run", len(plan), len(skipped), len(to_run)
        )
        models = {stub.model_folder for stub, _ in plan}
        prefix = f"{models.pop()}/" if len(models) == 1 else ""
        progress = ProgressReporter(
            len(plan),
            len(skipped),
            self.verbose,
            strip_prefix=prefix,
            interval=self.progress_interval,
        )
        for _, outcome in unmovable:
            progress.on_event("finished", {}, outcome)
        report = SchedulerReport()
        self._stop_signal, self._workers = None, []  # an executor may run several matrices
        # the handlers stay until the summary is written: a second Ctrl-C cannot lose it
        with self._signal_handlers():
            try:
                if to_run:
                    report = self._schedule(to_run, progress)
            finally:
                progress.close()
            report.outcomes[:0] = unmovable
            return self._collect(plan, skipped, stale_moved, report, progress, started_at, start)

    def _worker_settings(self, num_cells: int) -> list[WorkerSettings]:
        count = max(1, min(self.max_concurrent_runs, num_cells))  # never more than the cells
        warning = crowding_warning(self.max_concurrent_runs, count, self.gpu_ids, usable_cores())
        if self.backend == "local" and warning is not None:
            log.warning("%s", warning)
        return worker_settings(
            self.backend,
            count,
            self.gpu_ids,
            enabled_metrics=self.enabled_metrics,
            max_records=self.max_records,
            sampling_factor=self.sampling_factor,
        )

    def _schedule(self, stubs: list[BenchmarkStub], progress: ProgressReporter) -> SchedulerReport:
        self._workers = self._worker_settings(len(stubs))
        scheduler = Scheduler(
            stubs,
            self._workers,
            timeout=self.timeout_per_benchmark,
            max_retries=self.max_retries,
            should_stop=lambda: self._stop_signal is not None,
            on_event=progress.on_event,
            on_progress=progress.on_progress,
            on_tick=progress.tick,
            required_files=self.required_result_files if self.result_file_validation else (),
            launcher=self._session.launcher,
            health=self._session.health,
        )
        return scheduler.run()

    def _signal_handlers(self) -> StopOnSignals:
        return StopOnSignals(self.request_stop)

    def _collect(
        self,
        plan: list[tuple[BenchmarkStub, CellState]],
        skipped: list[BenchmarkStub],
        stale_moved: list[str],
        report: SchedulerReport,
        progress: ProgressReporter,
        started_at: float,
        start: float,
    ) -> ExecutionResults:
        self._startup_error = report.startup_error
        self._backend_error = report.backend_error
        wall = time.perf_counter() - start
        results, failures, summary = summarise_run(
            plan,
            skipped,
            stale_moved,
            report,
            started_at=started_at,
            wall_seconds=wall,
            devices=[f"cuda:{g}" for g in self.gpu_ids] or ["cpu"],
            num_workers=len(self._workers),
            interrupted=self._stop_signal,
            backend=self._session.summary(),
        )
        disk_error = report.disk_error or write_tables(self.base_result_dir, summary)
        self._info(
            "done: %d complete, %d failed, %d skipped, %d model loads in %.1fs",
            len(results), len(failures), len(skipped), report.model_loads, wall,
        )  # fmt: skip
        return ExecutionResults(
            execution_summary=summary,
            individual_results=results,
            failed_executions=failures,
            execution_time=wall,
            progress=progress.progress,
            skipped=skipped,
            stale_moved=stale_moved,
            model_loads=report.model_loads,
            interrupted=self._stop_signal is not None,
            disk_error=disk_error,
        )

    def _info(self, message: str, *args: Any) -> None:
        if self.verbose:
            log.info(message, *args)

    def request_stop(self, reason: str = "request_stop") -> None:
        """Ask a running matrix to stop (what SIGINT/SIGTERM do); safe from any thread."""
        if self._stop_signal is None:
            log.warning("%s: stopping the workers and writing the summary", reason)
            self._stop_signal = reason
