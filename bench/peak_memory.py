"""Peak extra memory of one block of work: the process's resident set on the CPU, the
allocator's tensors on CUDA.

CPU: the kernel's high-water mark of the resident set (``VmHWM``) is reset by writing ``5`` to
``/proc/self/clear_refs`` (Linux 4.0+), so a process can measure several blocks in turn; where
that file cannot be written, ``ru_maxrss`` (the process's peak so far) is the fallback and only
the first block of a fresh process is measured right. tracemalloc does not see torch's
allocations; large tensors are mmapped and returned to the OS when freed, so the high-water
mark is the true peak, provided glibc returns them: a subprocess that measures gets
:func:`measuring_env`, which fixes glibc's mmap threshold at 128 KiB (by default it rises to
32 MiB after a large free, and later tensors up to that size would then reuse freed heap
unseen).

CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, less what was
allocated before (tensors only: the CUDA context and the allocator's cache are not counted).
"""

from __future__ import annotations

import gc
import os
import resource
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def measuring_env() -> dict[str, str]:
    """The environment of a subprocess that measures peak RSS (see the module docstring)."""
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}


def _status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None where unreadable."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_high_water_mark() -> bool:
    """Reset the process's peak RSS to its current RSS; False where the kernel does not allow."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def peak_extra_bytes(fn: Callable[[], T], device: torch.device) -> tuple[int, T]:
    """Run ``fn()`` once; return (its peak memory beyond what was held before, its result)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before, result
    if _reset_high_water_mark():
        start = _status_kib("VmRSS") or 0
        result = fn()
        return max(0, ((_status_kib("VmHWM") or 0) - start) * 1024), result
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) * 1024, result
