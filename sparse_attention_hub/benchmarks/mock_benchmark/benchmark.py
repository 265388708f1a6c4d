"""A few short contexts with several questions each; scored by case-insensitive containment."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.data_needs import DataNeed
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import mean_score, score_by_task, string_match_part

_CONTEXTS: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {
    "reading": (
        "Mara keeps a small orchard on the hill behind the mill. She grows forty apple trees and "
        "twelve pear trees. Every autumn her brother Tomas drives the fruit to the market in "
        "Lindenfeld, a trip of two hours by cart. The best apples are a red variety called Alder "
        "Gold.",
        [
            ("How many apple trees does Mara grow?", ["forty", "40"]),
            ("Who drives the fruit to the market?", ["Tomas"]),
            ("What is the name of the best apple variety?", ["Alder Gold"]),
        ],
    ),
    "science": (
        "Water boils at 100 degrees Celsius at sea level. At higher altitude the air pressure is "
        "lower, so water boils at a lower temperature. Ice melts at 0 degrees Celsius. The "
        "chemical formula of water is H2O: two hydrogen atoms and one oxygen atom.",
        [
            ("At what temperature does water boil at sea level, in degrees Celsius?", ["100"]),
            ("What is the chemical formula of water?", ["H2O"]),
        ],
    ),
    "travel": (
        "The night train leaves Porto at 22:15 and reaches Madrid at 07:40 the next morning. "
        "Sleeping cabins hold four beds. Breakfast is served in the dining car, which is the "
        "third car from the front. Tickets cost 89 euros.",
        [
            ("When does the night train leave Porto?", ["22:15"]),
            ("Which car is the dining car?", ["third"]),
            ("How much does a ticket cost?", ["89"]),
        ],
    ),
}
_PREFIX = "Answer:"
_MAX_NEW_TOKENS = 16


def mock_rows() -> pd.DataFrame:
    """The mock rows in the standard schema (the same frame every call)."""
    records: list[dict[str, Any]] = []
    for task, (context, questions) in _CONTEXTS.items():
        for question, answers in questions:
            records.append(
                {
                    "context": context,
                    "question": question,
                    "answer_prefix": _PREFIX,
                    "max_new_tokens": _MAX_NEW_TOKENS,
                    "task": task,
                    "answer": list(answers),
                }
            )
    return pd.DataFrame.from_records(records)


@register_benchmark("mock_benchmark", aliases=("mock",))
class MockBenchmark(Benchmark):
    """A handful of short QA rows, several questions per context; no download."""

    benchmark_name = "mock_benchmark"
    all_datasets = ()
    huggingface_dataset_id = None
    description = "8 short QA rows on 3 contexts (tests and the demo); no download"
    option_help: ClassVar[dict[str, str]] = {"data_dir": "unused (the rows are built in)"}

    def data_source(self) -> dict[str, Any]:
        return {"local_source": "built-in"}

    def data_needs(self) -> list[DataNeed]:
        return []  # the rows are built in

    def load_datasets(self) -> pd.DataFrame:
        return mock_rows()

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per task: share of rows whose prediction contains a gold answer (x100)."""
        task_scores = score_by_task(results_df, lambda _task: string_match_part)
        return {"overall_score": mean_score(task_scores.values()), "task_scores": task_scores}
