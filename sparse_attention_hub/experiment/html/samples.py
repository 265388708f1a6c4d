"""What the HTML report shows of each cell: a few predictions beside their gold answers, and
the error text of the cells that failed.

The predictions come from ``raw_results.csv`` (the rows the benchmark scored); the gold answer
is the row's first label column (``Benchmark.label_columns``, ``answer`` when the benchmark
cannot be found). A failed cell's text is the tail of its ``error.txt``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub.cell_store import ERROR_FILE, RAW_RESULTS_FILE
from sparse_attention_hub.experiment.cell_scores import read_scored_rows
from sparse_attention_hub.experiment.report import cell_label

log = logging.getLogger(__name__)

SAMPLES_PER_CELL = 3
ERROR_TAIL_CHARS = 4000
TEXT_CHARS = 300  # a longer question or answer is cut (with an ellipsis)
DEFAULT_GOLD = "answer"


@dataclass(frozen=True)
class Sample:
    """One scored row: question, the model's answer and the gold answer (text)."""

    row_id: str
    task: str
    question: str
    predicted: str
    gold: str


@dataclass(frozen=True)
class CellSamples:
    """A cell of the study (``model / config / label``) with its first samples."""

    model: str
    config: str
    label: str
    samples: list[Sample]


@dataclass(frozen=True)
class Failure:
    """A cell that did not complete: its status and the tail of its error text."""

    model: str
    config: str
    label: str
    status: str
    error: str


def shorten(text: Any, limit: int = TEXT_CHARS) -> str:
    """``text`` as one string of at most ``limit`` characters (an ellipsis marks a cut)."""
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1] + "…"


def gold_column(benchmark: str) -> str:
    """The first label column of the benchmark's class (``answer`` when it is unknown)."""
    from sparse_attention_hub.benchmarks.registry import get_benchmark_class

    try:
        columns = get_benchmark_class(benchmark).label_columns
    except Exception as exc:  # a plugin benchmark that is gone: the common column name
        log.debug("benchmark %s not found (%s); gold answers from %r", benchmark, exc, DEFAULT_GOLD)
        return DEFAULT_GOLD
    return columns[0] if columns else DEFAULT_GOLD


def _gold_text(value: Any) -> str:
    if isinstance(value, list):
        return " | ".join(map(str, value))
    return "" if value is None else str(value)


def read_samples(cell: Path, benchmark: str, count: int = SAMPLES_PER_CELL) -> list[Sample]:
    """The first ``count`` scored rows of ``cell`` ([] when raw_results.csv is unreadable)."""
    if not (cell / RAW_RESULTS_FILE).is_file():
        return []
    try:
        frame = read_scored_rows(cell).head(count)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        log.warning("%s: %s not readable (%s)", cell, RAW_RESULTS_FILE, exc)
        return []
    gold = gold_column(benchmark)
    return [
        Sample(
            row_id=str(row.get("row_id", "")),
            task=str(row.get("task", "")),
            question=shorten(row.get("question")),
            predicted=shorten(row.get("predicted_answer")),
            gold=shorten(_gold_text(row.get(gold))),
        )
        for row in frame.to_dict("records")
    ]


def _key(row: dict[Any, Any]) -> tuple[str, str, str]:
    return (
        str(row["model"]),
        str(row["sparse_config"]),
        cell_label(row["benchmark"], row.get("subset")),
    )


def cell_samples(table: pd.DataFrame, count: int = SAMPLES_PER_CELL) -> list[CellSamples]:
    """The first samples of each complete cell of ``table``, in table order."""
    out = []
    for row in table.to_dict("records"):
        if row.get("status") != "complete" or not isinstance(row.get("result_dir"), str):
            continue
        samples = read_samples(Path(row["result_dir"]), str(row["benchmark"]), count)
        out.append(CellSamples(*_key(row), samples))
    return out


def error_tail(cell: Path, limit: int = ERROR_TAIL_CHARS) -> str:
    """The last ``limit`` characters of ``cell``'s error.txt ('' when it has none)."""
    path = cell / ERROR_FILE
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text if len(text) <= limit else "…" + text[-limit:]


def failures(table: pd.DataFrame) -> list[Failure]:
    """Every cell of ``table`` that is not complete, with its error text."""
    out = []
    for row in table.to_dict("records"):
        status = str(row.get("status") or "unknown")
        if status == "complete":
            continue
        cell = row.get("result_dir")
        text = error_tail(Path(cell)) if isinstance(cell, str) else ""
        out.append(Failure(*_key(row), status, text))
    return out
