"""LongBench's per-task metrics (THUDM/LongBench ``metrics.py``), written to the same formulas.

Each metric takes one prediction and one gold answer and returns a score in [0, 1]; a row's
score is the maximum over its gold answers (see :func:`score_row`). jieba, rapidfuzz and the
ROUGE code are imported when first used.
"""

from __future__ import annotations

import logging
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from sparse_attention_hub.benchmarks.longbench.rouge import rouge_l_summary_f

_CN_PUNCTUATION = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
_EN_PUNCTUATION = frozenset(string.punctuation)
_ALL_PUNCTUATION = frozenset(string.punctuation + _CN_PUNCTUATION)


def _jieba_cut(text: str) -> list[str]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return list(jieba.cut(text, cut_all=False))


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _EN_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def normalize_zh_answer(text: str) -> str:
    """Lower case, drop English and Chinese punctuation, remove all whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _ALL_PUNCTUATION)
    return "".join(text.split())


def f1_score(prediction: Sequence[str], ground_truth: Sequence[str]) -> float:
    """Token-multiset F1."""
    common = Counter(prediction) & Counter(ground_truth)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction)
    recall = num_same / len(ground_truth)
    return (2 * precision * recall) / (precision + recall)


def qa_f1_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """F1 over whitespace tokens after :func:`normalize_answer`."""
    return f1_score(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def qa_f1_zh_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """F1 over jieba tokens, each normalised with :func:`normalize_zh_answer`, empties dropped."""
    pred = [t for t in (normalize_zh_answer(t) for t in _jieba_cut(prediction)) if t]
    gold = [t for t in (normalize_zh_answer(t) for t in _jieba_cut(ground_truth)) if t]
    return f1_score(pred, gold)


def rouge_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """ROUGE-L F of the ``rouge`` package; 0 where that package raises (e.g. empty prediction)."""
    try:
        return rouge_l_summary_f(prediction, ground_truth)
    except ValueError:
        return 0.0


def rouge_zh_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """:func:`rouge_score` on jieba-segmented text (tokens joined by spaces)."""
    return rouge_score(" ".join(_jieba_cut(prediction)), " ".join(_jieba_cut(ground_truth)))


def classification_score(
    prediction: str, ground_truth: str, all_classes: Sequence[str] | None = None, **_: Any
) -> float:
    """1/k if the gold class is among the k class names found in the prediction, else 0.

    Class names that are a strict substring of the gold are dropped from the matches, with
    LongBench's exact iteration: it removes from the list it is iterating over, so the element
    right after a removed one is not examined. (Its fallback to the most similar class is
    unreachable, since it tests ``list != 0``, and is not reproduced.)
    """
    if all_classes is None:
        raise ValueError("classification_score needs all_classes (the row's 'all_classes' column)")
    matches = [name for name in all_classes if name in prediction]
    index = 0
    while index < len(matches):
        term = matches[index]
        if term in ground_truth and term != ground_truth:
            matches.remove(term)
        index += 1
    return 1.0 / len(matches) if ground_truth in matches else 0.0


def _share_equal(numbers: list[str], target: str) -> float:
    return 0.0 if not numbers else sum(1 for n in numbers if n == target) / len(numbers)


def count_score(prediction: str, ground_truth: str | int, **_: Any) -> float:
    """Share of the numbers in the prediction that equal the gold count."""
    return _share_equal(re.findall(r"\d+", prediction), str(ground_truth))


def _retrieval(prediction: str, ground_truth: str, pattern: str) -> float:
    found = re.findall(pattern, ground_truth)
    if not found:
        raise ValueError(f"gold answer {ground_truth!r} does not match {pattern!r}")
    return _share_equal(re.findall(r"\d+", prediction), found[0])


def retrieval_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """Share of the numbers in the prediction equal to N of the gold "Paragraph N"."""
    return _retrieval(prediction, ground_truth, r"Paragraph (\d+)")


def retrieval_zh_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """Share of the numbers in the prediction equal to N of the gold "段落N"."""
    return _retrieval(prediction, ground_truth, r"段落(\d+)")


def fuzz_ratio(a: str, b: str) -> int:
    """fuzzywuzzy's ``fuzz.ratio`` (Levenshtein backend): 100 if equal, 0 if one is empty,
    else the rounded indel similarity x100 (computed with rapidfuzz)."""
    if a == b:
        return 100
    if not a or not b:
        return 0
    from rapidfuzz import fuzz

    return round(fuzz.ratio(a, b))


def code_sim_score(prediction: str, ground_truth: str, **_: Any) -> float:
    """fuzz.ratio / 100 between the gold line and the prediction's first line free of ` # //."""
    first = ""
    for line in prediction.lstrip("\n").split("\n"):
        if "`" not in line and "#" not in line and "//" not in line:
            first = line
            break
    return fuzz_ratio(first, ground_truth) / 100


Metric = Callable[..., float]
METRICS: dict[str, Metric] = {
    "qa_f1": qa_f1_score,
    "qa_f1_zh": qa_f1_zh_score,
    "rouge": rouge_score,
    "rouge_zh": rouge_zh_score,
    "classification": classification_score,
    "retrieval": retrieval_score,
    "retrieval_zh": retrieval_zh_score,
    "count": count_score,
    "code_sim": code_sim_score,
}
