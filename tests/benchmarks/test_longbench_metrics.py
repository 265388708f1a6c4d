"""LongBench metrics against hand-computed values (official formulas, tricky strings)."""

from __future__ import annotations

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks.longbench import base_task, length_bucket, score_row
from sparse_attention_hub.benchmarks.longbench.benchmark import score_task
from sparse_attention_hub.benchmarks.longbench.metrics import (
    classification_score,
    code_sim_score,
    count_score,
    normalize_answer,
    normalize_zh_answer,
    qa_f1_score,
    qa_f1_zh_score,
    retrieval_score,
    retrieval_zh_score,
    rouge_score,
    rouge_zh_score,
)

approx = pytest.approx


def test_normalisation() -> None:
    assert normalize_answer("The  U.S.A.,  an Apple!") == "usa apple"
    assert normalize_answer("theater") == "theater"  # articles only as whole words
    assert normalize_zh_answer("北京， 天安门。") == "北京天安门"


def test_qa_f1() -> None:
    assert qa_f1_score("The Eiffel Tower!", "eiffel tower") == 1.0
    assert qa_f1_score("Paris, France", "Paris") == approx(2 / 3)  # P 1/2, R 1
    assert qa_f1_score("an apple a day", "Apple. Day") == 1.0
    assert qa_f1_score("", "Paris") == 0.0
    assert qa_f1_score("the", "a") == 0.0  # both normalise to nothing


def test_qa_f1_zh() -> None:
    assert qa_f1_zh_score("北京。", "北京") == 1.0  # punctuation token dropped
    assert qa_f1_zh_score("我爱北京", "北京") == approx(0.5)  # 我/爱/北京: P 1/3, R 1
    assert qa_f1_zh_score("今天天气很好", "天气很好") == approx(
        2 / 3
    )  # 今天天气/很/好 vs 天气/很/好
    assert qa_f1_zh_score("", "北京") == 0.0


def test_rouge_l_as_the_rouge_package() -> None:
    # m = 3 distinct reference words, n = 5 distinct prediction words, LCS 3: P 0.6, R 1
    assert rouge_score("the cat sat on the mat", "the cat sat") == approx(0.75, abs=1e-7)
    # words are counted as sets: a repeated word counts once (rouge-score would give 0.5)
    assert rouge_score("the the the", "the") == approx(1.0, abs=1e-7)
    # sentences split on ".": union LCS {a, c} over two prediction sentences, n = 4
    assert rouge_score("a b. c d", "a c") == approx(2 / 3, abs=1e-7)
    assert rouge_score("", "anything") == 0.0
    assert rouge_score("...", "anything") == 0.0
    assert rouge_zh_score("我爱北京", "我爱北京") == approx(1.0, abs=1e-7)
    assert rouge_zh_score("我爱北京天安门", "我爱北京") == approx(2 * 0.75 / 1.75, abs=1e-7)


def test_classification_with_longbench_iteration_quirk() -> None:
    classes = ["Human", "Numeric"]
    assert classification_score("Human", "Human", all_classes=classes) == 1.0
    assert classification_score("Human or Numeric", "Human", all_classes=classes) == 0.5
    assert classification_score("no idea", "Human", all_classes=classes) == 0.0
    # "location" is a strict substring of the gold, so it is dropped from the matches
    assert (
        classification_score(
            "Other location", "Other location", all_classes=["Other location", "location"]
        )
        == 1.0
    )
    # removing "loc" while iterating skips "location", which stays: 1/2 as LongBench scores it
    assert (
        classification_score(
            "Other location", "Other location", all_classes=["loc", "location", "Other location"]
        )
        == 0.5
    )
    with pytest.raises(ValueError, match="all_classes"):
        classification_score("Human", "Human")


def test_retrieval_and_count() -> None:
    assert retrieval_score("Paragraph 3", "Paragraph 3") == 1.0
    assert retrieval_score("Paragraph 3 or Paragraph 13", "Paragraph 3") == 0.5
    assert retrieval_score("", "Paragraph 3") == 0.0
    assert retrieval_zh_score("答案是段落5", "段落5") == 1.0
    assert retrieval_zh_score("段落5，段落6", "段落5") == 0.5
    assert count_score("There are 12 unique paragraphs, not 13", 12) == 0.5
    assert count_score("twelve", 12) == 0.0
    with pytest.raises(ValueError, match="Paragraph"):
        retrieval_score("3", "the third")


def test_code_sim() -> None:
    assert code_sim_score("```python\n# comment\nx = foo(1)\n", "x = foo(1)") == 1.0
    assert code_sim_score("abcd", "abce") == 0.75  # indel similarity 6/8
    assert code_sim_score("abc", "abd") == 0.67  # 66.67 rounds to 67, as fuzzywuzzy does
    assert code_sim_score("", "x = 1") == 0.0
    assert code_sim_score("// only comments", "x = 1") == 0.0


def test_score_row_first_line_several_golds_and_empty() -> None:
    assert score_row("triviaqa", "\nParis\nLondon is big", ["Paris"]) == 1.0
    assert score_row("hotpotqa", "Paris\nLondon", ["Paris"]) == approx(2 / 3)
    assert score_row("hotpotqa", "Paris, France", ["London", "Paris"]) == approx(2 / 3)
    assert score_row("triviaqa_e", "Paris\nx", ["London", "paris"]) == 1.0
    assert score_row("narrativeqa", None, ["Paris"]) == 0.0
    assert score_row("trec", "Type: Human\nmore", ["Human"], ["Human", "Numeric"]) == 1.0


def test_e_suffix_is_stripped_only_as_a_suffix() -> None:
    assert base_task("qasper_e") == "qasper"
    assert base_task("repobench-p_e") == "repobench-p"
    assert base_task("multifieldqa_en") == "multifieldqa_en"
    assert base_task("passage_retrieval_en_e") == "passage_retrieval_en"
    with pytest.raises(ValueError, match="unknown LongBench task"):
        base_task("multifieldqa_zh_e")  # not a LongBench-E task
    assert [length_bucket(n) for n in (0, 3999, 4000, 7999, 8000)] == [
        "0-4k",
        "0-4k",
        "4-8k",
        "4-8k",
        "8k+",
    ]


def test_e_buckets_average_as_numpy_does() -> None:
    # passage_count scores 0.25, 0.1, 1, 0.5, 0, 0.1, 0.7, 0: LongBench's scorer_e gives
    # round(100 * np.mean(scores), 2) = 33.12, the plain sum / 8 rounds to 33.13
    ten = "0 1 2 3 4 6 7 8 9 "
    predictions = ["1 2 3 5", ten + "5", "5", "5 6", "6", ten + "5", "5 5 5 5 5 5 5 1 2 3", ""]
    frame = pd.DataFrame(
        {
            "predicted_answer": predictions,
            "answers": [["5"]] * 8,
            "length": [100] * 8,
        }
    )
    overall, buckets = score_task("passage_count_e", frame)
    assert buckets == {"0-4k": 33.12, "4-8k": None, "8k+": None}
    assert overall == 33.13  # LongBench's scorer: round(100 * total / n, 2)
