"""The names of a cell directory's files and the words for a cell's status.

A cell directory (one per model x sparse config x benchmark x subset) holds:

- ``config.json``: the resolved config, its fingerprint and the execution record (written first);
- ``predictions.jsonl``: one JSON object per answered row, appended per request (the resume log);
- ``micro_metrics.jsonl``: the MicroMetricLogger's events (flushed before each prediction batch);
- ``raw_results.csv``: the scored rows;
- ``metrics.json``: the scores, the row count and the fingerprint (written last: complete);
- ``resources.json``: time, tokens per second, peak memory and requests of the run that
  completed the cell (written by the executor's worker after metrics.json);
- ``error.txt``: why the last attempt failed;
- ``stale/<timestamp>/``: files of an earlier run with another config.
"""

from __future__ import annotations

CONFIG_FILE = "config.json"
PREDICTIONS_FILE = "predictions.jsonl"
MICRO_METRICS_FILE = "micro_metrics.jsonl"
RAW_RESULTS_FILE = "raw_results.csv"
METRICS_FILE = "metrics.json"
ERROR_FILE = "error.txt"
RESOURCES_FILE = "resources.json"
STALE_DIR = "stale"
DEFAULT_REQUIRED_FILES = (METRICS_FILE, RAW_RESULTS_FILE)

# The status of a cell: one word, used by the executor, `sah run --dry-run`, `sah report`,
# execution_summary.json and results.csv alike (see status.cell_status).
PENDING = "pending"  # nothing there yet
COMPLETE = "complete"  # verified metrics.json and predictions log
PARTIAL = "partial"  # an unfinished run of this config (it resumes)
INTERRUPTED = "interrupted"  # stopped by Ctrl-C / SIGTERM (it resumes)
FAILED = "failed"  # the last attempt failed (it resumes)
STALE = "stale"  # results of another config under this name (moved to stale/ before a run)
CORRUPT = "corrupt"  # a file of the cell is damaged (re-scored, resumed or moved; see status)
STATUSES = (COMPLETE, PARTIAL, INTERRUPTED, FAILED, CORRUPT, STALE, PENDING)

# Keys every metrics.json of a complete cell has (besides what the benchmark's scorer adds).
METRICS_KEYS = ("overall_score", "num_rows", "fingerprint")
