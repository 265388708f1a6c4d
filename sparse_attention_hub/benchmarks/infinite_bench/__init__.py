"""infinite_bench: InfiniteBench with the official open-model prompts and compute_scores."""

from sparse_attention_hub.benchmarks.infinite_bench.benchmark import InfiniteBench, score_task
from sparse_attention_hub.benchmarks.infinite_bench.prompts import TASKS, split_prompt
from sparse_attention_hub.benchmarks.infinite_bench.scoring import (
    SCORERS,
    choice_labels,
    label_list,
    score_row,
)

__all__ = [
    "SCORERS",
    "TASKS",
    "InfiniteBench",
    "choice_labels",
    "label_list",
    "score_row",
    "score_task",
    "split_prompt",
]
