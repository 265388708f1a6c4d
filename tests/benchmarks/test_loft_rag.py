"""loft_rag: LOFT's answer extraction and RAG metrics on tricky cases, the loader on local
files in the hub schema, the preflight's data, and a scored cell."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.optimize

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.data_needs import HUB_DATASET, LOCAL, DataNeed
from sparse_attention_hub.benchmarks.loft_rag import (
    extract_prediction,
    multi_value_subspan_em,
    normalize_answer,
    score_row,
    score_task,
)

from .helpers import EchoAdapter


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Reasoning...\nFinal Answer: ['Paris']", ["Paris"]),
        # a quote inside a word is escaped before parsing (LOFT's _escape_single_quotes)
        (
            "Final Answer: ['child bride', 'the devil's sleep']",
            ["child bride", "the devil's sleep"],
        ),
        ("**Final Answer:** `['Rome', 'Milan']`", ["Rome", "Milan"]),  # markdown removed
        ("Final Answer: [1990, 2001]", [1990, 2001]),  # numbers: made str by the scorer
        # the FIRST line with brackets decides: it does not parse, so nothing is read
        ("Documents [1] and [2] help.\nFinal Answer: ['Paris']", []),
        ("Final Answer: Paris", []),  # no list: no answer
        ("Final Answer: []", []),
        ("first [ then ] and ['x'] end", []),  # first '[' to last ']' does not parse
    ],
)
def test_extract_prediction_follows_loft(output: str, expected: list[Any]) -> None:
    assert extract_prediction(output) == expected


def test_normalisation_is_squad_with_nfd() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple a day") == "apple day"
    # NFD keeps the combining accent: "café" is not "cafe" (as in LOFT)
    assert normalize_answer("Café") != normalize_answer("Cafe")


def test_single_value_metrics_on_tricky_cases() -> None:
    golds = ["The Eiffel Tower", "Tour Eiffel"]
    row = score_row("nq", "Final Answer: ['Eiffel Tower, Paris']", golds)
    # "eiffel tower paris": no exact match, contains "eiffel tower", F1 2*(2/3*1)/(2/3+1) = 0.8
    assert row == pytest.approx({"em": 0.0, "subspan_em": 1.0, "f1": 0.8})
    # only the first predicted answer counts for a single-answer set
    row = score_row("hotpotqa", "Final Answer: ['London', 'the eiffel tower']", golds)
    assert row == {"em": 0.0, "subspan_em": 0.0, "f1": 0.0}
    assert score_row("musique", "Final Answer: ['eiffel tower']", golds)["em"] == 1.0
    assert score_row("nq", "no list here", golds) == {"em": 0.0, "subspan_em": 0.0, "f1": 0.0}


def test_multi_value_metrics_on_tricky_cases() -> None:
    golds = ["Dune", "Dune Messiah"]
    # one prediction contains both golds, but a prediction matches only one gold
    row = score_row("quest", "Final Answer: ['Dune Messiah (novel)']", golds)
    assert row == {"em": 0.0, "coverage": 0.0, "subspan_em": 0.0}
    # duplicates do not matter to EM (sets); each gold gets its own prediction
    row = score_row("qampari", "Final Answer: ['dune', 'Dune Messiah', 'Dune']", golds)
    assert row == {"em": 1.0, "coverage": 1.0, "subspan_em": 1.0}
    # "dune" is inside the gold "dune messiah" and "dune" inside "children of dune": the
    # assignment matches both golds, so subspan EM is 1 with half the golds predicted exactly
    row = score_row("quest", "Final Answer: ['Dune', 'Children of Dune']", golds)
    assert row == {"em": 0.0, "coverage": 0.5, "subspan_em": 1.0}
    # no parsed answer: zeros and no coverage (LOFT averages coverage over parsed rows)
    assert score_row("quest", "Final Answer: Dune", golds) == {"em": 0.0, "subspan_em": 0.0}


def test_task_means_average_coverage_over_parsed_rows_only() -> None:
    frame = pd.DataFrame(
        {
            "predicted_answer": ["Final Answer: ['a']", "nothing"],
            "answers": [["a", "b"], ["c"]],
        }
    )
    assert score_task("qampari", frame) == {"em": 0.0, "subspan_em": 0.0, "coverage": 50.0}


def _official_subspan_em(golds: list[str], preds: list[str]) -> float:
    """LOFT's compute_multi_value_subspan_em (evaluation/rag.py), verbatim logic."""
    scores = np.zeros([len(golds), len(preds)])
    for i, gold in enumerate(golds):
        for j, pred in enumerate(preds):
            if gold in pred or pred in gold:
                scores[i, j] = 1
    rows, cols = scipy.optimize.linear_sum_assignment(-scores)
    aligned = np.zeros(len(golds))
    for r, c in zip(rows, cols, strict=True):
        aligned[r] = scores[r, c]
    return float(all(aligned))


def test_multi_value_subspan_em_equals_the_official_assignment() -> None:
    rng = random.Random(0)
    words = ["a", "b", "ab", "ba", "abc", "c", "bc", ""]
    for _ in range(2000):
        golds = rng.sample(words[:-1], rng.randint(1, 4))
        preds = [rng.choice(words) for _ in range(rng.randint(1, 5))]
        assert multi_value_subspan_em(golds, preds) == _official_subspan_em(golds, preds), (
            golds,
            preds,
        )


def _row(i: int, context: str, answers: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "qid": f"q{i}",
        "context": context,
        "question": f"====== Now let's start! ======\nquery: question {i}\n",
        "answers": answers,
        "answer_prefix": "",
        "max_new_tokens": 64,
        **extra,
    }


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """Local files in the hub schema: one jsonl, and a folder with a CSV (answers as JSON)."""
    folder = tmp_path / "loft"
    folder.mkdir()
    rows = [_row(0, "ID: 1 | TITLE: Paris | CONTENT: ...", ["Paris"]), _row(1, "docs", ["Rome"])]
    (folder / "nq_32k.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    (folder / "quest_32k").mkdir()
    frame = pd.DataFrame([_row(2, "docs", ["Dune", "Dune Messiah"], split="test")])
    frame["answers"] = frame["answers"].map(json.dumps)
    frame.to_csv(folder / "quest_32k" / "test.csv", index=False)
    return folder


def test_loader_reads_local_files_in_the_hub_schema(data_dir: Path) -> None:
    bench = create_benchmark_instance("loft_rag", ["nq_32k", "quest_32k"], data_dir=data_dir)
    rows = bench.load_datasets()
    assert list(rows["task"]) == ["nq_32k", "nq_32k", "quest_32k"]
    assert rows["answers"].tolist() == [["Paris"], ["Rome"], ["Dune", "Dune Messiah"]]
    assert rows["context"][0].startswith("ID: 1") and rows["max_new_tokens"].tolist() == [64] * 3
    (data_dir / "hotpotqa_1m.jsonl").write_text(json.dumps({"context": "c"}) + "\n", "utf-8")
    with pytest.raises(ValueError, match=r"missing required column\(s\) 'question'"):
        create_benchmark_instance("loft_rag", ["hotpotqa_1m"], data_dir=data_dir).load_datasets()


def test_the_preflight_knows_its_data(data_dir: Path) -> None:
    needs = create_benchmark_instance("loft_rag", ["nq_32k", "qampari_1m"]).data_needs()
    assert needs == [
        DataNeed(HUB_DATASET, "f20180301/loft-rag-nq-32k"),
        DataNeed(HUB_DATASET, "f20180301/loft-rag-qampari-1m"),
    ]
    local = create_benchmark_instance("loft_rag", ["musique_128k"], data_dir=data_dir)
    (need,) = local.data_needs()
    assert need.kind == LOCAL and "no local data for subset 'musique_128k'" in str(need.problem)


def test_a_cell_is_scored_with_subspan_em_per_task(data_dir: Path, tmp_path: Path) -> None:
    bench = create_benchmark_instance("loft_rag", ["nq_32k", "quest_32k"], data_dir=data_dir)
    rows = bench.load_datasets()
    replies = ["Final Answer: ['Paris, France']", "Final Answer: ['Milan']", "['Dune']"]
    adapter = EchoAdapter(answers=dict(zip(rows["question"], replies, strict=True)))
    metrics = bench.run_benchmark(adapter, tmp_path / "cell", show_progress=False)
    assert metrics["task_scores"] == {"nq_32k": 50.0, "quest_32k": 0.0}
    assert metrics["metrics"]["nq_32k"] == {"em": 0.0, "subspan_em": 50.0, "f1": 33.33}
    assert metrics["metrics"]["quest_32k"] == {"em": 0.0, "subspan_em": 0.0, "coverage": 50.0}
    assert metrics["overall_score"] == 25.0
