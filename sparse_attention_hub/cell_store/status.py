"""The one status function of a cell directory (see names.py for the words).

``complete`` is verified, not presumed: metrics.json parses, has the expected keys, a finite
``overall_score`` and the fingerprint of config.json, the required files exist, the
predictions log is intact with exactly ``num_rows`` rows, and the micro-metrics log (if any)
is undamaged (``metric_log.metric_log_problem``). Anything less with metrics.json present is
``corrupt``: the executor re-runs such a cell, which re-scores it from intact predictions
(trimming a damaged micro-metrics log) or resumes the missing rows. A config.json that does
not parse is ``corrupt`` too, but cannot be resumed (nothing says which config made the
predictions): its files are moved to ``stale/``. A config.json without a fingerprint and no
results (a cell that timed out or was stopped before it wrote its config) is not ``stale``:
its execution record says ``failed`` or ``interrupted``.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store.atomic import read_json
from sparse_attention_hub.cell_store.metric_log import metric_log_problem
from sparse_attention_hub.cell_store.names import (
    COMPLETE,
    CONFIG_FILE,
    CORRUPT,
    DEFAULT_REQUIRED_FILES,
    ERROR_FILE,
    FAILED,
    INTERRUPTED,
    METRICS_FILE,
    METRICS_KEYS,
    PARTIAL,
    PENDING,
    PREDICTIONS_FILE,
    STALE,
    STALE_DIR,
)
from sparse_attention_hub.cell_store.predictions import scan_predictions

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CellState:
    """A cell's status, why (for messages), and whether its files can be resumed."""

    status: str
    reason: str = ""
    resumable: bool = True


def metrics_problem(metrics: Any, config: dict[str, Any], cell: Path) -> str | None:
    """Why a metrics.json does not mark the cell complete, or None when it does."""
    if not isinstance(metrics, dict):
        return f"{cell / METRICS_FILE} is not a valid JSON object"
    missing = [key for key in METRICS_KEYS if key not in metrics]
    if missing:
        return f"{cell / METRICS_FILE} lacks {', '.join(missing)}"
    score, rows = metrics["overall_score"], metrics["num_rows"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        return f"{cell / METRICS_FILE} has overall_score {score!r}, not a finite number"
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        return f"{cell / METRICS_FILE} has num_rows {rows!r}"
    if metrics["fingerprint"] != config.get("fingerprint"):
        return f"{cell / METRICS_FILE} was written for another config (fingerprint mismatch)"
    scan = scan_predictions(cell / PREDICTIONS_FILE)
    if not scan.intact or len(scan.row_ids) != rows:
        twice = len(scan.records) - len(scan.row_ids)
        return (
            f"{cell / PREDICTIONS_FILE} holds {len(scan.row_ids)} rows"
            + (f" ({twice} recorded twice or more)" if twice else "")
            + (f" and bad line(s) {scan.bad_lines}" if scan.bad_lines else "")
            + f" where metrics.json counts {rows}"
        )
    return None


def _entries(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name != STALE_DIR and not p.name.startswith(".")]


def cell_status(
    cell_dir: str | os.PathLike[str],
    fingerprint: str | None = None,
    required_files: Sequence[str] = DEFAULT_REQUIRED_FILES,
) -> CellState:
    """The status of the cell at ``cell_dir`` (reads only).

    ``fingerprint``: the config the caller is about to run; a cell made with another one is
    ``stale``. None accepts whatever config.json says (the results table).
    """
    root = Path(cell_dir)
    if not root.is_dir():
        return CellState(PENDING)
    entries = _entries(root)
    if CONFIG_FILE not in entries:
        if {PREDICTIONS_FILE, METRICS_FILE} & set(entries):
            return CellState(STALE, f"{root} has results but no {CONFIG_FILE}")
        return CellState(PENDING)
    config = read_json(root / CONFIG_FILE)
    if config is None:
        reason = f"{root / CONFIG_FILE} is not a valid JSON object"
        return CellState(CORRUPT, reason, resumable=False)
    # a config.json without a fingerprint or results records only a run that failed or was
    # stopped before it wrote its config (a timeout during setup): nothing to move aside
    identified = "fingerprint" in config or bool({PREDICTIONS_FILE, METRICS_FILE} & set(entries))
    if fingerprint is not None and config.get("fingerprint") != fingerprint and identified:
        return CellState(STALE, f"{root} holds results of another config (fingerprint mismatch)")
    if METRICS_FILE in entries:
        problem = metrics_problem(read_json(root / METRICS_FILE), config, root)
        missing = [name for name in required_files if not (root / name).is_file()]
        if problem is None and missing:
            problem = f"{root} lacks {', '.join(missing)}"
        if problem is None:
            problem = metric_log_problem(root)
        return CellState(CORRUPT, problem) if problem else CellState(COMPLETE)
    execution = config.get("execution")
    status = execution.get("status") if isinstance(execution, dict) else None
    if status == INTERRUPTED:
        return CellState(INTERRUPTED)
    if status == FAILED or ERROR_FILE in entries:
        return CellState(FAILED)
    return CellState(PARTIAL)
