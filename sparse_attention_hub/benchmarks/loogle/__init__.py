"""loogle: LooGLE with the official prompts and automatic metrics."""

from sparse_attention_hub.benchmarks.loogle.benchmark import LooGLE, parse_qa_pairs
from sparse_attention_hub.benchmarks.loogle.metrics import (
    bleu_scores,
    cloze_matches,
    meteor,
    parse_cloze,
    rouge_recalls,
)
from sparse_attention_hub.benchmarks.loogle.scoring import score_task
from sparse_attention_hub.benchmarks.loogle.wordnet import load_wordnet

__all__ = [
    "LooGLE",
    "bleu_scores",
    "cloze_matches",
    "load_wordnet",
    "meteor",
    "parse_cloze",
    "parse_qa_pairs",
    "rouge_recalls",
    "score_task",
]
