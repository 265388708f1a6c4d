"""Extra columns of the report (``sah report --columns``): per-cell figures of results.csv
summed, maxed or averaged over each report row's complete cells.

>>> parse_columns("tokens_per_second, peak_rss_mb")
('tokens_per_second', 'peak_rss_mb')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

SUM, MAX, RATE = "sum", "max", "rate"
# name -> (how the row's cells combine, legend line)
EXTRA_COLUMNS: dict[str, tuple[str, str]] = {
    "requests": (SUM, "requests: adapter requests, summed over the row's cells"),
    "seconds": (SUM, "seconds: wall time of the cells' last runs, summed"),
    "context_prefill_seconds": (SUM, "context_prefill_seconds: dense context prefill, summed"),
    "question_decode_seconds": (
        SUM,
        "question_decode_seconds: question tokens and decoding, summed",
    ),
    "tokens_per_second": (
        RATE,
        "tokens_per_second: generated tokens over question_decode_seconds, all cells together",
    ),
    "peak_gpu_memory_mb": (
        MAX,
        "peak_gpu_memory_mb: torch.cuda.max_memory_allocated per cell, largest of the row",
    ),
    "peak_rss_mb": (MAX, "peak_rss_mb: worker's peak resident memory per cell, largest of the row"),
}
TIME = "question_decode_seconds"  # the weights of a rate


def parse_columns(text: str) -> tuple[str, ...]:
    """``"a,b"`` as a tuple of known column names; ValueError naming the allowed ones."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in EXTRA_COLUMNS]
    if unknown or not names:
        raise ValueError(
            f"--columns: unknown column(s) {', '.join(unknown) or repr(text)}; "
            f"allowed: {', '.join(EXTRA_COLUMNS)}"
        )
    return tuple(dict.fromkeys(names))


def _floats(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame.columns:
        return pd.Series(float("nan"), index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


def _combine(frame: pd.DataFrame, name: str) -> float | None:
    """One row's value of ``name`` from its complete cells ``frame``; None if none has one."""
    how = EXTRA_COLUMNS[name][0]
    values = _floats(frame, name)
    if how == RATE:  # tokens / seconds over all cells: a rate weighted by each cell's time
        weights = _floats(frame, TIME)
        both = values.notna() & weights.notna()
        total = float(weights[both].sum())
        return float((values[both] * weights[both]).sum()) / total if total > 0 else None
    present = values.dropna()
    if present.empty:
        return None
    return float(present.max() if how == MAX else present.sum())


def with_extra_columns(
    columns: list[str], rows: list[dict[str, Any]], cells: pd.DataFrame, names: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of the report with ``names`` appended, each row's value combined
    from its complete cells of ``cells`` (the per-cell table)."""
    if not names:
        return columns, rows
    complete = cells[cells["status"].fillna("complete") == "complete"] if len(cells) else cells
    groups = {
        (str(model), str(config)): frame
        for (model, config), frame in complete.groupby(["model", "sparse_config"], sort=False)
    }
    out = []
    for row in rows:
        frame = groups.get((str(row["model"]), str(row["config"])))
        extra = {n: (None if frame is None else _combine(frame, n)) for n in names}
        out.append({**row, **extra})
    return [*columns, *names], out


def column_notes(names: Sequence[str]) -> list[str]:
    """The legend lines of ``names``."""
    return [EXTRA_COLUMNS[name][1] for name in names]
