"""LooGLE's automatic metrics (bigai-nlco/LooGLE ``Evaluation/automatic_metrics.py``).

Per row (the official ``evaluation`` first replaces an empty prediction by ``'None'``):

- BLEU-1 and BLEU-4: nltk ``sentence_bleu`` on whitespace tokens (newlines as spaces), weights
  (1, 0, 0, 0) and (0, 0, 0, 1), no smoothing;
- ROUGE-1, ROUGE-2, ROUGE-L *recall* of the ``rouge`` package (case-sensitive, sentences split
  on ".");
- METEOR: nltk ``single_meteor_score`` on the *sets* of tokens, which needs WordNet (see
  :mod:`.wordnet`);
- exact and partial match for cloze: the prediction is a dict literal mapping masks to
  entities, parsed with ``ast.literal_eval`` (the official code calls ``eval``).
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping
from typing import Any


def _tokens(text: str) -> list[str]:
    return text.replace("\n", " ").split()


def bleu_scores(reference: str, hypothesis: str) -> tuple[float, float]:
    """(BLEU-1, BLEU-4) of ``hypothesis`` against the one ``reference``."""
    from nltk.translate.bleu_score import sentence_bleu

    ref, hyp = _tokens(reference), _tokens(hypothesis)
    with warnings.catch_warnings():  # nltk warns when an n-gram order has no match
        warnings.simplefilter("ignore")
        bleu1 = sentence_bleu([ref], hyp, weights=(1, 0, 0, 0))
        bleu4 = sentence_bleu([ref], hyp, weights=(0, 0, 0, 1))
    return float(bleu1), float(bleu4)


def rouge_recalls(reference: str, hypothesis: str) -> tuple[float, float, float]:
    """(ROUGE-1, ROUGE-2, ROUGE-L) recall of the ``rouge`` package.

    Where the package raises (a text with no sentence, e.g. "...", or its recursion limit on
    very long sentences) the official script crashes; here the row scores 0.
    """
    from rouge import Rouge

    try:
        scores = Rouge().get_scores(hyps=[hypothesis], refs=[reference])[0]
    except (ValueError, RecursionError):
        return 0.0, 0.0, 0.0
    return scores["rouge-1"]["r"], scores["rouge-2"]["r"], scores["rouge-l"]["r"]


def meteor(reference: str, hypothesis: str, wordnet: Any) -> float:
    """METEOR of the token sets (sorted, so the score does not depend on hash order)."""
    from nltk.translate.meteor_score import single_meteor_score

    ref, hyp = sorted(set(_tokens(reference))), sorted(set(_tokens(hypothesis)))
    return float(single_meteor_score(ref, hyp, wordnet=wordnet))


def parse_cloze(hypothesis: Any) -> dict[Any, Any] | None:
    """The prediction as a dict (a Python/JSON-style literal, never evaluated), or None."""
    if isinstance(hypothesis, Mapping):
        return dict(hypothesis)
    try:
        parsed = ast.literal_eval(str(hypothesis))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None


def cloze_matches(reference: Mapping[str, str], hypothesis: Any) -> tuple[int, int, int]:
    """(exact matches, partial matches, masks) of one cloze row.

    Exact: the predicted entity equals the gold one. Partial: they share a whitespace token.
    An unparsable prediction matches nothing. (A non-str predicted value is compared as
    ``str(value)`` for the partial match, where the official ``.split()`` would raise.)
    """
    predicted = parse_cloze(hypothesis)
    count = len(reference)
    if predicted is None:
        return 0, 0, count
    exact = sum(1 for k in reference if k in predicted and predicted[k] == reference[k])
    partial = sum(
        1
        for k in reference
        if k in predicted and set(str(reference[k]).split()) & set(str(predicted[k]).split())
    )
    return exact, partial, count
