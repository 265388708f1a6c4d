"""longbench_v2: LongBench-v2 with the official prompts, answer extraction and buckets."""

from sparse_attention_hub.benchmarks.longbench_v2.benchmark import SUBSETS, LongBenchV2
from sparse_attention_hub.benchmarks.longbench_v2.scoring import (
    bucket_accuracy,
    extract_answer,
    score_subset,
)

__all__ = ["SUBSETS", "LongBenchV2", "bucket_accuracy", "extract_answer", "score_subset"]
