"""synthetic_ruler: sized to the tokenizer, seeded, needle depths spread, cached on disk."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from sparse_attention_hub.adapters.prompting import RequestOptions, encode_request
from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.synthetic_ruler import TASKS, generate_task, load_or_generate
from sparse_attention_hub.benchmarks.synthetic_ruler.generate import (
    cache_path,
    tokenizer_fingerprint,
)
from sparse_attention_hub.benchmarks.synthetic_ruler.tasks import TASK_MAX_NEW_TOKENS

from .helpers import EchoAdapter


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: str):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.mark.parametrize("task", TASKS)
def test_rows_fit_the_length_and_hold_their_answers(tokenizer, task: str) -> None:
    rows = generate_task(tokenizer, task, 1024, seed=3, num_samples=3)
    budget = 1024 - TASK_MAX_NEW_TOKENS[task]
    for row in rows:
        # the prompt as the adapter encodes it, with and without the chat template
        used = [
            len(
                encode_request(
                    tokenizer,
                    row["context"],
                    [row["question"]],
                    row["answer_prefix"],
                    RequestOptions(apply_chat_template=template),
                )
                .prompts[0]
                .ids
            )
            for template in (None, False)
        ]
        assert budget * 0.85 < max(used) <= budget, used
        assert all(answer in row["context"] for answer in row["answer"])
        # the question is on its own line, not glued to the haystack's last word
        assert row["question"].startswith("\n") and not row["context"].endswith("\n")
    assert [row["depth"] for row in rows] == [0.0, 0.5, 1.0]


def test_needle_depth_is_spread(tokenizer) -> None:
    rows = generate_task(tokenizer, "niah_single", 1024, seed=0, num_samples=3)
    where = [row["context"].index(row["answer"][0]) / len(row["context"]) for row in rows]
    assert where[0] < 0.2 and 0.35 < where[1] < 0.65 and where[2] > 0.8


def test_seeded_and_cached(tokenizer, tmp_path: Path) -> None:
    first = load_or_generate(tokenizer, "vt", 512, seed=1, num_samples=2, cache_dir=tmp_path)
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1 and "vt_len512_seed1_n2" in files[0].name
    files[0].write_text(files[0].read_text().replace(first[0]["answer"][0], "CACHED"))
    again = load_or_generate(tokenizer, "vt", 512, seed=1, num_samples=2, cache_dir=tmp_path)
    assert "CACHED" in again[0]["answer"]  # read from the cache, not regenerated
    other_seed = generate_task(tokenizer, "vt", 512, seed=2, num_samples=2)
    assert other_seed[0]["answer"] != first[0]["answer"]
    assert generate_task(tokenizer, "vt", 512, seed=1, num_samples=2) == first


def test_too_short_length_is_a_clear_error(tokenizer, tmp_path: Path) -> None:
    bench = create_benchmark_instance(
        "synthetic_ruler", ["512"], tokenizer=tokenizer, cache_dir=tmp_path
    )
    assert len(bench.load_datasets()) == 5 * len(TASKS)
    with pytest.raises(ValueError, match="does not fit in 64 tokens"):
        generate_task(tokenizer, "vt", 64, seed=0, num_samples=1)


def test_bad_options(tokenizer) -> None:
    with pytest.raises(ValueError, match=r"unknown subset.*4096"):
        create_benchmark_instance("synthetic_ruler", ["4000"])
    with pytest.raises(ValueError, match="num_samples"):
        create_benchmark_instance("synthetic_ruler", ["512"], num_samples=0)
    with pytest.raises(ValueError, match="unknown synthetic task"):
        create_benchmark_instance("synthetic_ruler", ["512"], tasks=["niah"])
    with pytest.raises(ValueError, match="needs a tokenizer"):
        create_benchmark_instance("synthetic_ruler", ["512"]).load_datasets()


def test_scoring_with_perfect_and_partial_answers(tokenizer, tmp_path: Path) -> None:
    bench = create_benchmark_instance(
        "synthetic_ruler",
        ["512"],
        tasks=["niah_multivalue", "vt"],
        num_samples=2,
        cache_dir=tmp_path,
        tokenizer=tokenizer,
    )
    rows = bench.load_datasets()
    answers = {}
    for _, row in rows.iterrows():
        golds = row["answer"]
        # niah_multivalue: half of the values (upper-cased to check case folding); vt: all
        answers[row["question"]] = (
            " ".join(golds[:2]).upper()
            if row["task"] == "niah_multivalue"
            else "\x01" + ", ".join(golds)
        )
    metrics = bench.run_benchmark(
        EchoAdapter(answers=answers), tmp_path / "cell", show_progress=False
    )
    assert metrics["task_scores"] == {"niah_multivalue": 50.0, "vt": 100.0}
    assert metrics["overall_score"] == 75.0


@pytest.mark.parametrize("task", ["niah_multikey", "niah_multiquery", "niah_multivalue"])
def test_the_queried_needle_sits_at_the_stated_depth(tokenizer, task: str) -> None:
    rows = generate_task(tokenizer, task, 1024, seed=5, num_samples=3)
    for row in rows:
        start = row["context"].index("\n") + 1  # the haystack, after the instruction line
        haystack = row["context"][start:]
        where = haystack.index(row["answer"][0]) / len(haystack)
        assert abs(where - row["depth"]) < 0.1, (row["depth"], where)


def test_cache_key_names_every_input(tokenizer, tmp_path: Path) -> None:
    base = {"fingerprint": "f", "task": "vt", "length": 512, "seed": 1, "num_samples": 2}
    paths = {cache_path(tmp_path, **base)}
    for key, value in [
        ("fingerprint", "g"),
        ("task", "cwe"),
        ("length", 1024),
        ("seed", 2),
        ("num_samples", 3),
    ]:
        paths.add(cache_path(tmp_path, **{**base, key: value}))
    assert len(paths) == 6
    # the chat template counts towards the prompt length, so it is part of the fingerprint
    other = copy.deepcopy(tokenizer)
    other.chat_template = "{{ messages[0]['content'] }}"
    assert tokenizer_fingerprint(other) != tokenizer_fingerprint(tokenizer)


_GENERATE = """
import sys
from pathlib import Path
from transformers import AutoTokenizer
from sparse_attention_hub.benchmarks.synthetic_ruler import load_or_generate
tok = AutoTokenizer.from_pretrained(sys.argv[2])
load_or_generate(tok, "niah_single", 512, seed=9, num_samples=2, cache_dir=Path(sys.argv[1]))
"""


def test_two_processes_generating_the_same_entry_leave_one_whole_file(
    tokenizer, tiny_model_dir: str, tmp_path: Path
) -> None:
    workers = [
        subprocess.Popen([sys.executable, "-c", _GENERATE, str(tmp_path), tiny_model_dir])
        for _ in range(2)
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and not files[0].startswith(".")  # no temp file left behind
    expected = generate_task(tokenizer, "niah_single", 512, seed=9, num_samples=2)
    cached = load_or_generate(tokenizer, "niah_single", 512, 9, 2, cache_dir=tmp_path)
    assert cached == expected
