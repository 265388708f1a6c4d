"""Second requests after a row's first answer (``Benchmark.follow_up``), e.g. LongBench-v2's
answer extraction after a chain of thought. Each runs as its own request, in order, right
after the first answers of its group and before the group's predictions are logged, so a
resumed run never sees a half-answered row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

_BASE_MODULE = "sparse_attention_hub.benchmarks.base"

if TYPE_CHECKING:
    from sparse_attention_hub.adapters.base import ModelAdapter
    from sparse_attention_hub.benchmarks.base import Benchmark


def has_follow_ups(bench: Benchmark) -> bool:
    """Whether ``bench`` overrides :meth:`Benchmark.follow_up` (else nothing is done per row).

    Read from where the method is defined, so this module need not import the base class
    (which imports the run loop, which imports this module).
    """
    return type(bench).follow_up.__module__ != _BASE_MODULE


def rows_by_id(rows: pd.DataFrame) -> dict[int, dict[Any, Any]]:
    """Every row as a dict, by row id."""
    return {int(row["row_id"]): row for row in rows.to_dict("records")}


def apply_follow_ups(
    bench: Benchmark,
    adapter: ModelAdapter,
    rows: Mapping[int, Mapping[str, Any]],
    records: list[dict[str, Any]],
    kwargs: tuple[dict[str, Any], dict[str, Any]],
    seed_request: Callable[[int], None],
) -> None:
    """Ask each record's follow-up (if any) and make its answer the record's prediction.

    ``kwargs`` are the caller's (generation_kwargs, request_kwargs). The first answer moves to
    ``first_answer``; the follow-up's generated tokens go to ``follow_up_generated_tokens``.
    """
    from sparse_attention_hub.adapters.base import Request

    generation_kwargs, request_kwargs = kwargs
    for record in records:
        row = rows[int(record["row_id"])]
        spec = bench.follow_up(row, str(record["predicted_answer"]))
        if spec is None:
            continue
        gen = dict(generation_kwargs)
        limits = [v for v in (spec.max_new_tokens, gen.get("max_new_tokens")) if v is not None]
        if limits:
            gen["max_new_tokens"] = min(limits)
        req = {
            **request_kwargs,
            **bench.request_overrides(str(row["task"])),
            "request_index": record["request_index"],
        }
        seed_request(int(record["request_index"]))
        response = adapter.process_request(
            Request(context=spec.context, questions=spec.question), gen, req
        )
        answer = response.responses
        meta = (response.metadata or [{}])[0]
        record["first_answer"] = record["predicted_answer"]
        record["predicted_answer"] = answer if isinstance(answer, str) else answer[0]
        record["follow_up_generated_tokens"] = meta.get("generated_tokens")
