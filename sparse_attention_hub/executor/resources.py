"""Resource figures of one cell: seconds of context prefill and of question + decode,
generated tokens per second, peak memory and the number of requests.

What is measured, and how:

- **Time** comes from the predictions log: each row's record carries the adapter's
  ``context_seconds`` (the dense context prefill, counted on a request's first question),
  ``question_seconds`` and ``decode_seconds``. ``context_prefill_seconds`` sums the first,
  ``question_decode_seconds`` the other two; ``tokens_per_second`` is the generated tokens
  over ``question_decode_seconds`` (the question pass yields the first token). A resumed cell's
  log holds every request, so these figures cover the whole cell, earlier runs included. An
  adapter that reports no timings (a plugin's) leaves them empty.
- **Peak memory** is measured around the run that completes the cell (:class:`MemoryMonitor`):
  on a GPU, ``torch.cuda.max_memory_allocated`` after ``torch.cuda.reset_peak_memory_stats``
  at the start of the run (tensors only: the CUDA context and the allocator's unused cache are
  not counted); always, the worker's resident set size (RSS), sampled every 50 ms during the
  run from ``/proc/self/statm`` (or psutil where there is no /proc), the largest sample
  (``rss_source: "sampled"``). Where neither can be read, the process's peak RSS so far
  (``getrusage``), which includes earlier cells of the same worker
  (``rss_source: "process_peak"``). For a resumed cell (``resumed: true``) the memory figures
  cover only the last run's requests.
- **Requests**: the adapter requests of the cell's rows (distinct ``request_index``).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from sparse_attention_hub import cell_store

MB = 1024.0 * 1024.0
SAMPLE_SECONDS = 0.05
# The figures (keys of resources.json) that results.csv shows, in its column order.
RESOURCE_COLUMNS = (
    "requests",
    "context_prefill_seconds",
    "question_decode_seconds",
    "tokens_per_second",
    "peak_gpu_memory_mb",
    "peak_rss_mb",
)


def _rss_bytes() -> int | None:
    """The process's resident set size now, in bytes; None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # type: ignore[import-untyped]
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


def _process_peak_rss_bytes() -> int:
    """The process's peak RSS so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


class MemoryMonitor:
    """Peak memory over a block: ``with MemoryMonitor(gpu) as monitor: ...`` then
    ``monitor.figures()``. ``gpu``: whether the block runs on CUDA devices."""

    def __init__(self, gpu: bool, interval: float = SAMPLE_SECONDS) -> None:
        self.gpu = gpu
        self.interval = interval
        self.peak_rss: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        rss = _rss_bytes()
        if rss is not None:
            self.peak_rss = rss if self.peak_rss is None else max(self.peak_rss, rss)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _cuda(self) -> Any:
        if not self.gpu:
            return None
        import torch

        return torch.cuda if torch.cuda.is_available() else None

    def __enter__(self) -> MemoryMonitor:
        cuda = self._cuda()
        if cuda is not None:
            for device in range(cuda.device_count()):
                cuda.reset_peak_memory_stats(device)
        self._sample()
        if self.peak_rss is not None:
            self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def figures(self) -> dict[str, Any]:
        """``peak_gpu_memory_mb`` (None off GPU), ``peak_rss_mb`` and ``rss_source``."""
        cuda = self._cuda()
        gpu = None
        if cuda is not None:
            gpu = sum(cuda.max_memory_allocated(d) for d in range(cuda.device_count())) / MB
        if self.peak_rss is not None:
            rss, source = self.peak_rss, "sampled"
        else:
            rss, source = _process_peak_rss_bytes(), "process_peak"
        return {"peak_gpu_memory_mb": gpu, "peak_rss_mb": rss / MB, "rss_source": source}


def _total(records: list[dict[str, Any]], *names: str) -> float | None:
    """Sum of the fields ``names`` over ``records``; None when a record lacks one."""
    total = 0.0
    for record in records:
        for name in names:
            value = record.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            total += float(value)
    return total


def timing_figures(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Requests, rows, seconds and tokens per second of a cell's prediction records."""
    context = _total(records, "context_seconds")
    answer = _total(records, "question_seconds", "decode_seconds")
    tokens = _total(records, "generated_tokens")
    speed = tokens / answer if tokens is not None and answer else None
    return {
        "requests": len({r.get("request_index") for r in records}),
        "rows": len(records),
        "context_prefill_seconds": context,
        "question_decode_seconds": answer,
        "generated_tokens": None if tokens is None else int(tokens),
        "tokens_per_second": speed,
    }


def has_predictions(cell_dir: str | os.PathLike[str]) -> bool:
    """Whether the cell holds answered rows of an earlier run (the next run resumes)."""
    path = Path(cell_dir) / cell_store.PREDICTIONS_FILE
    return path.is_file() and path.stat().st_size > 0


def record_resources(
    cell_dir: str | os.PathLike[str], memory: dict[str, Any], resumed: bool
) -> dict[str, Any]:
    """Write the completed cell's resources.json from its predictions log and ``memory``
    (:meth:`MemoryMonitor.figures`); returns what it wrote."""
    records = cell_store.read_predictions(
        Path(cell_dir) / cell_store.PREDICTIONS_FILE, repair=False
    )
    figures = {**timing_figures(records), **memory, "resumed": resumed}
    cell_store.write_resources(cell_dir, figures)
    return figures


def positions_warning(cell_dir: str | os.PathLike[str], max_positions: int) -> str | None:
    """Why a cell's prompts outgrew its model, or None: the longest request (context, question
    and answer tokens, from the predictions log) against the model's max_position_embeddings.
    A model run past its positions answers without an error, and usually badly."""
    records = cell_store.read_predictions(
        Path(cell_dir) / cell_store.PREDICTIONS_FILE, repair=False
    )
    fields = ("context_tokens", "question_tokens", "generated_tokens")
    longest = max(
        (sum(int(r.get(f) or 0) for f in fields) for r in records if isinstance(r, dict)),
        default=0,
    )
    if longest <= max_positions:
        return None
    return (
        f"requests of up to {longest} tokens (context, question and answer) ran on a model of "
        f"{max_positions} positions (max_position_embeddings); past them its answers are "
        "unreliable: set request_kwargs.max_context_length below that"
    )
