"""infinite_bench: InfiniteBench's 12 English and Chinese tasks (100k+ token contexts)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks.base import HubBenchmark
from sparse_attention_hub.benchmarks.data_needs import DataNeed, hub_files
from sparse_attention_hub.benchmarks.infinite_bench.prompts import (
    MAX_NEW_TOKENS,
    TASKS,
    split_prompt,
)
from sparse_attention_hub.benchmarks.infinite_bench.scoring import (
    choice_labels,
    label_list,
    score_row,
)
from sparse_attention_hub.benchmarks.local_data import download_hub_file, read_subset, read_table
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import mean_score

CHOICE_TASKS = frozenset({"longbook_choice_eng", "code_debug"})
_COLUMNS = ("context", "input", "answer")


def _required(task: str) -> tuple[str, ...]:
    return (*_COLUMNS, "options") if task in CHOICE_TASKS else _COLUMNS


def row_labels(task: str, answer: Any, options: Any) -> list[Any]:
    """The labels the official scorer gets: ``get_answer`` (choice tasks) or the answer list."""
    if task in CHOICE_TASKS:
        return choice_labels(answer, options)
    labels = label_list(answer)
    if not labels:
        raise ValueError(f"an InfiniteBench {task} row has no answer: {answer!r}")
    return labels


def score_task(task: str, frame: pd.DataFrame) -> float:
    """The mean official score of one task's rows, x100, rounded to 2 decimals."""
    scores = [
        score_row(task, p, labels)
        for p, labels in zip(frame["predicted_answer"], frame["labels"], strict=True)
    ]
    return round(100 * sum(scores) / len(scores), 2)


@register_benchmark("infinite_bench")
class InfiniteBench(HubBenchmark):
    """InfiniteBench (xinrongzhang2022/InfiniteBench): 12 tasks, one subset per task.

    Hub: the task's ``<task>.jsonl`` of the dataset repository, downloaded once into the
    HuggingFace cache. Options: ``revision`` of the hub dataset.
    """

    benchmark_name = "infinite_bench"
    all_datasets = TASKS
    huggingface_dataset_id = "xinrongzhang2022/InfiniteBench"
    description = "InfiniteBench: 12 En/Zh tasks over 100k+ tokens, official prompts and scoring"
    label_columns = ("answer", "options", "labels", "id")

    def data_needs(self) -> list[DataNeed]:
        if self.data_dir is not None:
            return super().data_needs()
        files = [f"{task}.jsonl" for task in self.subsets_to_run]
        return hub_files(self.huggingface_dataset_id or "", files, self.revision)

    def _load_raw(self, task: str) -> pd.DataFrame:
        if self.data_dir is not None:
            return read_subset(self.data_dir, task, _required(task), ("answer", "options"))
        name = self.huggingface_dataset_id or ""
        frame = read_table(download_hub_file(name, f"{task}.jsonl", self.revision))
        missing = [c for c in _required(task) if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}/{task}.jsonl is missing column(s) {missing}")
        return frame

    def load_datasets(self) -> pd.DataFrame:
        """Every selected task's rows, the official prompt cut after the context."""
        records: list[dict[str, Any]] = []
        for task in self.subsets_to_run:
            for item in self._load_raw(task).to_dict("records"):
                context, question = split_prompt(task, item)
                options = item.get("options")
                records.append(
                    {
                        "context": context,
                        "question": question,
                        "answer_prefix": "",
                        "max_new_tokens": MAX_NEW_TOKENS[task],
                        "task": task,
                        "answer": label_list(item["answer"]),
                        "options": label_list(options) if options is not None else [],
                        "labels": row_labels(task, item["answer"], options),
                        "id": item.get("id"),
                    }
                )
        return pd.DataFrame.from_records(records)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per task: the mean official score x100 (2 decimals); overall: the mean over tasks."""
        task_scores = {
            str(task): score_task(str(task), frame)
            for task, frame in results_df.groupby("task", sort=True)
        }
        return {"overall_score": mean_score(task_scores.values()), "task_scores": task_scores}
