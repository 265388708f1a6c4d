"""The new benchmarks end to end with the real adapter on a tiny random model (local data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance

pytestmark = pytest.mark.slow

DOC = "The sky was grey over the harbour. Mara counted the boats: there were seven. " * 4


@pytest.fixture(scope="module")
def adapter(tiny_model_dir: str) -> Any:
    from sparse_attention_hub.adapters import ModelAdapterHF

    return ModelAdapterHF(tiny_model_dir)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path.parent


def _cases(root: Path) -> list[tuple[str, list[str], Path, dict[str, Any]]]:
    lb2 = {
        "_id": "a",
        "difficulty": "hard",
        "length": "short",
        "question": "How many boats?",
        "choice_A": "seven",
        "choice_B": "two",
        "choice_C": "one",
        "choice_D": "none",
        "answer": "A",
        "context": DOC,
    }
    ib = {"id": 0, "context": DOC, "input": "What is the pass key?", "answer": ["7"]}
    cloze = str([{"Q": "<mask-0> counted.", "A": {"<mask-0>": "Mara"}}])
    loogle = {"input": DOC, "title": "t", "qa_pairs": cloze, "output": "None"}
    cut = len("Story:\n" + DOC)
    zs = {
        "id": "q",
        "input": "Story:\n" + DOC + "\n\nQuestion: (A) 7 (B) 2\n\nAnswer:",
        "output": "(A) 7",
        "document_end_index": cut,
    }
    aime = {"id": 1, "problem": "What is 3 + 4?", "answer": "7"}
    return [
        ("longbench_v2", ["cot"], _jsonl(root / "lb2" / "data.jsonl", [lb2]), {}),
        ("infinite_bench", ["passkey"], _jsonl(root / "ib" / "passkey.jsonl", [ib]), {}),
        ("loogle", ["shortdep_cloze"], _jsonl(root / "lg" / "shortdep_cloze.jsonl", [loogle]), {}),
        (
            "zero_scrolls",
            ["quality"],
            _jsonl(root / "zs" / "quality" / "validation.jsonl", [zs]).parent,
            {},
        ),
        ("aime", ["2024"], _jsonl(root / "aime" / "2024.jsonl", [aime]), {"max_new_tokens": 4}),
    ]


def test_each_new_benchmark_runs_with_a_real_model(adapter: Any, tmp_path: Path) -> None:
    for name, subsets, data_dir, options in _cases(tmp_path / "data"):
        bench = create_benchmark_instance(name, subsets, data_dir=data_dir, **options)
        cell = tmp_path / "cells" / name
        metrics = bench.run_benchmark(
            adapter, cell, generation_kwargs={"max_new_tokens": 4}, show_progress=False
        )
        assert set(metrics["task_scores"]) == set(subsets), name
        assert metrics["num_rows"] == 1 and (cell / "metrics.json").is_file(), name
        record = json.loads((cell / "predictions.jsonl").read_text().splitlines()[0])
        assert record["generated_tokens"] <= 4, name
        if name == "longbench_v2":  # the chain of thought, then the real second question
            assert "first_answer" in record and record["follow_up_generated_tokens"] is not None
