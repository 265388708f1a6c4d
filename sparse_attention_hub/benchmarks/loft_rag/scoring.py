"""LOFT's RAG metrics (google-deepmind/loft ``evaluation/rag.py``, ``evaluation/utils.py``,
``utils.extract_prediction``), as pure functions.

A model output becomes a list of answers with ``extract_prediction`` (the first line holding
``[`` and ``]``, read as a Python literal; nothing when it does not parse); answers and golds
are SQuAD-normalised. Single-answer sets (nq, hotpotqa, musique): the first predicted answer's
EM, subspan EM (a gold is a substring of it) and token F1, each the best over the golds.
Multi-answer sets (qampari, quest): EM (same set), coverage (golds predicted / golds) and
subspan EM (every gold matched one-to-one, by ``linear_sum_assignment``, to a prediction that
contains it or is contained in it). A row without a parsed answer scores 0.
"""

from __future__ import annotations

import ast
import collections
import re
import string
import unicodedata
from collections.abc import Sequence
from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks.scoring import as_answer_list

MULTI_VALUE = frozenset({"qampari", "quest"})
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_QUOTE_IN_WORD = re.compile(r"([a-zA-Z0-9])'([a-zA-Z0-9])")


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation as LOFT applies it: NFD, lower, no punctuation, no articles,
    single spaces."""
    text = unicodedata.normalize("NFD", text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_prediction(model_output: str) -> list[Any]:
    """The answers of ``Final Answer: ['a', 'b']``: the first line with ``[`` and ``]``, from
    the first ``[`` to the last ``]``, read with ``ast.literal_eval`` (quotes inside words
    escaped first); [] when no line has brackets or the first such line does not parse."""
    lines = model_output.replace("*", "").replace("`", "").strip().split("\n")
    for line in lines:
        if "[" in line and "]" in line:
            literal = line[line.find("[") : line.rfind("]") + 1].strip()
            try:
                parsed = ast.literal_eval(_QUOTE_IN_WORD.sub(r"\1\'\2", literal))
            except Exception:  # the official code catches everything here
                return []
            return list(parsed) if isinstance(parsed, list) else [parsed]
    return []


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def f1(golds: Sequence[str], prediction: str) -> float:
    """The best token F1 of ``prediction`` against ``golds`` (normalised strings)."""
    pred = _tokens(prediction)
    scores = []
    for gold in golds:
        gold_tokens = _tokens(gold)
        same = sum((collections.Counter(gold_tokens) & collections.Counter(pred)).values())
        if same == 0:
            scores.append(0.0)
        elif not gold_tokens or not pred:
            scores.append(float(gold_tokens == pred))
        else:
            precision, recall = same / len(pred), same / len(gold_tokens)
            scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def multi_value_subspan_em(golds: Sequence[str], predictions: Sequence[str]) -> float:
    """1.0 if every gold is matched to its own prediction containing it or contained in it.

    The official code maximises the matches with ``scipy.optimize.linear_sum_assignment`` and
    asks that every gold's match scores 1: that is a matching covering every gold, found here
    with augmenting paths (no scipy at run time; a test checks both agree)."""
    edges = [
        [j for j, pred in enumerate(predictions) if gold in pred or pred in gold] for gold in golds
    ]
    owner: dict[int, int] = {}  # prediction -> gold

    def augment(gold: int, seen: set[int]) -> bool:
        for pred in edges[gold]:
            if pred not in seen:
                seen.add(pred)
                if pred not in owner or augment(owner[pred], seen):
                    owner[pred] = gold
                    return True
        return False

    return float(all(augment(gold, set()) for gold in range(len(golds))))


def score_row(dataset: str, prediction: Any, answers: Any) -> dict[str, float]:
    """One row's metrics (0/1 scale); an unparsed or empty answer gives only zeros, without
    ``coverage`` (as the official evaluation, which averages coverage over parsed rows)."""
    golds = [normalize_answer(str(g)) for g in as_answer_list(answers)]
    if not golds:
        raise ValueError(f"a LOFT {dataset} row has no gold answer: {answers!r}")
    text = "" if prediction is None or pd.isna(prediction) else str(prediction)
    preds = [normalize_answer(str(p)) for p in extract_prediction(text)]
    multi = dataset in MULTI_VALUE
    if not preds:
        return {"em": 0.0, "subspan_em": 0.0} | ({} if multi else {"f1": 0.0})
    if multi:
        return {
            "em": float(set(golds) == set(preds)),
            "coverage": len(set(preds) & set(golds)) / len(golds),
            "subspan_em": multi_value_subspan_em(golds, preds),
        }
    first = preds[0]
    return {
        "em": max(float(g == first) for g in golds),
        "subspan_em": max(1.0 if g in first else 0.0 for g in golds),
        "f1": f1(golds, first),
    }


def score_task(dataset: str, frame: pd.DataFrame) -> dict[str, float]:
    """Each metric's mean over the rows that have it, x100, 2 decimals."""
    pairs = zip(frame["predicted_answer"], frame["answers"], strict=True)
    rows = [score_row(dataset, prediction, answers) for prediction, answers in pairs]
    names = ["em", "subspan_em", "coverage" if dataset in MULTI_VALUE else "f1"]
    metrics = {}
    for name in names:
        values = [r[name] for r in rows if name in r]
        metrics[name] = round(100 * sum(values) / len(values), 2) if values else 0.0
    return metrics
