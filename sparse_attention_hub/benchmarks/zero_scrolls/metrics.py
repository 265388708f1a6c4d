"""ZeroSCROLLS's metrics (hub ``tau/zero_scrolls``, ``metrics/``; ROUGE and F1 from SCROLLS).

Each ``<name>_score(prediction, reference)`` scores one prediction against one reference; a
row's value is the best over its references, a task's the mean x100.

- ROUGE: ``rouge_score`` F-measure of rouge1, rouge2, rougeL (no stemmer) and rougeLsum (texts
  split into sentences with nltk's ``sent_tokenize``, one per line); the task score is the
  geometric mean of the rouge1, rouge2 and rougeL means.
- F1: SQuAD's token F1 after lower-casing and removing punctuation and articles.
- accuracy (QuALITY): the first standalone letter A-D of the prediction equals the gold's
  (a gold without one is refused, as the official assert does).
- exp_similarity (SpaceDigest): 0.5 ** (|gold% - predicted%| / 10), the percentages being the
  first ``\\d+\\.?\\d*%`` of each; no percentage in the prediction scores 0, a gold without
  one is refused (ValueError; the official metric reads it as 0%).
- concordance_index (BookSumSort): the integers of the prediction must be a permutation of the
  gold's (else 0); then the share of summary pairs whose order agrees (lifelines'
  ``concordance_index`` without ties or censoring).
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PERCENT = re.compile(r"\d+\.?\d*%")
_LETTER = re.compile(r"\b[A-D]\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation and the articles a/an/the, collapse whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def f1_score(prediction: str, reference: str) -> float:
    """SQuAD token F1."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _letter(text: str) -> str | None:
    match = _LETTER.search(text)
    return match.group() if match else None


def accuracy_score(prediction: str, reference: str) -> float:
    """1 if the first standalone A-D letter of the prediction is the gold's letter."""
    gold = _letter(reference)
    if gold is None:
        raise ValueError(f"QuALITY gold {reference[:60]!r} has no answer letter A-D")
    return float(_letter(prediction) == gold)


def _percentage(text: str) -> float | None:
    match = _PERCENT.search(text)
    return float(match.group(0).replace("%", "")) if match else None


def exp_similarity_score(prediction: str, reference: str) -> float:
    """0.5 ** (|gold% - predicted%| / 10); a gold without a percentage is refused.

    The official metric reads such a gold as 0% (its ``raise`` is commented out); here it is
    a ValueError, as QuALITY's gold without a letter is (an assert in the official code).
    """
    gold = _percentage(reference)
    if gold is None:
        raise ValueError(f"SpaceDigest gold {reference[:60]!r} has no percentage (like '70%')")
    pred = _percentage(prediction)
    if pred is None:
        return 0.0
    return 0.5 ** (abs(gold - pred) / 10)


def summary_ids(text: str) -> list[int]:
    """The integers of an answer like "3, 1, 2" (other characters dropped); [] if none parse."""
    cleaned = re.sub(r"[^0-9\s,]", "", text).replace(",", " ").strip(string.punctuation)
    return [int(token) for token in cleaned.split()]


def _positions(ids: list[int]) -> list[int]:
    order = [-1] * len(ids)
    for position, summary_id in enumerate(ids, 1):
        order[summary_id - 1] = position
    return order


def concordance_index_score(prediction: str, reference: str) -> float:
    """Share of summary pairs the prediction orders as the gold does (0 if not a permutation)."""
    pred, gold = summary_ids(prediction), summary_ids(reference)
    if sorted(pred) != sorted(gold):
        return 0.0
    if sorted(gold) != list(range(1, len(gold) + 1)) or len(gold) < 2:
        raise ValueError(f"BookSumSort gold {reference!r} is not an order of 2+ summary ids")
    gold_pos, pred_pos = _positions(gold), _positions(pred)
    pairs = [(i, j) for i in range(len(gold)) for j in range(i + 1, len(gold))]
    agree = sum(
        1 for i, j in pairs if (gold_pos[i] - gold_pos[j]) * (pred_pos[i] - pred_pos[j]) > 0
    )
    return agree / len(pairs)


ROUGE_KEYS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")


def rouge_scores(prediction: str, reference: str, with_lsum: bool) -> dict[str, float]:
    """rouge_score F-measures (no stemmer) of rouge1, rouge2, rougeL and, if asked, rougeLsum."""
    from rouge_score import rouge_scorer

    keys = [*ROUGE_KEYS, "rougeLsum"] if with_lsum else list(ROUGE_KEYS)
    if with_lsum:
        prediction, reference = _sentence_lines(prediction), _sentence_lines(reference)
    scores = rouge_scorer.RougeScorer(keys, use_stemmer=False).score(reference, prediction)
    return {key: scores[key].fmeasure for key in keys}


def _sentence_lines(text: str) -> str:
    import nltk

    return "\n".join(nltk.sent_tokenize(text))


def sentence_splitter_reason() -> str | None:
    """None if nltk's punkt sentence splitter is available offline, else why not."""
    try:
        import nltk

        nltk.sent_tokenize("One. Two.")
    except (ImportError, LookupError):
        return (
            "rougeLsum needs nltk's punkt sentence splitter, not found offline "
            "(`python -m nltk.downloader punkt_tab`); rouge1/2/L and the geometric mean "
            "do not depend on it"
        )
    return None
