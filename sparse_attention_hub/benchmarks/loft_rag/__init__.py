"""loft_rag: LOFT's RAG tasks with the published prompts and LOFT's metrics."""

from sparse_attention_hub.benchmarks.loft_rag.benchmark import SUBSETS, LoftRag, hub_dataset_id
from sparse_attention_hub.benchmarks.loft_rag.scoring import (
    extract_prediction,
    multi_value_subspan_em,
    normalize_answer,
    score_row,
    score_task,
)

__all__ = [
    "SUBSETS",
    "LoftRag",
    "extract_prediction",
    "hub_dataset_id",
    "multi_value_subspan_em",
    "normalize_answer",
    "score_row",
    "score_task",
]
