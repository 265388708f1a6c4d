"""MicroMetricLogger: a per-process singleton that records metric events from anywhere.

Hot-path use (for example inside an attention layer)::

    logger = MicroMetricLogger()
    if logger.is_metric_enabled("research_attention_density"):   # a set lookup
        logger.log("research_attention_density", density, {"layer_idx": layer_idx})

``density`` may be a 0-dim tensor: it is read back at flush, batched, so logging does not force
a device sync per call. Events are written as JSON lines to ``<log_path>/micro_metrics.jsonl``
every ``flush_every`` events, when ``flush_interval`` seconds have passed (checked at log), on
``flush()``, on ``configure_logging()`` (to the old path), and at process exit (main process,
spawned and forked multiprocessing workers). See ``lifecycle.py`` for the exit hooks.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from typing import Any, ClassVar

from . import lifecycle
from .accessors import LoggerAccessors
from .event import LogEvent
from .location import location_of
from .settings import (
    EnabledMetrics,
    check_flush_settings,
    check_max_records,
    check_path,
    clamp_sampling,
    resolve_metrics,
)
from .writer import LOG_FILENAME, append_events

_LOG = logging.getLogger("sparse_attention_hub.metric_logging")

__all__ = ["LOG_FILENAME", "EnabledMetrics", "MicroMetricLogger"]

# Guards the creation and first initialisation of the singleton (rare; never on the hot path).
_CREATION_LOCK = threading.RLock()


class MicroMetricLogger(LoggerAccessors):
    """Per-process singleton recording metric events to ``<log_path>/micro_metrics.jsonl``.

    Constructor arguments take effect on the first construction only; a later construction
    with a different ``log_path`` warns. Use ``configure_logging`` to (re)configure.
    """

    _instance: ClassVar[MicroMetricLogger | None] = None
    _initialized: ClassVar[bool] = False
    _registered_metrics: ClassVar[dict[str, type]] = {}

    # Instance state (set in _init_state).
    log_path: str | None
    flush_every: int
    flush_interval: float
    max_records: int | None
    sampling_factor: float
    enabled_metrics: set[str]
    log_queue: list[LogEvent]
    last_flush_time: float

    def __new__(cls, *args: Any, **kwargs: Any) -> MicroMetricLogger:
        instance = cls._instance
        if instance is None:
            with _CREATION_LOCK:
                instance = cls._instance
                if instance is None:
                    instance = super().__new__(cls)
                    cls._instance = instance
        return instance

    def __init__(
        self,
        log_path: str | os.PathLike[str] | None = None,
        flush_every: int = 1000,
        flush_interval: float = 60.0,
        enabled_metrics: EnabledMetrics = None,
        max_records: int | None = None,
        sampling_factor: float = 1.0,
        seed: int | None = None,
    ) -> None:
        cls = type(self)
        if not cls._initialized:
            with _CREATION_LOCK:
                if not cls._initialized:
                    self._first_init(
                        log_path,
                        flush_every,
                        flush_interval,
                        enabled_metrics,
                        max_records,
                        sampling_factor,
                        seed,
                    )
                    return
        self._warn_if_other_path(log_path)

    def _first_init(
        self,
        log_path: str | os.PathLike[str] | None,
        flush_every: int,
        flush_interval: float,
        enabled_metrics: EnabledMetrics,
        max_records: int | None,
        sampling_factor: float,
        seed: int | None,
    ) -> None:
        check_flush_settings(flush_every, flush_interval)
        path = None if log_path is None else check_path(log_path)
        self._init_state(
            flush_every=flush_every,
            flush_interval=float(flush_interval),
            max_records=check_max_records(max_records),
            sampling_factor=clamp_sampling(sampling_factor),
            seed=seed,
        )
        if path is not None:
            os.makedirs(path, exist_ok=True)
            self.log_path = path
            self.enable_metrics(enabled_metrics)
        elif enabled_metrics:
            _LOG.warning(
                "MicroMetricLogger: enabled_metrics=%r ignored without a log_path "
                "(use configure_logging(log_path, enabled_metrics))",
                enabled_metrics,
            )
        type(self)._initialized = True
        lifecycle.install_process_hooks(type(self))

    def _warn_if_other_path(self, log_path: str | os.PathLike[str] | None) -> None:
        if log_path is None or self.log_path is None:
            return
        if check_path(log_path) != self.log_path:
            _LOG.warning(
                "MicroMetricLogger already initialized with log_path %r; ignoring %r "
                "(use configure_logging() to change it)",
                self.log_path,
                str(log_path),
            )

    def _init_state(
        self,
        flush_every: int = 1000,
        flush_interval: float = 60.0,
        max_records: int | None = None,
        sampling_factor: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.log_path = None
        self.flush_every = flush_every
        self.flush_interval = flush_interval
        self.max_records = max_records
        self.sampling_factor = sampling_factor
        self.enabled_metrics = set()
        self.log_queue = []
        self.last_flush_time = time.time()
        self._total_records_logged = 0
        self._flush_at = flush_every  # queue length that triggers a flush
        self._rng = random.Random(seed)
        self._context: dict[str, Any] = {}
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()  # guards log_queue, the record count, the config
        self._flush_lock = threading.Lock()  # serialises writes; taken before _lock

    # ----------------------------------------------------------------- registry (class level)

    @classmethod
    def register_metric(cls, identifier: str, dtype: type) -> None:
        """Register ``identifier`` with its expected value type; registering again warns."""
        if not isinstance(identifier, str) or not identifier:
            raise ValueError(f"metric identifier must be a non-empty str, got {identifier!r}")
        if identifier in cls._registered_metrics:
            _LOG.warning("Metric %r is being re-registered (dtype %r)", identifier, dtype)
        cls._registered_metrics[identifier] = dtype

    @classmethod
    def get_registered_metrics(cls) -> dict[str, type]:
        """Return a copy of the registry {identifier: dtype}."""
        return dict(cls._registered_metrics)

    # ----------------------------------------------------------------------- configuration

    def enable_metrics(self, metrics: EnabledMetrics = None) -> None:
        """Enable ``"all"`` registered metrics, a list of them, or none (``None`` / ``[]``).

        Unregistered names are not enabled and give a warning. ``"all"`` means the metrics
        registered now; metrics registered later need another call.
        """
        self.enabled_metrics = resolve_metrics(metrics, self._registered_metrics)
        self._warned = set()

    def configure_logging(
        self,
        log_path: str | os.PathLike[str],
        enabled_metrics: EnabledMetrics = None,
        max_records: int | None = None,
        sampling_factor: float = 1.0,
        seed: int | None = None,
    ) -> None:
        """Point the logger at ``log_path`` (created if missing), after flushing pending events
        to the previous path. Sets the enabled metrics, max_records and sampling_factor, resets
        the record count, and reseeds the sampling generator when ``seed`` is given.
        """
        path = check_path(log_path)
        limit = check_max_records(max_records)
        factor = clamp_sampling(sampling_factor)
        enabled = resolve_metrics(enabled_metrics, self._registered_metrics)
        os.makedirs(path, exist_ok=True)
        with self._flush_lock:
            with self._lock:  # one step: no event can see half the new configuration
                pending, old_path = self._take_pending()
                self.log_path = path
                self.enabled_metrics = enabled
                self.max_records = limit
                self.sampling_factor = factor
                self._total_records_logged = 0
                self._warned = set()
                if seed is not None:
                    self._rng.seed(seed)
            try:
                append_events(pending, old_path)
            except Exception:  # the new configuration stands; say what was lost
                _LOG.exception(
                    "MicroMetricLogger: writing %d pending events to %r failed; they are lost",
                    len(pending),
                    old_path,
                )

    def set_context(self, **fields: Any) -> None:
        """Merge ``fields`` into the metadata of every later event, until ``clear_context``."""
        with self._lock:
            self._context = {**self._context, **fields}

    def clear_context(self) -> None:
        """Drop every field set by ``set_context``."""
        with self._lock:
            self._context = {}

    def get_context(self) -> dict[str, Any]:
        """Return a copy of the current context fields."""
        return dict(self._context)

    # ------------------------------------------------------------------------- hot path

    def is_metric_enabled(self, identifier: str) -> bool:
        """True if ``identifier`` is enabled (a set lookup: guard metric computation with it)."""
        return identifier in self.enabled_metrics

    def log(self, identifier: str, value: Any, metadata: dict[str, Any] | None = None) -> None:
        """Record ``value`` for metric ``identifier``; the caller's location is inferred.

        Not configured or not enabled: nothing is recorded and a warning is given once per
        metric (until the next configure/enable). Past max_records: dropped silently. Each event
        is kept with probability sampling_factor. ``metadata`` is merged over the context.
        """
        if identifier not in self.enabled_metrics or self.log_path is None:
            self._warn_not_logged(identifier)
            return
        limit = self.max_records
        if limit is not None and self._total_records_logged >= limit:
            return
        factor = self.sampling_factor
        if factor < 1.0 and self._rng.random() >= factor:
            return
        context = self._context
        if context:
            metadata = {**context, **metadata} if metadata else dict(context)
        else:
            metadata = dict(metadata) if metadata else {}
        if type(value) is not float and getattr(value, "requires_grad", False):
            value = value.detach()  # keep the number, not the autograd graph, until flush
        now = time.time()
        event = LogEvent(now, identifier, value, metadata, location_of(sys._getframe(1)))
        with self._lock:
            if limit is not None and self._total_records_logged >= limit:
                return
            self.log_queue.append(event)
            self._total_records_logged += 1
            pending = len(self.log_queue)
        if pending >= self._flush_at or now - self.last_flush_time >= self.flush_interval:
            self._auto_flush()

    def _warn_not_logged(self, identifier: str) -> None:
        reason = "unconfigured" if self.log_path is None else "disabled"
        key = (reason, identifier)
        if key in self._warned:
            return
        self._warned.add(key)
        if reason == "unconfigured":
            _LOG.warning(
                "Cannot log metric %r - log_path not defined. Use configure_logging() first. "
                "(Further warnings for this metric are suppressed.)",
                identifier,
            )
        else:
            _LOG.warning(
                "Attempting to log metric %r which is not enabled (enabled: %s). "
                "(Further warnings for this metric are suppressed.)",
                identifier,
                sorted(self.enabled_metrics),
            )

    # ---------------------------------------------------------------------------- flushing

    def flush(self) -> None:
        """Append pending events to ``<log_path>/micro_metrics.jsonl`` (no file if none).

        On a write error the events are put back at the head of the queue and the error is
        raised.
        """
        with self._flush_lock:
            self._flush_holding_lock()

    def _flush_holding_lock(self) -> None:
        with self._lock:
            pending, path = self._take_pending()
        try:
            append_events(pending, path)
        except BaseException:
            with self._lock:
                self.log_queue[:0] = pending
            raise

    def _auto_flush(self) -> None:
        """Flush from log(); never raises, never waits for another thread's flush."""
        if not self._flush_lock.acquire(blocking=False):
            return  # a flush is running; the next log() call checks again
        try:
            self._flush_holding_lock()
        except Exception:
            _LOG.exception("MicroMetricLogger: automatic flush to %r failed", self.log_path)
            with self._lock:  # retry after flush_every more events or flush_interval seconds
                self.last_flush_time = time.time()
                self._flush_at = len(self.log_queue) + self.flush_every
        finally:
            self._flush_lock.release()

    def _take_pending(self) -> tuple[list[LogEvent], str | None]:
        """Swap out the queue (caller holds ``_lock``) and return it with its log path."""
        pending = self.log_queue
        self.log_queue = []
        self.last_flush_time = time.time()
        self._flush_at = self.flush_every
        return pending, self.log_path

    # ------------------------------------------------------------------------- process life

    def _after_fork_in_child(self) -> None:
        """In a forked child: drop the parent's pending events; fresh locks and generator."""
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.log_queue = []
        self._rng = random.Random()
        self.last_flush_time = time.time()

    @classmethod
    def _reset_for_tests(cls, registry: dict[str, type] | None = None) -> None:
        """Test helper: forget configuration and pending events, keep the same instance.

        The singleton object is kept (modules that hold a reference stay valid) but returns to
        its defaults, and the next construction applies its arguments again. Pending events are
        discarded, not written. With ``registry``, the metric registry is replaced by a copy of
        it (use ``get_registered_metrics()`` before a test to restore it after).
        """
        instance = cls._instance
        if instance is not None:
            instance._init_state()
        cls._initialized = False
        if registry is not None:
            cls._registered_metrics.clear()
            cls._registered_metrics.update(registry)
