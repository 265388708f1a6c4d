"""Writing the files of one cell: config.json updates, metrics, raw results, error.txt, stale/.

Every write is atomic (see atomic.py); the predictions log and the metric log have their own
modules.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import IO, Any

from sparse_attention_hub.cell_store.atomic import (
    read_json,
    update_json_file,
    write_atomic,
    write_json_atomic,
    write_text_atomic,
)
from sparse_attention_hub.cell_store.names import (
    CONFIG_FILE,
    ERROR_FILE,
    METRICS_FILE,
    MICRO_METRICS_FILE,
    PREDICTIONS_FILE,
    RAW_RESULTS_FILE,
    RESOURCES_FILE,
    STALE_DIR,
)


def read_config(cell_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The cell's config.json, or None when missing or damaged."""
    return read_json(Path(cell_dir) / CONFIG_FILE)


def update_config(cell_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into config.json (other keys kept); ValueError if it is damaged."""
    return update_json_file(Path(cell_dir) / CONFIG_FILE, fields)


def update_execution(cell_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into config.json's execution record (other keys kept)."""
    config = read_config(cell_dir) or {}
    execution = config.get("execution")
    execution = dict(execution) if isinstance(execution, dict) else {}
    execution.update(fields)
    return update_config(cell_dir, execution=execution)


def start_run(cell_dir: str | os.PathLike[str]) -> Path:
    """Create the cell folder and remove its metrics.json (the cell is no longer complete)
    and the resources.json of the run that had completed it."""
    root = Path(cell_dir)
    root.mkdir(parents=True, exist_ok=True)
    (root / METRICS_FILE).unlink(missing_ok=True)
    (root / RESOURCES_FILE).unlink(missing_ok=True)
    return root


def clear_error(cell_dir: str | os.PathLike[str]) -> None:
    """Remove error.txt (a new attempt starts)."""
    (Path(cell_dir) / ERROR_FILE).unlink(missing_ok=True)


def write_error(cell_dir: str | os.PathLike[str], text: str) -> None:
    """Write error.txt (atomically: a full disk leaves no empty file)."""
    write_text_atomic(Path(cell_dir) / ERROR_FILE, text)


def write_metrics(cell_dir: str | os.PathLike[str], metrics: dict[str, Any]) -> dict[str, Any]:
    """Write metrics.json last, with the fingerprint of config.json: the cell is complete."""
    config = read_config(cell_dir) or {}
    stamped = {**metrics, "fingerprint": config.get("fingerprint")}
    write_json_atomic(Path(cell_dir) / METRICS_FILE, stamped)
    return stamped


def write_resources(cell_dir: str | os.PathLike[str], figures: dict[str, Any]) -> None:
    """Write resources.json (atomically): the resource figures of a completed cell."""
    write_json_atomic(Path(cell_dir) / RESOURCES_FILE, figures)


def read_resources(cell_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The cell's resources.json, or None when missing or damaged."""
    return read_json(Path(cell_dir) / RESOURCES_FILE)


def write_raw_results(cell_dir: str | os.PathLike[str], frame: Any) -> None:
    """Write raw_results.csv from a DataFrame (atomically)."""

    def dump(handle: IO[str]) -> None:
        frame.to_csv(handle, index=False)

    write_atomic(Path(cell_dir) / RAW_RESULTS_FILE, dump)


def drop_empty_files(cell_dir: str | os.PathLike[str]) -> list[str]:
    """Remove 0-byte cell files (what a write on a full disk can leave); return their names."""
    root = Path(cell_dir)
    names = (PREDICTIONS_FILE, MICRO_METRICS_FILE, ERROR_FILE, RAW_RESULTS_FILE)
    dropped = []
    for name in names:
        path = root / name
        try:
            if path.is_file() and path.stat().st_size == 0:
                path.unlink()
                dropped.append(name)
        except OSError:
            pass
    return dropped


CELL_FILES = (
    CONFIG_FILE,
    PREDICTIONS_FILE,
    MICRO_METRICS_FILE,
    RAW_RESULTS_FILE,
    METRICS_FILE,
    RESOURCES_FILE,
    ERROR_FILE,
)


def drop_temp_files(cell_dir: str | os.PathLike[str]) -> list[str]:
    """Remove the temp files of atomic writes a kill interrupted (``.config.json.<x>.tmp``);
    return their names. Only while no one writes the cell (the executor holds its lock)."""
    root = Path(cell_dir)
    try:
        names = [p.name for p in root.iterdir() if p.name.startswith(".")]
    except OSError:
        return []
    dropped = []
    for name in names:
        if name.endswith(".tmp") and any(name.startswith(f".{f}.") for f in CELL_FILES):
            try:
                (root / name).unlink()
            except OSError:
                continue
            dropped.append(name)
    return dropped


def recorded_seconds(cell_dir: str | os.PathLike[str]) -> float | None:
    """The seconds a cell's last run took, from the execution record in its config.json."""
    config = read_config(cell_dir) or {}
    execution = config.get("execution")
    seconds = execution.get("seconds") if isinstance(execution, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return None
    return float(seconds)


def move_to_stale(cell_dir: str | os.PathLike[str]) -> Path:
    """Move everything in the cell directory (but earlier stale/) into stale/<timestamp>/."""
    root = Path(cell_dir)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    target = root / STALE_DIR / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = root / STALE_DIR / f"{stamp}_{suffix}"
    target.mkdir(parents=True)
    for entry in root.iterdir():
        if entry.name != STALE_DIR:
            shutil.move(str(entry), str(target / entry.name))
    return target
