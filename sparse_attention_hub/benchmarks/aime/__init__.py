"""aime: AIME 2024 and 2025 with boxed-answer extraction and avg@k."""

from sparse_attention_hub.benchmarks.aime.benchmark import Aime, score_samples
from sparse_attention_hub.benchmarks.aime.extraction import (
    extract_answer,
    is_correct,
    normalize_integer,
)

__all__ = ["Aime", "extract_answer", "is_correct", "normalize_integer", "score_samples"]
