"""zero_scrolls: ZeroSCROLLS with the official metrics (validation) and submission format (test)."""

from sparse_attention_hub.benchmarks.zero_scrolls.benchmark import (
    ZeroScrolls,
    group_examples,
    submission,
    submission_table,
)
from sparse_attention_hub.benchmarks.zero_scrolls.metrics import (
    accuracy_score,
    concordance_index_score,
    exp_similarity_score,
    f1_score,
    rouge_scores,
)
from sparse_attention_hub.benchmarks.zero_scrolls.scoring import score_task

__all__ = [
    "ZeroScrolls",
    "accuracy_score",
    "concordance_index_score",
    "exp_similarity_score",
    "f1_score",
    "group_examples",
    "rouge_scores",
    "score_task",
    "submission",
    "submission_table",
]
