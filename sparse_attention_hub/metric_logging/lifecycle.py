"""Process hooks that make the logger lossless at exit and safe across fork.

Installed once per process, on the first construction of the logger (never at import):

- ``atexit``: flush at normal interpreter exit (main process, spawned children).
- ``multiprocessing.util.Finalize``: flush when a multiprocessing worker ends. Worker processes
  run ``util._exit_function`` when their target returns, including forked ones, where atexit
  never runs (they leave through ``os._exit``).
- ``os.register_at_fork(after_in_child=...)``: a forked child drops the events its parent had
  pending (the parent writes those), and gets fresh locks and a fresh random generator.
- ``multiprocessing.util.register_after_fork``: a multiprocessing child clears the inherited
  finalizers before its target runs; this re-registers the exit flush there.

The hooks act on whatever ``owner._instance`` is at the time, so they are installed only once.
"""

from __future__ import annotations

import atexit
import logging
import os
from multiprocessing import util as mp_util
from typing import Any

_LOG = logging.getLogger("sparse_attention_hub.metric_logging")

# Run before ordinary finalizers (higher runs first) so other shutdown work cannot drop events.
EXIT_PRIORITY = 100

_installed_in_pid: int | None = None


def install_process_hooks(owner: Any) -> None:
    """Install the exit and fork hooks for the singleton held by ``owner._instance`` (once)."""
    global _installed_in_pid
    if _installed_in_pid is not None:
        return
    _installed_in_pid = os.getpid()
    atexit.register(_flush_at_exit, owner)
    _register_finalizer(owner)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=lambda: _after_fork_in_child(owner))
    mp_util.register_after_fork(owner, _register_finalizer)


def _register_finalizer(owner: Any) -> None:
    mp_util.Finalize(None, _flush_at_exit, args=(owner,), exitpriority=EXIT_PRIORITY)


def _flush_at_exit(owner: Any) -> None:
    instance = owner._instance
    if instance is None:
        return
    try:
        instance.flush()
    except Exception:  # exit must not raise; say what was lost instead
        _LOG.exception("MicroMetricLogger: flushing pending events at exit failed")


def _after_fork_in_child(owner: Any) -> None:
    instance = owner._instance
    if instance is not None:
        instance._after_fork_in_child()
