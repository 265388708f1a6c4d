"""What ``sah tune`` checks and holds before any trial starts, as ``sah run`` does.

:func:`hold_result_dir`: one run per results directory. The search holds the executor's
``flock`` (:class:`~sparse_attention_hub.executor.lock.BaseDirLock`, dropped by the kernel
when the process dies, even by SIGKILL) and, when its trials may run on other machines (a
Ray ``address``), the lease with a heartbeat (:class:`~sparse_attention_hub.executor.lease.
RunLease`); a second ``sah tune`` or ``sah run`` on the same directory is refused.

:func:`preflight_study`: every model and dataset of the study resolved once, up front (the
executor's preflight); a missing one raises :class:`~sparse_attention_hub.executor.
preflight.PreflightError` listing each (``sah tune`` exits 2).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from sparse_attention_hub.experiment.spec import ExperimentSpec

log = logging.getLogger(__name__)


@contextlib.contextmanager
def hold_result_dir(result_dir: str, address: str | None) -> Iterator[None]:
    """Hold ``result_dir`` for the search; BaseDirLocked if another run holds it."""
    from sparse_attention_hub.executor.lease import RunLease, check_lease_free
    from sparse_attention_hub.executor.lock import BaseDirLock

    Path(result_dir).mkdir(parents=True, exist_ok=True)
    with BaseDirLock(result_dir):
        if address in (None, "", "local"):
            check_lease_free(result_dir)  # a Ray run of another machine may hold it
            yield
            return
        with RunLease(result_dir):
            yield


def preflight_study(study: ExperimentSpec) -> None:
    """Resolve the study's models and datasets (after its tiny models are built); raise
    PreflightError listing what is missing. ``executor.preflight: false`` skips it."""
    if not study.executor.preflight:
        return
    from sparse_attention_hub.experiment.runner import preflight_experiment

    report = preflight_experiment(study)
    report.raise_if_problems()
    for note in report.notes:
        log.warning("preflight: %s", note)
    log.info("preflight: %d models and datasets found in %.1f s", len(report.lines), report.seconds)
