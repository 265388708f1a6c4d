"""Running one cell inside a worker: config.json first, logger per cell, failures categorised.

Failures are categorised by exception type and by the phase they happened in, never by the
words of the message: a torch OutOfMemoryError is ``gpu_oom`` wherever it happens; any other
exception while the model loads is ``model_loading``; while the benchmark is built or loads
its data, ``dataset``; the rest ``other``.
"""

from __future__ import annotations

import gc
import inspect
import logging
import os
import socket
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparse_attention_hub import cell_store
from sparse_attention_hub.executor.config import (
    DATASET,
    DISK,
    GPU_OOM,
    MODEL_LOADING,
    OTHER,
    BenchmarkStub,
)
from sparse_attention_hub.executor.matrix import resolved_config
from sparse_attention_hub.executor.protocol import (
    RAY_NODE_VARIABLE,
    CellOutcome,
    CellTask,
    WorkerSettings,
    WorkerTerminated,
)
from sparse_attention_hub.executor.resources import (
    MemoryMonitor,
    has_predictions,
    positions_warning,
    record_resources,
)

if TYPE_CHECKING:
    from sparse_attention_hub.benchmarks.run_loop import ProgressCallback

log = logging.getLogger(__name__)

PHASE_SETUP = "setup"
PHASE_MODEL = "model_loading"
PHASE_DATASET = "dataset"
PHASE_RUN = "run"


def failure_message(exc: BaseException, category: str) -> str:
    """One line for the summary; a disk failure says what to do about it."""
    if category == DISK:
        return cell_store.disk_error_line(exc)
    return f"{type(exc).__name__}: {exc}"


def categorize_failure(exc: BaseException, phase: str) -> str:
    """The failure category of ``exc`` raised during ``phase``."""
    if cell_store.is_disk_error(exc):
        return DISK
    import torch

    oom_types: tuple[type[BaseException], ...] = tuple(
        t for t in (getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError) if t
    )
    if isinstance(exc, oom_types):
        return GPU_OOM
    if phase == PHASE_MODEL:
        return MODEL_LOADING
    if phase == PHASE_DATASET:
        return DATASET
    return OTHER


def _accepts(function: Any, name: str) -> bool:
    """Whether ``function`` takes a keyword argument ``name`` (or any keyword)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


class NoModelAdapter:
    """Stands in for a model when a benchmark declares ``requires_model = False`` (the fault
    injection benchmark): scheduling tests then need no model load.
    """

    def __init__(self, model_name: str, sparse_attention_config: Any = None) -> None:
        self.model_name = model_name
        self.sparse_attention_config = sparse_attention_config

    def set_sparse_attention_config(self, config: Any) -> None:
        self.sparse_attention_config = config

    def process_request(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("this benchmark declared requires_model=False but sent a request")

    def describe(self) -> dict[str, Any]:
        return {"adapter": "NoModelAdapter", "model_name": self.model_name}


class CellRunner:
    """Runs cells one after another, keeping the last loaded model for the next cell."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.adapter: Any = None
        self.model_key: tuple[str, str] | None = None
        self.phase = PHASE_SETUP
        self.on_progress: ProgressCallback | None = None

    def run(self, task: CellTask, on_progress: ProgressCallback | None = None) -> CellOutcome:
        """Run one cell; never raises except WorkerTerminated (after recording it).

        ``on_progress(done, total, generated_tokens)`` is passed to the benchmark's run loop.
        """
        self.on_progress = on_progress
        stub = task.stub
        start = time.perf_counter()
        self.phase = PHASE_SETUP
        from sparse_attention_hub.metric_logging import MicroMetricLogger

        metric_logger = MicroMetricLogger()
        outcome = self._attempt(task, metric_logger, start)
        try:
            metric_logger.flush()
        except Exception as exc:
            if not cell_store.is_disk_error(exc):
                log.exception("flushing the metric logger failed for %s", stub.cell_id)
            else:  # events of a request whose predictions were not saved: a resume redoes it
                metric_logger.log_queue.clear()
        cell_store.drop_empty_files(stub.result_dir)
        if not outcome.success:  # outside the except block: the traceback (and the tensors
            self._after_failure(outcome.error_type or OTHER)  # it holds) is gone by now
        return outcome

    def _attempt(self, task: CellTask, metric_logger: Any, start: float) -> CellOutcome:
        stub = task.stub
        result_dir = Path(stub.result_dir)
        model_loaded = False
        try:
            self._prepare_dir(stub, task)
            metrics, model_loaded = self._execute(stub, metric_logger)
            seconds = time.perf_counter() - start
            cell_store.update_config(
                result_dir, execution=self._execution_record("complete", seconds, task)
            )
            return CellOutcome(
                stub.cell_id, True, seconds, metrics=metrics, model_loaded=model_loaded
            )
        except WorkerTerminated as exc:
            self._record_failure(result_dir, task, exc, "interrupted", time.perf_counter() - start)
            raise
        except Exception as exc:
            category = categorize_failure(exc, self.phase)
            seconds = time.perf_counter() - start
            self._record_failure(result_dir, task, exc, category, seconds)
            return CellOutcome(
                stub.cell_id,
                False,
                seconds,
                error_type=category,
                error_message=failure_message(exc, category),
                model_loaded=model_loaded,
            )

    def _prepare_dir(self, stub: BenchmarkStub, task: CellTask) -> None:
        result_dir = Path(stub.result_dir)
        result_dir.mkdir(parents=True, exist_ok=True)
        cell_store.clear_error(result_dir)
        cell_store.update_config(
            result_dir,
            fingerprint=stub.fingerprint,
            resolved_config=resolved_config(stub),
            execution=self._execution_record("running", 0.0, task),
        )

    def _execution_record(
        self, status: str, seconds: float, task: CellTask, **extra: Any
    ) -> dict[str, Any]:
        return {
            "status": status,
            "seconds": round(seconds, 3),
            "attempt": task.attempt,
            "worker": self.settings.worker_index,
            "device": "cpu" if self.settings.gpu_id is None else f"cuda:{self.settings.gpu_id}",
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "host": socket.gethostname(),
            **({"ray_node_id": node} if (node := os.environ.get(RAY_NODE_VARIABLE)) else {}),
            **extra,
        }

    def _execute(self, stub: BenchmarkStub, metric_logger: Any) -> tuple[dict[str, Any], bool]:
        import sparse_attention_hub.sparse_attention  # noqa: F401  (registers its metrics)
        from sparse_attention_hub.benchmarks import create_benchmark_instance

        self.phase = PHASE_DATASET
        benchmark = create_benchmark_instance(
            stub.benchmark_source or stub.benchmark_name,
            subsets=None if stub.subset is None else [stub.subset],
            **stub.benchmark_kwargs,
        )
        # after the imports above, so every metric they register can be enabled
        metric_logger.configure_logging(
            stub.result_dir,
            enabled_metrics=self.settings.enabled_metrics,
            max_records=self.settings.max_records,
            sampling_factor=self.settings.sampling_factor,
        )
        self.phase = PHASE_MODEL
        loaded = self._ensure_adapter(stub, getattr(benchmark, "requires_model", True))
        self.phase = PHASE_RUN
        extra: dict[str, Any] = {}
        if self.on_progress is not None and _accepts(benchmark.run_benchmark, "on_progress"):
            extra["on_progress"] = self.on_progress  # a plugin's own run_benchmark may not
        resumed = has_predictions(stub.result_dir)
        with MemoryMonitor(gpu=self.settings.gpu_id is not None) as monitor:
            metrics = benchmark.run_benchmark(
                self.adapter,
                stub.result_dir,
                generation_kwargs=dict(stub.generation_kwargs),
                request_kwargs=dict(stub.request_kwargs),
                on_phase=self._set_phase,
                **extra,
            )
        try:  # the cell is complete already: a missing resources.json only empties columns
            record_resources(stub.result_dir, monitor.figures(), resumed)
        except (OSError, ValueError) as exc:
            log.warning("%s: resource figures not recorded (%s)", stub.cell_id, exc)
        self._warn_positions(stub)
        return dict(metrics or {}), loaded

    def _warn_positions(self, stub: BenchmarkStub) -> None:
        """Warn (once per cell) when its requests were longer than the model's positions."""
        config = getattr(getattr(self.adapter, "model", None), "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        if isinstance(limit, bool) or not isinstance(limit, int):
            return
        try:
            warning = positions_warning(stub.result_dir, limit)
        except (OSError, ValueError):
            return
        if warning is not None:
            log.warning("%s: %s", stub.cell_id, warning)

    def _set_phase(self, phase: str) -> None:
        """The run loop's phase report (``dataset`` while it loads rows, then ``run``)."""
        self.phase = phase

    def _ensure_adapter(self, stub: BenchmarkStub, requires_model: bool) -> bool:
        """Make self.adapter serve the stub; True when a model was loaded for it."""
        if not requires_model:
            if self.model_key is None:
                self.adapter = NoModelAdapter(stub.model_name, stub.sparse_attention_config)
            else:
                self.adapter.set_sparse_attention_config(stub.sparse_attention_config)
            return False
        if self.model_key == stub.model_key and self.adapter is not None:
            self.adapter.set_sparse_attention_config(stub.sparse_attention_config)
            return False
        self._drop_adapter()
        import transformers

        from sparse_attention_hub.adapters import ModelAdapterHF

        transformers.utils.logging.disable_progress_bar()  # bars would garble the parent's

        adapter_cfg = stub.adapter_config
        model_kwargs = dict(adapter_cfg.model_kwargs or {})
        device = (
            None
            if "device_map" in model_kwargs
            else ("cpu" if self.settings.gpu_id is None else "cuda:0")
        )
        self.adapter = ModelAdapterHF(
            stub.model_name,
            sparse_attention_config=stub.sparse_attention_config,
            model_kwargs=model_kwargs,
            tokenizer_kwargs=dict(adapter_cfg.tokenizer_kwargs or {}),
            device=device,
        )
        self.model_key = stub.model_key
        return True

    def _drop_adapter(self) -> None:
        self.adapter = None
        self.model_key = None
        gc.collect()
        self._empty_cuda_cache()

    def _empty_cuda_cache(self) -> None:
        if self.settings.gpu_id is None:
            return
        import torch

        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    def _after_failure(self, category: str) -> None:
        if category == MODEL_LOADING:
            self._drop_adapter()
        elif category == GPU_OOM:
            gc.collect()
            self._empty_cuda_cache()

    def _record_failure(
        self, result_dir: Path, task: CellTask, exc: BaseException, category: str, seconds: float
    ) -> None:
        try:
            result_dir.mkdir(parents=True, exist_ok=True)
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            cell_store.write_error(
                result_dir,
                f"category: {category}\nphase: {self.phase}\nattempt: {task.attempt}\n\n{text}",
            )
            cell_store.update_config(  # the config too: a stop during setup came before it
                result_dir,
                fingerprint=task.stub.fingerprint,
                resolved_config=resolved_config(task.stub),
                execution=self._execution_record(
                    "failed" if category != "interrupted" else "interrupted",
                    seconds,
                    task,
                    category=category,
                    phase=self.phase,
                ),
            )
        except Exception as record_exc:
            # a full disk: the outcome carries the reason to the parent, which reports it once
            if not cell_store.is_disk_error(record_exc):
                log.exception("could not record the failure of %s", task.stub.cell_id)

    def close(self) -> None:
        """Release the model (the process is about to exit)."""
        self.adapter = None
        self.model_key = None
