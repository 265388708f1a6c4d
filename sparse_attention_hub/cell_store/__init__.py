"""The on-disk format of one cell, and the only code that writes a cell's files.

Both the benchmark run loop and the executor go through here: file names (``names``),
atomic durable writes (``atomic``), the predictions log (``predictions``), the metric log's
resume trim (``metric_log``), the status of a cell (``status``) and the other files
(``cell``: config.json updates, metrics.json, raw_results.csv, error.txt, stale/ moves).
"""

from sparse_attention_hub.cell_store.atomic import (
    canonical_json,
    fingerprint_of,
    json_default,
    read_json,
    update_json_file,
    write_json_atomic,
    write_text_atomic,
)
from sparse_attention_hub.cell_store.cell import (
    clear_error,
    move_to_stale,
    read_config,
    recorded_seconds,
    start_run,
    update_config,
    update_execution,
    write_error,
    write_metrics,
    write_raw_results,
)
from sparse_attention_hub.cell_store.metric_log import keep_requests
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
    MICRO_METRICS_FILE,
    PARTIAL,
    PENDING,
    PREDICTIONS_FILE,
    RAW_RESULTS_FILE,
    STALE,
    STALE_DIR,
    STATUSES,
)
from sparse_attention_hub.cell_store.predictions import (
    answered_rows,
    append_predictions,
    read_predictions,
    scan_predictions,
)
from sparse_attention_hub.cell_store.status import CellState, cell_status, metrics_problem

__all__ = [
    "COMPLETE",
    "CONFIG_FILE",
    "CORRUPT",
    "DEFAULT_REQUIRED_FILES",
    "ERROR_FILE",
    "FAILED",
    "INTERRUPTED",
    "METRICS_FILE",
    "METRICS_KEYS",
    "MICRO_METRICS_FILE",
    "PARTIAL",
    "PENDING",
    "PREDICTIONS_FILE",
    "RAW_RESULTS_FILE",
    "STALE",
    "STALE_DIR",
    "STATUSES",
    "CellState",
    "answered_rows",
    "append_predictions",
    "canonical_json",
    "cell_status",
    "clear_error",
    "fingerprint_of",
    "json_default",
    "keep_requests",
    "metrics_problem",
    "move_to_stale",
    "read_config",
    "read_json",
    "read_predictions",
    "recorded_seconds",
    "scan_predictions",
    "start_run",
    "update_config",
    "update_execution",
    "update_json_file",
    "write_error",
    "write_json_atomic",
    "write_metrics",
    "write_raw_results",
    "write_text_atomic",
]
