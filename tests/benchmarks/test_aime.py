"""aime: boxed extraction with Qwen2.5-Math's fallbacks, integer answers, avg@k with seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_attention_hub.adapters import ModelAdapterHF
from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.aime import extract_answer, is_correct, normalize_integer

from .helpers import EchoAdapter


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    # HuggingFaceH4/aime_2024's columns (id, problem, solution, answer, url, year)
    rows = [
        {"id": 60, "problem": " Find x. ", "solution": "...", "answer": "33", "year": "2024"},
        {"id": 61, "problem": "Find y.", "solution": "...", "answer": "204", "year": "2024"},
    ]
    folder = tmp_path / "aime"
    folder.mkdir()
    (folder / "2024.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    # opencompass/AIME2025 calls the problem "question"
    (folder / "2025.json").write_text(json.dumps([{"question": "Find z.", "answer": "7"}]), "utf-8")
    return folder


def test_extraction_follows_qwen25_math_fallbacks() -> None:
    assert extract_answer("so \\boxed{12} first, then \\boxed{\\frac{3}{4}}") == "\\frac{3}{4}"
    assert extract_answer("\\boxed{\\text{33}}.") == "\\text{33}"
    assert extract_answer("$\\boxed 5$ done") == "5"
    assert extract_answer("The final answer is $204$. I hope it is correct.") == "204"
    assert extract_answer("Thus the answer is 17.") == "17"
    assert extract_answer("final answer is: 9") == "9"
    assert extract_answer("答案是 42\n\nmore") == "42"
    assert extract_answer("we get 1,234 and then 56.") == "56"  # the last number
    assert extract_answer("no digits") == ""
    assert extract_answer("boxed") == ""


def test_integer_normalisation() -> None:
    assert normalize_integer("033") == 33
    assert normalize_integer("\\text{33}") == 33
    assert normalize_integer("$1,000$") == 1000
    assert normalize_integer("45^\\circ") == 45
    assert normalize_integer("33.0") == 33
    assert normalize_integer("3.5") is None
    assert normalize_integer("\\frac{3}{4}") is None
    assert is_correct("... \\boxed{033}", "33")
    assert not is_correct("... \\boxed{34}", "33")
    with pytest.raises(ValueError, match="not an integer"):
        is_correct("\\boxed{1}", "x")


def test_short_prefix_is_dropped_as_strip_string_drops_it() -> None:
    # Qwen2.5-Math's and lm-eval's strip_string: one "=", at most 2 characters before it
    assert is_correct("so \\boxed{x = 25}", "25")
    assert is_correct("\\boxed{k=25}", 25)
    assert is_correct("$\\boxed{n = 1,000}$", "1000")
    assert normalize_integer("$m + n = 204$") is None  # "m + n " is longer than 2
    assert normalize_integer("ab = 25") is None
    assert normalize_integer("x = y = 25") is None  # two "="
    assert normalize_integer("x  = 25") is None  # "x  " is 3 characters, spaces counted


def test_loader_repeats_problems_and_reads_both_schemas(data_dir: Path) -> None:
    bench = create_benchmark_instance("aime", data_dir=data_dir, num_samples_per_question=2)
    rows = bench.load_datasets()
    assert list(rows["task"]) == ["2024"] * 4 + ["2025"] * 2
    assert list(rows["sample_index"]) == [0, 1, 0, 1, 0, 1]
    assert list(rows["problem_id"][:4]) == ["2024-60", "2024-60", "2024-61", "2024-61"]
    first = rows.iloc[0]
    assert first["context"] + first["question"] == (
        "Find x.\nPlease reason step by step, and put your final answer within \\boxed{}."
    )
    assert first["max_new_tokens"] == 32768 and rows.iloc[4]["context"] == "Find z."
    assert bench.describe()["options"] == {"num_samples_per_question": 2, "max_new_tokens": 32768}
    with pytest.raises(ValueError, match="num_samples_per_question must be a positive int"):
        create_benchmark_instance("aime", num_samples_per_question=0)


def test_avg_at_k_and_one_seed_per_sample(data_dir: Path, tmp_path: Path) -> None:
    bench = create_benchmark_instance(
        "aime", ["2024"], data_dir=data_dir, num_samples_per_question=2, max_new_tokens=64
    )
    adapter = EchoAdapter(answers={})
    # the echo adapter answers "echo: <question>": no number, all wrong; then score by hand
    gen = {"do_sample": True, "temperature": 0.6, "top_p": 0.95, "seed": 10}
    bench.run_benchmark(adapter, tmp_path / "cell", generation_kwargs=gen, show_progress=False)
    # each (problem, sample) is its own request; sample i samples with seed 10 + i
    seeds = [call["generation_kwargs"]["seed"] for call in adapter.calls]
    assert seeds == [10, 11, 10, 11]
    assert all(call["generation_kwargs"]["temperature"] == 0.6 for call in adapter.calls)
    assert gen["seed"] == 10
    results = bench.load_datasets().assign(
        predicted_answer=["\\boxed{33}", "\\boxed{32}", "\\boxed{204}", "the answer is 204"]
    )
    metrics = bench.post_run_evaluate(results)
    assert metrics["task_scores"] == {"2024": 75.0}
    assert metrics["accuracy"]["2024"] == {
        "avg_at_k": 75.0,
        "pass_at_k": 100.0,
        "num_problems": 2,
        "samples_per_problem": 2,
    }


@pytest.mark.slow
def test_samples_differ_with_a_real_model(
    tiny_model_dir: str, data_dir: Path, tmp_path: Path
) -> None:
    adapter = ModelAdapterHF(tiny_model_dir, device="cpu")
    bench = create_benchmark_instance(
        "aime", ["2025"], data_dir=data_dir, num_samples_per_question=3, max_new_tokens=12
    )
    gen = {"do_sample": True, "temperature": 1.0, "seed": 3}
    bench.run_benchmark(adapter, tmp_path / "cell", generation_kwargs=gen, show_progress=False)
    lines = (tmp_path / "cell" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    answers = [json.loads(line)["predicted_answer"] for line in lines]
    assert len(answers) == 3 and len(set(answers)) == 3  # three different samples
    again = create_benchmark_instance(
        "aime", ["2025"], data_dir=data_dir, num_samples_per_question=1, max_new_tokens=12
    )
    metrics = again.run_benchmark(
        adapter, tmp_path / "one", generation_kwargs=gen, show_progress=False
    )
    first = json.loads((tmp_path / "one" / "predictions.jsonl").read_text().splitlines()[0])
    assert first["predicted_answer"] == answers[0]  # sample 0 is the k=1 run
    assert metrics["accuracy"]["2025"]["samples_per_problem"] == 1
