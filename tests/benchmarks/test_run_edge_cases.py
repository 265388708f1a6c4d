"""run_benchmark edge cases: mixed None/int max_new_tokens, list cells in the CSV, rows
without gold answers, reruns of a complete cell, max_requests past the end, unicode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sparse_attention_hub.benchmarks import Benchmark, create_benchmark_instance
from sparse_attention_hub.benchmarks.scoring import mean_score, score_by_task, string_match_all
from sparse_attention_hub.cell_store import read_predictions

from .helpers import EchoAdapter


class _Rows(Benchmark):
    """A benchmark over a fixed frame, scored with RULER's string_match_all."""

    benchmark_name = "rows"
    all_datasets = ()

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__()
        self.frame = frame

    def load_datasets(self) -> pd.DataFrame:
        return self.frame.copy()

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        scores = score_by_task(results_df, lambda _task: string_match_all)
        return {"overall_score": mean_score(scores.values()), "task_scores": scores}


def _frame(**columns: Any) -> pd.DataFrame:
    n = len(columns["question"])
    base: dict[str, Any] = {
        "context": ["ctx"] * n,
        "answer_prefix": [""] * n,
        "max_new_tokens": [None] * n,
        "task": ["t"] * n,
        "answer": [["x"]] * n,
    }
    return pd.DataFrame({**base, **columns})


def test_rows_mixing_none_and_int_max_new_tokens_share_requests(tmp_path: Path) -> None:
    # a column [None, None, 8] is float [nan, nan, 8.0] in pandas: NaN keys never match, so
    # each row got its own request with max_new_tokens=nan, and the last one a float 8.0
    frame = _frame(question=["q1", "q2", "q3"], max_new_tokens=[None, None, 8])
    adapter = EchoAdapter()
    _Rows(frame).run_benchmark(adapter, tmp_path, show_progress=False)
    calls = [(c["questions"], c["generation_kwargs"].get("max_new_tokens")) for c in adapter.calls]
    assert calls == [(["q1", "q2"], None), (["q3"], 8)]
    assert type(adapter.calls[1]["generation_kwargs"]["max_new_tokens"]) is int
    csv = pd.read_csv(tmp_path / "raw_results.csv")
    assert csv["max_new_tokens"].isna().tolist() == [True, True, False]


def test_raw_results_csv_lists_read_back_as_json(tmp_path: Path) -> None:
    answers = [["Paris", "paris, France"], np.array(["北京", "Běijīng"], dtype=object)]
    frame = _frame(question=["capital of France?", "首都?"], answer=answers)
    replies = {"capital of France?": "Paris", "首都?": "北京 Běijīng"}
    metrics = _Rows(frame).run_benchmark(
        EchoAdapter(answers=replies), tmp_path, show_progress=False
    )
    assert metrics["task_scores"] == {"t": 75.0}
    csv = pd.read_csv(tmp_path / "raw_results.csv")
    assert [json.loads(cell) for cell in csv["answer"]] == [
        ["Paris", "paris, France"],
        ["北京", "Běijīng"],
    ]
    assert csv["predicted_answer"].tolist() == ["Paris", "北京 Běijīng"]
    text = (tmp_path / "raw_results.csv").read_text(encoding="utf-8")
    assert "北京" in text and "\\u" not in text  # readable, not escaped


@pytest.mark.parametrize("missing", [None, float("nan"), []])
def test_a_row_without_gold_answer_is_named(tmp_path: Path, missing: Any) -> None:
    frame = _frame(question=["q1", "q2"], answer=[["x"], missing])
    with pytest.raises(ValueError, match=r"task 't': row\(s\) \[1\] have no gold answer"):
        _Rows(frame).run_benchmark(EchoAdapter(), tmp_path, show_progress=False)
    # the predictions are kept: after fixing the data, the rerun asks nothing again
    adapter = EchoAdapter()
    fixed = _frame(question=["q1", "q2"], answer=[["x"], ["y"]])
    _Rows(fixed).run_benchmark(adapter, tmp_path, show_progress=False)
    assert adapter.calls == []


def test_rerun_of_a_complete_cell_asks_nothing_and_rewrites_the_same_files(
    tmp_path: Path,
) -> None:
    bench = create_benchmark_instance("mock_benchmark")
    first = bench.run_benchmark(EchoAdapter(), tmp_path, show_progress=False)
    csv = (tmp_path / "raw_results.csv").read_text()
    adapter = EchoAdapter()
    again = bench.run_benchmark(adapter, tmp_path, show_progress=False)
    assert adapter.calls == [] and again == first
    assert (tmp_path / "raw_results.csv").read_text() == csv
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(first))


def test_max_requests_past_the_end_runs_every_row(tmp_path: Path) -> None:
    bench = create_benchmark_instance("mock_benchmark")
    metrics = bench.run_benchmark(
        EchoAdapter(), tmp_path, request_kwargs={"max_requests": 10_000}, show_progress=False
    )
    assert metrics["num_rows"] == len(bench.load_datasets())


def test_unicode_predictions_survive_the_resume_log(tmp_path: Path) -> None:
    frame = _frame(question=["q1", "q2"], context=["上下文 ✓", "контекст"])
    replies = {"q1": "答案 🙂", "q2": "ответ\u2028x"}
    with pytest.raises(RuntimeError):
        _Rows(frame).run_benchmark(
            EchoAdapter(answers=replies, fail_after=1), tmp_path, show_progress=False
        )
    _Rows(frame).run_benchmark(EchoAdapter(answers=replies), tmp_path, show_progress=False)
    records = read_predictions(tmp_path / "predictions.jsonl")
    assert [r["predicted_answer"] for r in records] == ["答案 🙂", "ответ\u2028x"]
    csv = pd.read_csv(tmp_path / "raw_results.csv")
    assert csv["predicted_answer"].tolist() == ["答案 🙂", "ответ\u2028x"]


def test_a_context_shared_by_two_subsets_is_one_request_scored_per_task(tmp_path: Path) -> None:
    frame = _frame(
        question=["q1", "q2", "q3"],
        context=["same", "same", "other"],
        task=["a", "b", "b"],
        answer=[["x"], ["y"], ["z"]],
    )
    adapter = EchoAdapter(answers={"q1": "x", "q2": "no", "q3": "z"})
    metrics = _Rows(frame).run_benchmark(adapter, tmp_path, show_progress=False)
    assert [c["questions"] for c in adapter.calls] == [["q1", "q2"], ["q3"]]
    assert metrics["task_scores"] == {"a": 100.0, "b": 50.0}
    assert metrics["num_requests"] == 2


def test_max_new_tokens_from_csv_text(tmp_path: Path) -> None:
    # local CSV data is read with keep_default_na=False: a missing value is ""
    frame = _frame(question=["q1", "q2"], max_new_tokens=["", "8"])
    adapter = EchoAdapter()
    _Rows(frame).run_benchmark(adapter, tmp_path / "a", show_progress=False)
    assert [c["generation_kwargs"].get("max_new_tokens") for c in adapter.calls] == [None, 8]
    bad = _frame(question=["q1"], max_new_tokens=["lots"])
    with pytest.raises(ValueError, match=r"'max_new_tokens' must hold ints.*'lots'"):
        _Rows(bad).run_benchmark(EchoAdapter(), tmp_path / "b", show_progress=False)


def test_a_bare_number_answer_is_one_gold(tmp_path: Path) -> None:
    # JSON data may hold a count as a number: it was 'int' object is not iterable
    frame = _frame(question=["q1", "q2"], answer=[123, np.int64(7)])
    adapter = EchoAdapter(answers={"q1": "it is 123", "q2": "six"})
    metrics = _Rows(frame).run_benchmark(adapter, tmp_path, show_progress=False)
    assert metrics["task_scores"] == {"t": 50.0}
