"""Read-only accessors of :class:`MicroMetricLogger`, kept apart from its hot path."""

from __future__ import annotations

from .writer import log_file


class LoggerAccessors:
    """Mixin: the seed's accessors over the logger's state (set by ``MicroMetricLogger``)."""

    log_path: str | None
    max_records: int | None
    sampling_factor: float
    enabled_metrics: set[str]
    _total_records_logged: int

    def get_enabled_metrics(self) -> set[str]:
        """Return a copy of the enabled metric names."""
        return set(self.enabled_metrics)

    def is_logging_configured(self) -> bool:
        """True once a log_path is set."""
        return self.log_path is not None

    def get_total_records_logged(self) -> int:
        """Events recorded since the first construction or the last configure_logging."""
        return self._total_records_logged

    def is_max_records_reached(self) -> bool:
        """True when max_records is set and that many events have been recorded."""
        return self.max_records is not None and self._total_records_logged >= self.max_records

    def get_records_remaining(self) -> int | None:
        """Events that may still be recorded, or None without a max_records limit."""
        if self.max_records is None:
            return None
        return max(0, self.max_records - self._total_records_logged)

    def get_sampling_factor(self) -> float:
        """The probability with which each event is kept, in [0, 1]."""
        return self.sampling_factor

    def get_max_records(self) -> int | None:
        """The record limit, or None for no limit."""
        return self.max_records

    def get_log_file(self) -> str | None:
        """The file events are written to, or None when not configured."""
        return None if self.log_path is None else log_file(self.log_path)
