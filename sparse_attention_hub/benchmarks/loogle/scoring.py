"""LooGLE's per-task aggregation (``Evaluation/automatic_eval.py``): means of the row metrics.

QA and summarization ("automatic_sim"): the mean over rows of BLEU-1, BLEU-4, ROUGE-1/2/L
recall, METEOR and (optional) BERTScore. Cloze ("automatic_match"): matched masks / all masks,
exact and partial. All x100, rounded to 2 decimals. A metric that cannot be computed offline
is left out and named in ``unavailable`` with the reason; the others are still computed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks.loogle.metrics import (
    bleu_scores,
    cloze_matches,
    meteor,
    rouge_recalls,
)
from sparse_attention_hub.benchmarks.loogle.wordnet import load_wordnet

BERTSCORE_MODEL = "roberta-large"  # bert_score's model for lang="en"


def _hypothesis(prediction: Any) -> str:
    """The official script replaces an empty prediction by 'None' before scoring."""
    if prediction is None or (isinstance(prediction, float) and pd.isna(prediction)):
        return "None"
    return str(prediction) or "None"


def _mean100(values: list[float]) -> float:
    return round(100 * sum(values) / len(values), 2)


def bertscore_recall(
    references: list[str], hypotheses: list[str]
) -> tuple[list[float] | None, str | None]:
    """bert_score's recall per row (the official ``score(...)[1]``), or (None, reason)."""
    try:
        from bert_score import score
        from huggingface_hub import try_to_load_from_cache
    except ImportError as exc:
        return None, f"bert_score is not installed ({exc})"
    if not isinstance(try_to_load_from_cache(BERTSCORE_MODEL, "config.json"), str):
        return None, f"the BERTScore model {BERTSCORE_MODEL!r} is not in the local HF cache"
    try:
        recall = score(references, hypotheses, lang="en")[1]
    except Exception as exc:  # a broken local model: report it, keep the other metrics
        return None, f"BERTScore failed: {exc}"
    return [float(v) for v in recall], None


def _similarity(frame: pd.DataFrame, bertscore: bool) -> tuple[dict[str, float], dict[str, str]]:
    refs = [str(a) for a in frame["answer"]]
    hyps = [_hypothesis(p) for p in frame["predicted_answer"]]
    bleu = [bleu_scores(r, h) for r, h in zip(refs, hyps, strict=True)]
    rouge = [rouge_recalls(r, h) for r, h in zip(refs, hyps, strict=True)]
    metrics = {
        "bleu1": _mean100([b[0] for b in bleu]),
        "bleu4": _mean100([b[1] for b in bleu]),
        "rouge1": _mean100([r[0] for r in rouge]),
        "rouge2": _mean100([r[1] for r in rouge]),
        "rougeL": _mean100([r[2] for r in rouge]),
    }
    unavailable: dict[str, str] = {}
    wordnet, reason = load_wordnet()
    if wordnet is None:
        unavailable["meteor"] = str(reason)
    else:
        metrics["meteor"] = _mean100(
            [meteor(r, h, wordnet) for r, h in zip(refs, hyps, strict=True)]
        )
    if not bertscore:
        unavailable["bertscore"] = "off (the benchmark option bertscore=True turns it on)"
    else:
        values, reason = bertscore_recall(refs, hyps)
        if values is None:
            unavailable["bertscore"] = str(reason)
        else:
            metrics["bertscore"] = _mean100(values)
    return metrics, unavailable


def score_task(task: str, frame: pd.DataFrame, bertscore: bool = False) -> dict[str, Any]:
    """{"score", "metrics", "unavailable"} of one task's rows."""
    if task == "shortdep_cloze":
        counts = [
            cloze_matches(dict(a), _hypothesis(p))
            for a, p in zip(frame["answer"], frame["predicted_answer"], strict=True)
        ]
        total = sum(c[2] for c in counts)
        metrics = {
            "exact_match": round(100 * sum(c[0] for c in counts) / total, 2),
            "partial_match": round(100 * sum(c[1] for c in counts) / total, 2),
        }
        return {"score": metrics["exact_match"], "metrics": metrics, "unavailable": {}}
    metrics, unavailable = _similarity(frame, bertscore)
    return {"score": metrics["rougeL"], "metrics": metrics, "unavailable": unavailable}
