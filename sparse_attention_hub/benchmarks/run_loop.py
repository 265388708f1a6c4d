"""The body of Benchmark.run_benchmark: rows to requests, the resume log, the cell files.

Order of writes in a cell directory (all through :mod:`sparse_attention_hub.cell_store`):
``config.json`` first (what is being run), then per request the MicroMetricLogger's events
(flushed) and one batch of ``predictions.jsonl`` lines (fsynced: the resume log), then
``raw_results.csv``, and ``metrics.json`` last, atomically.
A stale ``metrics.json`` is removed before anything runs, so the file marks completion. On
resume, metric events of requests whose predictions were not saved are dropped (they run
again), so a resumed cell has exactly the events of an uninterrupted run.

The loop reports its phases through ``on_phase``: ``"dataset"`` while the benchmark prepares
and loads its rows, ``"run"`` from then on (the executor categorises failures by phase). It
reports its progress through ``on_progress(done, total, generated_tokens)``: requests of the
cell answered (resumed ones included) out of all, and tokens generated in this run so far;
once before the first request and after each one (the caller throttles).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm.auto import tqdm

from sparse_attention_hub import cell_store
from sparse_attention_hub.benchmarks.follow_up import (
    apply_follow_ups,
    has_follow_ups,
    rows_by_id,
)
from sparse_attention_hub.benchmarks.run_checks import check_kwargs, check_resumable
from sparse_attention_hub.benchmarks.schema import REQUIRED_COLUMNS, check_columns

if TYPE_CHECKING:
    from sparse_attention_hub.adapters.base import ModelAdapter
    from sparse_attention_hub.benchmarks.base import Benchmark

logger = logging.getLogger(__name__)

PHASE_DATASET = "dataset"
PHASE_RUN = "run"
TOKEN_FIELDS = ("context_tokens", "truncated_tokens", "question_tokens", "generated_tokens")
TIMING_FIELDS = ("prefill_seconds", "decode_seconds", "context_seconds", "question_seconds")


#: ``on_progress(requests_done, requests_total, generated_tokens)``
ProgressCallback = Callable[[int, int, int], None]

#: Base of the per-request seed of torch's RNG (see :func:`seed_request`).
REQUEST_SEED = 0


@dataclass
class RequestGroup:
    """Rows sharing one context, answer prefix, max_new_tokens and request overrides: one Request."""

    request_index: int
    context: str
    answer_prefix: str
    max_new_tokens: int | None
    request_overrides: dict[str, Any] = field(default_factory=dict)
    sample_index: int | None = None
    row_ids: list[int] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)


def _effective_max_new_tokens(row_value: Any, caller_value: int | None) -> int | None:
    values = [caller_value]
    missing = row_value is None or (isinstance(row_value, float) and math.isnan(row_value))
    if not missing and row_value != "":  # "" is a missing value in a CSV file
        try:
            values.append(int(row_value))
        except (TypeError, ValueError):
            raise ValueError(
                f"column 'max_new_tokens' must hold ints (or be empty), got {row_value!r}"
            ) from None
    given = [v for v in values if v is not None]
    return min(given) if given else None


def prepare_rows(
    df: pd.DataFrame, source: str, max_requests: int | None, caller_max_new_tokens: int | None
) -> pd.DataFrame:
    """Validate the loader's frame, number its rows and apply max_requests and max_new_tokens."""
    check_columns(df, REQUIRED_COLUMNS, source)
    rows = df.reset_index(drop=True).copy()
    rows.insert(0, "row_id", range(len(rows)))
    if max_requests is not None:
        rows = rows.iloc[:max_requests].copy()
    # object dtype: a column mixing ints and None must not become floats with NaN (NaN keys
    # never compare equal, so every such row would get its own request)
    rows["max_new_tokens"] = pd.Series(
        [_effective_max_new_tokens(v, caller_max_new_tokens) for v in rows["max_new_tokens"]],
        index=rows.index,
        dtype=object,
    )
    rows["answer_prefix"] = rows["answer_prefix"].fillna("").astype(str)
    return rows


def group_rows(
    rows: pd.DataFrame, overrides_for: Callable[[str], dict[str, Any]] | None = None
) -> list[RequestGroup]:
    """One group per distinct (context, answer_prefix, max_new_tokens, overrides), first-seen order.

    ``overrides_for(task)`` gives the request_kwargs a benchmark sets for a task's rows. Rows
    with an optional ``sample_index`` column (repeated samples of one question) are grouped by
    it too: each sample index gets its own requests (and its own sampling seed).
    """
    groups: dict[tuple[Any, ...], RequestGroup] = {}
    columns = ("row_id", "context", "question", "answer_prefix", "max_new_tokens", "task")
    samples = rows["sample_index"] if "sample_index" in rows else [None] * len(rows)
    for row_id, context, question, prefix, max_new, task, sample in zip(
        *(rows[c] for c in columns), samples, strict=True
    ):
        overrides = overrides_for(str(task)) if overrides_for is not None else {}
        sample = None if sample is None else int(sample)
        key = (str(context), str(prefix), max_new, tuple(sorted(overrides.items())), sample)
        if key not in groups:
            groups[key] = RequestGroup(
                len(groups), str(context), str(prefix), max_new, dict(overrides), sample
            )
        groups[key].row_ids.append(int(row_id))
        groups[key].questions.append(str(question))
    return list(groups.values())


def _show_progress(show_progress: bool | None) -> bool:
    if show_progress is not None:
        return show_progress
    return os.environ.get("SAH_PROGRESS", "1").strip().lower() not in ("0", "false", "no", "off")


def seed_request(request_index: int) -> None:
    """Seed torch's RNG (every device) for one request: ``REQUEST_SEED + request_index``.

    Sampling maskers draw from torch's global RNG, so a cell's results are reproducible, and a
    resumed cell draws for each remaining request what an uninterrupted run would have drawn.
    """
    import torch

    torch.manual_seed(REQUEST_SEED + request_index)


def _answer_group(
    adapter: ModelAdapter,
    group: RequestGroup,
    pending: Sequence[int],
    generation_kwargs: dict[str, Any],
    request_kwargs: dict[str, Any],
    tasks: dict[int, str],
) -> list[dict[str, Any]]:
    """Ask the group's pending questions in one Request; one prediction record per row."""
    from sparse_attention_hub.adapters.base import Request

    positions = [group.row_ids.index(row_id) for row_id in pending]
    questions = [group.questions[p] for p in positions]
    gen = dict(generation_kwargs)
    if group.max_new_tokens is not None:
        gen["max_new_tokens"] = group.max_new_tokens
    if group.sample_index is not None and gen.get("seed") is not None:
        gen["seed"] = int(gen["seed"]) + group.sample_index  # sample i draws with seed + i
    req = {**request_kwargs, **group.request_overrides, "request_index": group.request_index}
    request = Request(context=group.context, questions=questions, answer_prefix=group.answer_prefix)
    seed_request(group.request_index)
    started = time.perf_counter()
    response = adapter.process_request(request, generation_kwargs=gen, request_kwargs=req)
    elapsed = time.perf_counter() - started
    answers = (
        [response.responses] if isinstance(response.responses, str) else list(response.responses)
    )
    if len(answers) != len(questions):
        raise RuntimeError(
            f"adapter returned {len(answers)} answers for {len(questions)} questions "
            f"(request {group.request_index})"
        )
    metadata = list(response.metadata or [])
    records = []
    for index, (row_id, answer) in enumerate(zip(pending, answers, strict=True)):
        meta = metadata[index] if index < len(metadata) else {}
        record: dict[str, Any] = {
            "row_id": row_id,
            "task": tasks[row_id],
            "request_index": group.request_index,
            "question_index": index,
            "predicted_answer": answer,
            "max_new_tokens": group.max_new_tokens,
            "request_seconds": elapsed,
        }
        record.update({k: meta.get(k) for k in (*TOKEN_FIELDS, *TIMING_FIELDS)})
        records.append(record)
    return records


def build_results(rows: pd.DataFrame, done: dict[int, dict[str, Any]]) -> pd.DataFrame:
    """The scored frame: input rows minus the context, plus predictions and token counts."""
    results = rows.drop(columns=["context"]).copy()
    results["predicted_answer"] = [done[r]["predicted_answer"] for r in results["row_id"]]
    results["request_index"] = [done[r].get("request_index") for r in results["row_id"]]
    for name in TOKEN_FIELDS:
        results[name] = [done[r].get(name) for r in results["row_id"]]
    if any("first_answer" in done[r] for r in results["row_id"]):  # rows with a follow-up
        results["first_answer"] = [done[r].get("first_answer") for r in results["row_id"]]
    return results.reset_index(drop=True)


def _json_cell(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)) or getattr(value, "ndim", 0) > 0:
        return json.dumps(value, ensure_ascii=False, default=cell_store.json_default)
    return value


def csv_ready(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with list-like cells (gold answers, classes) as JSON text for the CSV.

    pandas would write a list as its Python repr and a numpy array (as parquet and hub data
    give) as ``['a' 'b']``, which nothing parses back; JSON reads back with ``json.loads``.
    """
    out = results.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = [_json_cell(v) for v in out[column]]
    return out


def _summary(results: pd.DataFrame) -> dict[str, Any]:
    totals = {}
    for name in TOKEN_FIELDS:
        values = [v for v in results[name] if v is not None and not pd.isna(v)]
        totals[name] = int(sum(values)) if values else None
    return {
        "num_rows": len(results),
        "num_requests": int(results["request_index"].nunique()) if len(results) else 0,
        "token_totals": totals,
    }


def _open_cell(
    adapter: ModelAdapter,
    result_dir: Path,
    run_config: dict[str, Any],
    groups: list[RequestGroup],
) -> dict[int, dict[str, Any]]:
    """Read the resume log, check it was made with these settings, write config.json, and
    trim the logs to whole requests: a request with some rows missing (a damaged log) runs
    again in full, as it would have in an uninterrupted run. Returns row id -> record.
    """
    log_path = result_dir / cell_store.PREDICTIONS_FILE
    done = cell_store.answered_rows(log_path)
    if done:
        check_resumable(result_dir / cell_store.CONFIG_FILE, run_config)
    torn = [
        row
        for group in groups
        if not all(r in done for r in group.row_ids)
        for row in group.row_ids
        if row in done
    ]
    if torn:
        logger.warning("%s: rows %s belong to unfinished requests; they run again", log_path, torn)
        cell_store.drop_rows(log_path, torn)
        done = {row: record for row, record in done.items() if row not in set(torn)}
    cell_store.keep_requests(result_dir, {int(r["request_index"]) for r in done.values()})
    cell_store.update_config(result_dir, **run_config, adapter=adapter.describe())
    return done


def _answer_pending(
    bench: Benchmark,
    adapter: ModelAdapter,
    rows: pd.DataFrame,
    groups: list[RequestGroup],
    done: dict[int, dict[str, Any]],
    kwargs: tuple[dict[str, Any], dict[str, Any]],
    result_dir: Path,
    show_progress: bool | None,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Run every request with unanswered rows, appending to the log and to ``done``.

    A request's metric events are flushed before its predictions are appended: once a
    prediction is saved, so are its events.
    """
    report = on_progress or (lambda done, total, tokens: None)
    from sparse_attention_hub.metric_logging import MicroMetricLogger

    gen, req = kwargs
    tasks = dict(zip(rows["row_id"].astype(int), rows["task"].astype(str), strict=True))
    todo = [(g, [r for r in g.row_ids if r not in done]) for g in groups]
    todo = [(g, pending) for g, pending in todo if pending]
    logger.info(
        "%s: %d rows in %d requests, %d requests to run (%d rows already answered)",
        bench.benchmark_name,
        len(rows),
        len(groups),
        len(todo),
        len(rows) - sum(len(p) for _, p in todo),
    )
    bar = tqdm(
        todo, desc=bench.benchmark_name, unit="req", disable=not _show_progress(show_progress)
    )
    metric_logger = MicroMetricLogger()
    by_id = rows_by_id(rows) if has_follow_ups(bench) else None
    requests_done, generated = len(groups) - len(todo), 0
    report(requests_done, len(groups), generated)
    for group, pending in bar:
        records = _answer_group(adapter, group, pending, gen, req, tasks)
        if by_id is not None:
            apply_follow_ups(bench, adapter, by_id, records, (gen, req), seed_request)
        metric_logger.flush()
        cell_store.append_predictions(result_dir / cell_store.PREDICTIONS_FILE, records)
        done.update({int(rec["row_id"]): rec for rec in records})
        requests_done += 1
        generated += sum(int(rec.get("generated_tokens") or 0) for rec in records)
        report(requests_done, len(groups), generated)


def _close_cell(bench: Benchmark, result_dir: Path, results: pd.DataFrame) -> dict[str, Any]:
    """Write raw_results.csv, score, write metrics.json last (it marks the cell complete)."""
    cell_store.write_raw_results(result_dir, csv_ready(results))
    metrics = {**bench.post_run_evaluate(results), **_summary(results)}
    metrics = cell_store.write_metrics(result_dir, metrics)
    logger.info("%s: overall_score %s", bench.benchmark_name, metrics.get("overall_score"))
    return metrics


def run_cell(
    bench: Benchmark,
    adapter: ModelAdapter,
    result_dir: Path,
    generation_kwargs: dict[str, Any] | None,
    request_kwargs: dict[str, Any] | None,
    show_progress: bool | None,
    on_phase: Callable[[str], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """See :meth:`Benchmark.run_benchmark`."""
    report = on_phase or (lambda phase: None)
    gen, req, max_requests = check_kwargs(generation_kwargs, request_kwargs)
    cell_store.start_run(result_dir)
    report(PHASE_DATASET)
    bench.prepare(adapter)
    rows = prepare_rows(
        bench.load_datasets(),
        f"benchmark {bench.benchmark_name!r} data",
        max_requests,
        gen.get("max_new_tokens"),
    )
    report(PHASE_RUN)
    run_config = {
        "benchmark": bench.describe(),
        "generation_kwargs": dict(generation_kwargs or {}),
        "request_kwargs": dict(request_kwargs or {}),
    }
    groups = group_rows(rows, bench.request_overrides)
    done = _open_cell(adapter, result_dir, run_config, groups)
    _answer_pending(
        bench, adapter, rows, groups, done, (gen, req), result_dir, show_progress, on_progress
    )
    return _close_cell(bench, result_dir, build_results(rows, done))
