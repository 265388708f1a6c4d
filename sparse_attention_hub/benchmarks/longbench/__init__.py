"""longbench: LongBench and LongBench-E with the official prompts and metrics."""

from sparse_attention_hub.benchmarks.longbench.benchmark import (
    LongBench,
    LongBenchE,
    score_row,
    score_task,
)
from sparse_attention_hub.benchmarks.longbench.tasks import (
    LONGBENCH_E_TASKS,
    LONGBENCH_TASKS,
    base_task,
    length_bucket,
    split_prompt,
)

__all__ = [
    "LONGBENCH_E_TASKS",
    "LONGBENCH_TASKS",
    "LongBench",
    "LongBenchE",
    "base_task",
    "length_bucket",
    "score_row",
    "score_task",
    "split_prompt",
]
