"""aime: AIME 2024 and 2025 (30 problems each), boxed answers, avg@k over sampled solutions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from sparse_attention_hub.benchmarks.aime.extraction import is_correct
from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.data_needs import HUB_DATASET, DataNeed
from sparse_attention_hub.benchmarks.local_data import load_hub_split, read_subset
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import mean_score

#: subset -> hub dataset (split "train"), as lighteval's aime24 / aime25 tasks load them
HUB_DATASETS: dict[str, str] = {"2024": "HuggingFaceH4/aime_2024", "2025": "yentinglin/aime_2025"}
#: DeepSeek-R1's and Qwen2.5-Math's instruction, after the problem
INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
DEFAULT_MAX_NEW_TOKENS = 32768
_PROBLEM_COLUMNS = ("problem", "question", "Problem")
_ANSWER_COLUMNS = ("answer", "Answer")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _pick(frame: pd.DataFrame, names: tuple[str, ...], source: str) -> str:
    for name in names:
        if name in frame.columns:
            return name
    raise ValueError(
        f"{source} has none of the columns {', '.join(map(repr, names))}; "
        f"it has {', '.join(map(str, frame.columns))}"
    )


def score_samples(frame: pd.DataFrame) -> dict[str, Any]:
    """avg@k (mean correctness over all samples, x100) and pass@k (any sample right, x100)."""
    correct = [
        is_correct(str(p), a)
        for p, a in zip(frame["predicted_answer"].fillna(""), frame["answer"], strict=True)
    ]
    per_problem: dict[Any, list[bool]] = {}
    for problem_id, flag in zip(frame["problem_id"], correct, strict=True):
        per_problem.setdefault(problem_id, []).append(flag)
    avg = [sum(flags) / len(flags) for flags in per_problem.values()]
    return {
        "avg_at_k": round(100 * sum(avg) / len(avg), 2),
        "pass_at_k": round(100 * sum(any(f) for f in per_problem.values()) / len(avg), 2),
        "num_problems": len(per_problem),
        "samples_per_problem": max(len(f) for f in per_problem.values()),
    }


@register_benchmark("aime")
class Aime(Benchmark):
    """AIME 2024 and 2025: 30 integer-answer problems per year, long reasoning generations.

    Options: ``num_samples_per_question`` (default 1): k solutions per problem, scored avg@k
    (sampling settings come from generation_kwargs; sample i uses seed + i); and
    ``max_new_tokens`` (default 32768).
    """

    benchmark_name = "aime"
    all_datasets = ("2024", "2025")
    huggingface_dataset_id = None  # one hub dataset per subset: see HUB_DATASETS
    description = "AIME 2024/2025: \\boxed{} integer answers, avg@k over num_samples_per_question"
    label_columns = ("answer", "problem_id", "sample_index")
    option_help: ClassVar[dict[str, str]] = {
        "num_samples_per_question": "k solutions per problem, scored avg@k (sample i: seed + i)",
        "max_new_tokens": "generation budget per solution",
    }

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        num_samples_per_question: int = 1,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        **options: Any,
    ) -> None:
        super().__init__(subsets_to_run=subsets_to_run, data_dir=data_dir, **options)
        self.num_samples_per_question = _positive_int(
            "num_samples_per_question", num_samples_per_question
        )
        self.max_new_tokens = _positive_int("max_new_tokens", max_new_tokens)

    def data_source(self) -> dict[str, Any]:
        if self.data_dir is not None:
            return super().data_source()
        ids = ", ".join(HUB_DATASETS[s] for s in self.subsets_to_run)
        return {"dataset_id": ids, "revision": None}

    def config_options(self) -> dict[str, Any]:
        return {
            "num_samples_per_question": self.num_samples_per_question,
            "max_new_tokens": self.max_new_tokens,
        }

    def data_needs(self) -> list[DataNeed]:
        if self.data_dir is not None:
            return super().data_needs()
        return [DataNeed(HUB_DATASET, HUB_DATASETS[s]) for s in self.subsets_to_run]

    def _load_raw(self, subset: str) -> pd.DataFrame:
        if self.data_dir is not None:
            return read_subset(self.data_dir, subset, ())
        return load_hub_split(HUB_DATASETS[subset], split="train")

    def load_datasets(self) -> pd.DataFrame:
        """Each problem ``num_samples_per_question`` times (``sample_index`` 0..k-1)."""
        records: list[dict[str, Any]] = []
        for subset in self.subsets_to_run:
            raw = self._load_raw(subset)
            source = f"AIME {subset} data"
            problem, answer = (
                _pick(raw, _PROBLEM_COLUMNS, source),
                _pick(raw, _ANSWER_COLUMNS, source),
            )
            for index, item in enumerate(raw.to_dict("records")):
                for sample in range(self.num_samples_per_question):
                    records.append(
                        {
                            "context": str(item[problem]).strip(),
                            "question": INSTRUCTION,
                            "answer_prefix": "",
                            "max_new_tokens": self.max_new_tokens,
                            "task": subset,
                            "answer": str(item[answer]).strip(),
                            "problem_id": f"{subset}-{item.get('id', index)}",
                            "sample_index": sample,
                        }
                    )
        return pd.DataFrame.from_records(records)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per year: avg@k accuracy (x100) as the task score, with pass@k alongside."""
        details = {str(t): score_samples(f) for t, f in results_df.groupby("task", sort=True)}
        task_scores = {task: detail["avg_at_k"] for task, detail in details.items()}
        return {
            "overall_score": mean_score(task_scores.values()),
            "task_scores": task_scores,
            "accuracy": details,
        }
