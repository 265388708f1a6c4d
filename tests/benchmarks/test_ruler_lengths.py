"""ruler: every published length is a subset; 32k-128k come from local files in the hub schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance, describe_benchmarks
from sparse_attention_hub.benchmarks.ruler import HUB_LENGTHS, LOCAL_LENGTHS

from .helpers import EchoAdapter


def test_all_lengths_are_listed() -> None:
    assert HUB_LENGTHS == ("4096", "8192", "16384")
    assert LOCAL_LENGTHS == ("32768", "65536", "131072")
    subsets = dict((name, s) for name, s, _ in describe_benchmarks())["ruler"]
    assert all(length in subsets for length in HUB_LENGTHS + LOCAL_LENGTHS)


def test_long_lengths_load_locally_and_refuse_the_hub(tmp_path: Path) -> None:
    row = {
        "context": "haystack " * 20 + "The special magic number for red-apple is: 123.",
        "question": "What is the number for red-apple?",
        "answer_prefix": " The number is",
        "answer": ["123"],
        "task": "niah_single_1",
        "max_new_tokens": 128,
    }
    folder = tmp_path / "131072"  # the hub's layout: <length>/<files>
    folder.mkdir()
    (folder / "test.jsonl").write_text(json.dumps(row) + "\n", encoding="utf-8")
    bench = create_benchmark_instance("ruler", ["131072"], data_dir=tmp_path)
    answers = {row["question"]: " 123."}
    metrics = bench.run_benchmark(EchoAdapter(answers=answers), tmp_path / "c", show_progress=False)
    assert metrics["task_scores"] == {"niah_single_1": 100.0}
    assert bench.load_datasets()["length"].tolist() == [131072]
    with pytest.raises(ValueError, match=r"publishes only 4096, 8192, 16384.*data_dir="):
        create_benchmark_instance("ruler", ["65536"]).load_datasets()
