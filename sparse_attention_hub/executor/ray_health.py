"""Noticing a lost Ray cluster before Ray ends the driver.

When a cluster's GCS (its head) goes away, Ray's core worker in the driver tries to reconnect
for ``gcs_rpc_server_reconnect_timeout_s`` (60 s by default), then ends the process from C++
("Failed to connect to GCS within 60 seconds ... The program will terminate"): no Python
exception, no ``finally``, no summary. That exit cannot be caught. What can be done is to see
the loss first: :class:`GcsWatch` opens a TCP connection to the GCS's port between scheduler
iterations (at most once per ``interval``); once it has failed for ``lost_after`` seconds in a
row (a GCS restarted by its fault tolerance answers again well within that) the scheduler
stops, the summary is written and the run ends with one line, well before Ray's own limit.
"""

from __future__ import annotations

import socket
import time

#: seconds between two probes of the GCS
PROBE_INTERVAL = 1.0
#: seconds of failed probes after which the cluster counts as lost (Ray's own limit is 60)
LOST_AFTER = 15.0


class GcsWatch:
    """``watch() -> None | str``: None while the GCS at ``address`` ("host:port") answers (or
    has not been silent for ``lost_after`` seconds), else one line saying the cluster is lost.
    """

    def __init__(
        self, address: str, interval: float = PROBE_INTERVAL, lost_after: float = LOST_AFTER
    ) -> None:
        host, _, port = address.rpartition(":")
        self.address = address
        self._target = (host.strip("[]"), int(port))
        self.interval = interval
        self.lost_after = lost_after
        self._last_probe = float("-inf")
        self._silent_since: float | None = None
        self._why = ""
        self.lost: str | None = None

    def __call__(self) -> str | None:
        now = time.monotonic()
        if self.lost is not None or now - self._last_probe < self.interval:
            return self.lost
        self._last_probe = now
        try:
            with socket.create_connection(self._target, timeout=min(2.0, self.lost_after)):
                pass
        except OSError as exc:
            self._why = exc.strerror or type(exc).__name__
            if self._silent_since is None:
                self._silent_since = now
            elif now - self._silent_since >= self.lost_after:
                self.lost = (
                    f"lost the Ray cluster: its GCS at {self.address} has not answered for "
                    f"{now - self._silent_since:.0f} s ({self._why})"
                )
            return self.lost
        self._silent_since = None
        return None
