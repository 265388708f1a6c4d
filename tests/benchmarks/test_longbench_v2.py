"""longbench_v2: official prompts, answer extraction and buckets, on local files in the hub schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.longbench_v2 import (
    bucket_accuracy,
    extract_answer,
    score_subset,
)

from .helpers import EchoAdapter


def _item(i: int, difficulty: str, length: str, answer: str, **extra: Any) -> dict[str, Any]:
    row = {
        "_id": f"id{i}",
        "domain": "Single-Document QA",
        "sub_domain": "Academic",
        "difficulty": difficulty,
        "length": length,
        "question": f"  Question {i}? ",
        "choice_A": "alpha",
        "choice_B": "beta",
        "choice_C": "gamma",
        "choice_D": "delta",
        "answer": answer,
        "context": f"\n Document {i} text. \n",
    }
    row.update(extra)
    return row


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    items = [
        _item(0, "easy", "short", "A"),
        _item(1, "hard", "short", "B"),
        _item(2, "hard", "medium", "C"),
        _item(3, "easy", "long", "D"),
    ]
    folder = tmp_path / "data_dir"
    folder.mkdir()
    (folder / "data.json").write_text(json.dumps(items), encoding="utf-8")  # the hub's file
    return folder


def test_loader_builds_the_official_prompts(data_dir: Path) -> None:
    rows = create_benchmark_instance("longbench_v2", data_dir=data_dir).load_datasets()
    assert list(rows["task"]) == ["0shot"] * 4 + ["cot"] * 4
    assert list(rows["max_new_tokens"]) == [128] * 4 + [1024] * 4
    zero, cot = rows.iloc[0], rows.iloc[4]
    official_zero = (
        "Please read the following text and answer the question below.\n\n<text>\n"
        "Document 0 text.\n</text>\n\nWhat is the correct answer to this question: "
        "Question 0?\nChoices:\n(A) alpha\n(B) beta\n(C) gamma\n(D) delta\n\n"
        'Format your response as follows: "The correct answer is (insert answer here)".'
    )
    assert zero["context"] + zero["question"] == official_zero
    assert zero["context"].endswith("Document 0 text.")  # the document is prefilled once
    assert (cot["context"] + cot["question"]).endswith(
        "(D) delta\n\nLet\u2019s think step by step:"
    )
    assert cot["context"].startswith("Please read the following text and answer the questions")
    assert zero["answer_prefix"] == "" and zero["answer"] == "A"


def test_placeholders_are_replaced_in_chain_as_pred_py_does(tmp_path: Path) -> None:
    # pred.py replaces $Q$ after inserting the document, so "$Q$" inside the document becomes
    # the question too; the split still reproduces the full prompt.
    items = [_item(0, "easy", "short", "A", context="see $Q$ here")]
    (tmp_path / "data.jsonl").write_text(json.dumps(items[0]) + "\n", encoding="utf-8")
    rows = create_benchmark_instance("longbench_v2", ["0shot"], data_dir=tmp_path).load_datasets()
    assert rows.iloc[0]["context"].endswith("see Question 0? here")


def test_extract_answer_is_case_sensitive_and_strips_stars() -> None:
    assert extract_answer("The correct answer is (B).") == "B"
    assert extract_answer("**The correct answer is C**") == "C"
    assert extract_answer("The correct answer is (E) or D") is None  # (E) fails, bare D is "("
    assert extract_answer("the correct answer is (A)") is None  # lower case: no answer
    assert extract_answer("The correct answer is: (A)") is None
    assert extract_answer("") is None


def test_buckets_and_empty_outputs_as_result_py() -> None:
    frame = pd.DataFrame(
        {
            "predicted_answer": [
                "The correct answer is (A)",  # easy short, right
                "the correct answer is (B)",  # hard short, lower case: wrong
                "",  # hard medium: empty, left out everywhere
                "The correct answer is D",  # easy long, right
            ],
            "answer": ["A", "B", "C", "D"],
            "difficulty": ["easy", "hard", "hard", "easy"],
            "length": ["short", "short", "medium", "long"],
        }
    )
    scores = score_subset(frame)
    assert scores == {
        "overall": 66.7,
        "easy": 100.0,
        "hard": 0.0,
        "short": 50.0,
        "medium": None,  # its only row was empty: the official script divides by zero
        "long": 100.0,
        "num_scored": 3,
        "num_empty": 1,
    }
    # a whitespace-only output is not '' in pred.py: it is kept and wrong
    assert score_subset(frame.assign(predicted_answer=[" "] * 4))["overall"] == 0.0
    assert bucket_accuracy([]) == dict.fromkeys(
        ("overall", "easy", "hard", "short", "medium", "long")
    )


def test_run_writes_bucketed_metrics(data_dir: Path, tmp_path: Path) -> None:
    bench = create_benchmark_instance("longbench_v2", ["0shot"], data_dir=data_dir)
    rows = bench.load_datasets()
    replies = ["The correct answer is (A)", "The correct answer is (C)", "", "(D)"]
    answers = dict(zip(rows["question"], replies, strict=True))
    metrics = bench.run_benchmark(EchoAdapter(answers=answers), tmp_path / "c", show_progress=False)
    assert metrics["task_scores"] == {"0shot": 33.3}
    assert metrics["overall_score"] == 33.3
    detail = metrics["accuracy"]["0shot"]
    assert (detail["easy"], detail["hard"], detail["medium"]) == (50.0, 0.0, None)
    saved = json.loads((tmp_path / "c" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["accuracy"]["0shot"]["num_empty"] == 1


def test_cot_asks_the_official_second_question(data_dir: Path, tmp_path: Path) -> None:
    # pred.py: the chain of thought (1024 tokens), then 0shot_cot_ans.txt (no document, the
    # stripped chain of thought, 128 tokens); the letter comes from the second answer
    bench = create_benchmark_instance("longbench_v2", ["cot"], data_dir=data_dir)
    rows = bench.load_datasets()
    second = (
        "\n\nBased on the above, what is the single, most likely answer choice? Format your "
        'response as follows: "The correct answer is (insert answer here)".'
    )
    thoughts = ["  A looks right. ", "", "Hmm, C.", "So D."]
    answers = dict(zip(rows["question"], thoughts, strict=True))
    answers[second] = "The correct answer is (A)"
    adapter = EchoAdapter(answers=answers)
    gen = {"max_new_tokens": 512}
    metrics = bench.run_benchmark(
        adapter, tmp_path / "c", generation_kwargs=gen, show_progress=False
    )
    follow_ups = [c for c in adapter.calls if c["questions"] == [second]]
    assert len(follow_ups) == 3  # the empty chain of thought gets no second question
    first = follow_ups[0]
    assert first["context"] == (
        "Please read the following text and answer the questions below.\n\nThe text is too "
        "long and omitted here.\n\nWhat is the correct answer to this question: Question 0?"
        "\nChoices:\n(A) alpha\n(B) beta\n(C) gamma\n(D) delta\n\nLet\u2019s think step by "
        "step: A looks right."
    )
    assert first["generation_kwargs"]["max_new_tokens"] == 128
    thinking = [c for c in adapter.calls if c["questions"] != [second]]
    assert [c["generation_kwargs"]["max_new_tokens"] for c in thinking] == [
        512
    ] * 4  # min(1024, 512)
    assert [c["request_kwargs"]["request_index"] for c in adapter.calls[:2]] == [0, 0]
    detail = metrics["accuracy"]["cot"]
    # every second answer says (A): right for item 0 only; item 1 (empty) left out
    assert (detail["num_scored"], detail["num_empty"], detail["overall"]) == (3, 1, 33.3)
    raw = pd.read_csv(tmp_path / "c" / "raw_results.csv", keep_default_na=False)
    assert raw["first_answer"].tolist() == thoughts
    assert raw["predicted_answer"].tolist()[:2] == ["The correct answer is (A)", ""]


def test_zero_shot_rows_get_no_follow_up(data_dir: Path, tmp_path: Path) -> None:
    bench = create_benchmark_instance("longbench_v2", ["0shot"], data_dir=data_dir)
    adapter = EchoAdapter()
    bench.run_benchmark(adapter, tmp_path / "z", show_progress=False)
    assert len(adapter.calls) == 4
    raw = pd.read_csv(tmp_path / "z" / "raw_results.csv", keep_default_na=False)
    assert "first_answer" not in raw.columns


def test_missing_column_and_offline_hub(tmp_path: Path) -> None:
    bad = [{k: v for k, v in _item(0, "easy", "short", "A").items() if k != "choice_C"}]
    (tmp_path / "data.json").write_text(json.dumps(bad), encoding="utf-8")
    bench = create_benchmark_instance("longbench_v2", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"data\.json is missing required column\(s\) 'choice_C'"):
        bench.load_datasets()
    with pytest.raises(RuntimeError, match=r"THUDM/LongBench-v2.*data_dir="):
        create_benchmark_instance("longbench_v2").load_datasets()
