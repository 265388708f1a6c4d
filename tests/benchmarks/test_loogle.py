"""loogle: official prompts and automatic metrics (recall ROUGE, BLEU, METEOR, cloze matches)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.loogle import (
    bleu_scores,
    cloze_matches,
    load_wordnet,
    meteor,
    parse_cloze,
    parse_qa_pairs,
    rouge_recalls,
    score_task,
)
from sparse_attention_hub.benchmarks.loogle import wordnet as wordnet_module

from .helpers import EchoAdapter

DOC = "Picardo was born in Jerez. He moved to Madrid."


def _write(folder: Path, task: str, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    # the hub / LooGLE-testdata schema: qa_pairs is a Python-literal string
    qa = str(
        [
            {"S": "s", "Q": "Where was he born?", "A": "In Jerez"},
            {"S": "s", "Q": "Where did he move?", "A": "To Madrid"},
        ]
    )
    cloze = str(
        [
            {
                "Q": "<mask-0> moved to <mask-1>.",
                "S": "s",
                "A": {"<mask-0>": "Jose Picardo", "<mask-1>": "Madrid"},
            }
        ]
    )
    folder = tmp_path / "loogle"
    _write(folder, "shortdep_qa", [{"input": DOC, "title": "P", "qa_pairs": qa, "output": "none"}])
    _write(
        folder,
        "shortdep_cloze",
        [{"input": DOC, "title": "P", "qa_pairs": cloze, "output": "None"}],
    )
    _write(
        folder,
        "longdep_summarization",
        [
            {
                "input": DOC,
                "title": "2201",
                "qa_pairs": "none",
                "output": "A man moved.",
                "question": "none",
            }
        ],
    )
    return folder


def test_loader_builds_official_prompts_one_row_per_question(data_dir: Path) -> None:
    subsets = ["shortdep_qa", "shortdep_cloze", "longdep_summarization"]
    rows = create_benchmark_instance("loogle", subsets, data_dir=data_dir).load_datasets()
    assert list(rows["task"]) == ["shortdep_qa"] * 2 + ["shortdep_cloze", "longdep_summarization"]
    qa = rows.iloc[0]
    assert qa["context"] + qa["question"] == (
        f"Please answer the question based on the long texts below. \n{DOC}\n"
        "Question: Where was he born?\nAnswer: "
    )
    assert rows.iloc[1]["context"] == qa["context"]  # both questions share the document
    cloze = rows.iloc[2]
    assert "example: {'<mask-0>': 'Bob', '<mask-1>': 'Gorrosion Magazine'" in cloze["context"]
    assert cloze["question"] == (
        "\n Question: <mask-0> moved to <mask-1>. What are the masked entities? \nAnswer:"
    )
    assert cloze["answer"] == {"<mask-0>": "Jose Picardo", "<mask-1>": "Madrid"}
    summary = rows.iloc[3]
    assert summary["question"] == "\n Summarization: " and summary["answer"] == "A man moved."
    assert list(rows["max_new_tokens"]) == [300, 300, 50, 500]


def test_qa_pairs_are_parsed_without_eval() -> None:
    assert parse_qa_pairs("none") == []
    with pytest.raises(ValueError, match="not a list literal"):
        parse_qa_pairs("__import__('os').getcwd()")
    assert parse_cloze("{'<mask-0>': 'Bob'}") == {"<mask-0>": "Bob"}
    assert parse_cloze('{"<mask-0>": "Bob"}') == {"<mask-0>": "Bob"}
    assert parse_cloze("__import__('os').system('true')") is None  # never run
    assert parse_cloze("Answer: {'<mask-0>': 'Bob'}") is None  # as eval(): not a dict
    assert parse_cloze("None") is None


def test_cloze_exact_and_partial_match() -> None:
    gold = {"<mask-0>": "Jose Picardo", "<mask-1>": "Madrid"}
    assert cloze_matches(gold, "{'<mask-0>': 'Picardo', '<mask-1>': 'Madrid'}") == (1, 2, 2)
    assert cloze_matches(gold, "{'<mask-0>': 'jose picardo'}") == (0, 0, 2)  # case-sensitive
    assert cloze_matches(gold, "not a dict") == (0, 0, 2)
    assert cloze_matches(gold, "{'<mask-1>': 7}") == (0, 0, 2)  # official .split() would raise


def test_rouge_is_recall_and_case_sensitive() -> None:
    r1, r2, rl = rouge_recalls("the cat sat on the mat", "The cat sat. on mat")
    assert (r1, rl) == (pytest.approx(0.8), pytest.approx(0.8))  # "The" != "the"
    assert r2 == pytest.approx(0.4)
    long_r1, _, _ = rouge_recalls("a b", "a b c d e f g h")  # recall ignores extra words
    assert long_r1 == 1.0
    assert rouge_recalls("x", "...") == (0.0, 0.0, 0.0)  # the package raises: scored 0
    b1, b4 = bleu_scores("the cat sat on the mat", "the cat sat on the mat")
    assert (b1, b4) == (pytest.approx(1.0), pytest.approx(1.0))
    b1, b4 = bleu_scores("the cat sat on the mat", "the dog")
    assert b1 == pytest.approx(0.5 * math.exp(1 - 6 / 2))  # precision 1/2 x brevity penalty
    assert b4 == pytest.approx(0.0, abs=1e-12)


def test_missing_wordnet_is_reported_not_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    monkeypatch.setattr(wordnet_module, "DEBIAN_WORDNET", tmp_path / "none")
    reader, reason = load_wordnet()
    assert reader is None and "nltk.downloader wordnet" in str(reason)
    frame = pd.DataFrame(
        {"answer": ["In Jerez"], "predicted_answer": ["He was born in Jerez"], "task": ["x"]}
    )
    result = score_task("shortdep_qa", frame)
    assert "meteor" not in result["metrics"] and "WordNet" in result["unavailable"]["meteor"]
    assert result["metrics"]["rouge1"] == 50.0  # "In" is not "in"
    assert result["score"] == result["metrics"]["rougeL"] == 50.0
    assert "off" in result["unavailable"]["bertscore"]
    with_bert = score_task("shortdep_qa", frame, bertscore=True)
    assert "bertscore" in with_bert["unavailable"]  # no package or no local model


def test_meteor_with_wordnet_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nltk

    monkeypatch.setenv("SAH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(nltk.data, "path", list(nltk.data.path))  # load_wordnet may append
    reader, reason = load_wordnet()
    if reader is None:
        pytest.skip(f"no WordNet on this machine: {reason}")
    same = meteor("the cat sat on the mat", "the cat sat on the mat", reader)
    assert same > 0.9
    # car ~ auto only through WordNet (nltk looks synonyms up after stemming)
    assert meteor("auto", "car", reader) == pytest.approx(0.5)  # 1 match, 1 chunk
    assert meteor("auto", "cat", reader) == 0.0


def test_run_scores_match_and_similarity(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wordnet_module, "DEBIAN_WORDNET", tmp_path / "none")  # fast: no METEOR
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "empty")])
    bench = create_benchmark_instance(
        "loogle", ["shortdep_qa", "shortdep_cloze"], data_dir=data_dir
    )
    rows = bench.load_datasets()
    replies = ["He was born in Jerez", "", "{'<mask-0>': 'Jose Picardo', '<mask-1>': 'Spain'}"]
    adapter = EchoAdapter(answers=dict(zip(rows["question"], replies, strict=True)))
    metrics = bench.run_benchmark(adapter, tmp_path / "c", show_progress=False)
    assert len(adapter.calls) == 2  # the two questions on one document share a request
    # cloze: 1 of 2 masks exact ("Spain" != "Madrid"), 1 of 2 partial
    assert metrics["metrics"]["shortdep_cloze"] == {"exact_match": 50.0, "partial_match": 50.0}
    # qa: ROUGE-1 recall of "In Jerez" in "He was born in Jerez" is 1/2 ("In" != "in");
    # the empty answer is scored as "None": 0
    assert metrics["metrics"]["shortdep_qa"]["rouge1"] == 25.0
    assert metrics["task_scores"] == {"shortdep_cloze": 50.0, "shortdep_qa": 25.0}
    saved = json.loads((tmp_path / "c" / "metrics.json").read_text(encoding="utf-8"))
    assert "bertscore" in saved["unavailable"]["shortdep_qa"]
