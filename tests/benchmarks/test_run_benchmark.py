"""run_benchmark: grouping, max_new_tokens, max_requests, resume, the cell files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparse_attention_hub.adapters.base import Request, RequestResponse
from sparse_attention_hub.benchmarks import Benchmark, create_benchmark_instance
from sparse_attention_hub.benchmarks.mock_benchmark import mock_rows
from sparse_attention_hub.cell_store import read_predictions

from .helpers import EchoAdapter

CORRECT = {
    "How many apple trees does Mara grow?": "Forty trees.",
    "Who drives the fruit to the market?": "tomas",
    "At what temperature does water boil at sea level, in degrees Celsius?": "100 degrees",
}


def _run(tmp: Path, adapter: EchoAdapter, **kwargs: Any) -> dict[str, Any]:
    bench = create_benchmark_instance("mock_benchmark")
    return bench.run_benchmark(adapter, tmp, show_progress=False, **kwargs)


def test_one_request_per_context_and_scores(tmp_path: Path) -> None:
    adapter = EchoAdapter(answers=CORRECT)
    metrics = _run(tmp_path, adapter)
    rows = mock_rows()
    assert len(adapter.calls) == rows["context"].nunique() == 3
    assert [len(c["questions"]) for c in adapter.calls] == [3, 2, 3]
    assert [c["request_kwargs"]["request_index"] for c in adapter.calls] == [0, 1, 2]
    assert all(c["answer_prefix"] == "Answer:" for c in adapter.calls)
    # reading: 2 of 3 right, science: 1 of 2, travel: 0 of 3
    assert metrics["task_scores"] == {"reading": 66.67, "science": 50.0, "travel": 0.0}
    assert metrics["overall_score"] == round((66.67 + 50.0 + 0.0) / 3, 2)
    assert metrics["num_rows"] == 8 and metrics["num_requests"] == 3
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))


def test_cell_files(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"fingerprint": "abc", "resolved_config": {"x": 1}})
    )
    _run(tmp_path, EchoAdapter(), generation_kwargs={"max_new_tokens": 8})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["fingerprint"] == "abc" and config["resolved_config"] == {"x": 1}
    assert config["benchmark"]["name"] == "mock_benchmark"
    assert config["generation_kwargs"] == {"max_new_tokens": 8}
    assert config["adapter"]["model_name"] == "echo-model"
    raw = pd.read_csv(tmp_path / "raw_results.csv")
    assert "context" not in raw.columns
    assert {"row_id", "question", "task", "answer", "predicted_answer", "generated_tokens"} <= set(
        raw.columns
    )
    assert raw["predicted_answer"].iloc[0] == "echo: How many apple trees does Mara grow?"
    records = read_predictions(tmp_path / "predictions.jsonl")
    assert sorted(r["row_id"] for r in records) == list(range(8))
    assert {"prefill_seconds", "decode_seconds", "truncated_tokens", "context_tokens"} <= set(
        records[0]
    )


def test_max_new_tokens_is_min_of_row_and_caller_and_dicts_untouched(tmp_path: Path) -> None:
    adapter = EchoAdapter()
    gen = {"max_new_tokens": 8, "do_sample": False}
    req = {"max_requests": 4, "truncation": "middle"}
    gen_before, req_before = copy.deepcopy(gen), copy.deepcopy(req)
    metrics = _run(tmp_path / "a", adapter, generation_kwargs=gen, request_kwargs=req)
    assert gen == gen_before and req == req_before
    assert metrics["num_rows"] == 4
    assert [c["questions"] for c in adapter.calls] == [
        list(mock_rows()["question"][:3]),
        [mock_rows()["question"][3]],
    ]
    for call in adapter.calls:
        assert call["generation_kwargs"] == {"max_new_tokens": 8, "do_sample": False}
        assert "max_requests" not in call["request_kwargs"]
        assert call["request_kwargs"]["truncation"] == "middle"
    adapter2 = EchoAdapter()
    _run(tmp_path / "b", adapter2, generation_kwargs={"max_new_tokens": 1000})
    assert {c["generation_kwargs"]["max_new_tokens"] for c in adapter2.calls} == {16}


class _MixedLengths(Benchmark):
    benchmark_name = "mixed"
    all_datasets = ()

    def load_datasets(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "context": ["ctx"] * 4,
                "question": ["q1", "q2", "q3", "q4"],
                "answer_prefix": [""] * 4,
                "max_new_tokens": [4, 32, 4, 32],
                "task": ["t"] * 4,
                "answer": [["x"]] * 4,
            }
        )

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        return {"overall_score": 0.0, "task_scores": {"t": 0.0}}


def test_rows_with_different_max_new_tokens_get_separate_requests(tmp_path: Path) -> None:
    adapter = EchoAdapter()
    _MixedLengths().run_benchmark(adapter, tmp_path, show_progress=False)
    assert [(c["questions"], c["generation_kwargs"]["max_new_tokens"]) for c in adapter.calls] == [
        (["q1", "q3"], 4),
        (["q2", "q4"], 32),
    ]


def _comparable(cell: Path) -> tuple[str, str, list[dict[str, Any]]]:
    records = read_predictions(cell / "predictions.jsonl")
    for record in records:
        for timing in ("request_seconds", "prefill_seconds", "decode_seconds"):
            record.pop(timing)
    return (cell / "raw_results.csv").read_text(), (cell / "metrics.json").read_text(), records


def test_resume_after_crash_equals_uninterrupted_run(tmp_path: Path) -> None:
    _run(tmp_path / "clean", EchoAdapter(answers=CORRECT))
    cell = tmp_path / "crashed"
    crashing = EchoAdapter(answers=CORRECT, fail_after=1)
    with pytest.raises(RuntimeError, match="injected failure"):
        _run(cell, crashing)
    assert not (cell / "metrics.json").exists()
    assert not (cell / "raw_results.csv").exists()
    assert len(read_predictions(cell / "predictions.jsonl")) == 3
    resumed = EchoAdapter(answers=CORRECT)
    _run(cell, resumed)
    assert [c["request_kwargs"]["request_index"] for c in resumed.calls] == [1, 2]
    assert _comparable(cell) == _comparable(tmp_path / "clean")
    again = EchoAdapter(answers=CORRECT)
    _run(cell, again)
    assert again.calls == []


def test_torn_last_line_is_dropped_and_rerun(tmp_path: Path) -> None:
    _run(tmp_path / "clean", EchoAdapter())
    cell = tmp_path / "torn"
    with pytest.raises(RuntimeError):
        _run(cell, EchoAdapter(fail_after=2))
    with open(cell / "predictions.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"row_id": 7, "predicted_ans')
    (cell / "metrics.json").write_text("{}")  # a stale marker must not survive a rerun
    resumed = EchoAdapter(fail_after=0)
    with pytest.raises(RuntimeError):
        _run(cell, resumed)
    assert not (cell / "metrics.json").exists()
    resumed = EchoAdapter()
    _run(cell, resumed)
    assert len(resumed.calls) == 1
    assert _comparable(cell) == _comparable(tmp_path / "clean")


def test_bad_max_requests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_requests"):
        _run(tmp_path, EchoAdapter(), request_kwargs={"max_requests": 0})


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    class _NoPrefix(_MixedLengths):
        def load_datasets(self) -> pd.DataFrame:
            return super().load_datasets().drop(columns=["answer_prefix"])

    with pytest.raises(ValueError, match="'answer_prefix'"):
        _NoPrefix().run_benchmark(EchoAdapter(), tmp_path, show_progress=False)


class _WatchingAdapter(EchoAdapter):
    """Checks, at every request, that the cell is not yet marked complete."""

    def __init__(self, cell: Path) -> None:
        super().__init__()
        self.cell = cell

    def process_request(
        self,
        request: Request,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
    ) -> RequestResponse:
        assert not (self.cell / "metrics.json").exists()
        assert not (self.cell / "raw_results.csv").exists()
        return super().process_request(request, generation_kwargs, request_kwargs)


def test_metrics_json_appears_only_at_the_end(tmp_path: Path) -> None:
    adapter = _WatchingAdapter(tmp_path)
    _run(tmp_path, adapter)
    assert len(adapter.calls) == 3 and (tmp_path / "metrics.json").exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        _run(tmp_path, EchoAdapter(fail_after=1), generation_kwargs={"max_new_tokens": 8})
    with pytest.raises(ValueError, match="different generation_kwargs"):
        _run(tmp_path, EchoAdapter(), generation_kwargs={"max_new_tokens": 9})
    # max_requests may change between runs: the rows are a prefix of the same order
    _run(
        tmp_path,
        EchoAdapter(),
        generation_kwargs={"max_new_tokens": 8},
        request_kwargs={"max_requests": 6},
    )
    metrics = _run(tmp_path, EchoAdapter(), generation_kwargs={"max_new_tokens": 8})
    assert metrics["num_rows"] == 8


class _DrawingAdapter(EchoAdapter):
    """Answers with a draw from torch's global RNG, as a sampling masker would consume it."""

    def process_request(
        self,
        request: Request,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
    ) -> RequestResponse:
        import torch

        response = super().process_request(request, generation_kwargs, request_kwargs)
        draws = [f"{torch.rand(()).item():.6f}" for _ in request.question_list]
        return RequestResponse(responses=draws, metadata=response.metadata)


def test_random_draws_are_reproducible_and_survive_a_resume(tmp_path: Path) -> None:
    import torch

    _run(tmp_path / "clean", _DrawingAdapter())
    clean = [r["predicted_answer"] for r in read_predictions(tmp_path / "clean/predictions.jsonl")]
    assert len(set(clean)) == len(clean)  # real draws, not a constant
    cell = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="injected failure"):
        _run(cell, _DrawingAdapter(fail_after=1))
    torch.rand(1000)  # whatever ran in between must not matter
    _run(cell, _DrawingAdapter())
    resumed = [r["predicted_answer"] for r in read_predictions(cell / "predictions.jsonl")]
    assert resumed == clean
