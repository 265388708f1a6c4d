"""longbench_v2: LongBench-v2's 503 multiple-choice questions, 0-shot or with a chain of thought."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks.base import FollowUp, HubBenchmark
from sparse_attention_hub.benchmarks.data_needs import DataNeed, hub_configs, local_need
from sparse_attention_hub.benchmarks.local_data import load_hub_split, read_subset
from sparse_attention_hub.benchmarks.longbench_v2.prompts import (
    COT_ANSWER_MAX_NEW_TOKENS,
    MAX_NEW_TOKENS,
    answer_prompt,
    split_prompt,
)
from sparse_attention_hub.benchmarks.longbench_v2.scoring import score_subset
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import mean_score

SUBSETS: tuple[str, ...] = ("0shot", "cot")
#: The hub dataset's columns the rows need (THUDM/LongBench-v2, split "train").
DATA_COLUMNS: tuple[str, ...] = (
    "_id",
    "difficulty",
    "length",
    "question",
    "choice_A",
    "choice_B",
    "choice_C",
    "choice_D",
    "answer",
    "context",
)
#: What the cot subset's second question needs again (renamed: "question" is the prompt part).
CHOICE_FIELDS: tuple[str, ...] = ("choice_A", "choice_B", "choice_C", "choice_D")
#: The local file (the hub repository's own ``data.json``) in ``data_dir``.
LOCAL_NAME = "data"


@register_benchmark("longbench_v2")
class LongBenchV2(HubBenchmark):
    """LongBench-v2 (THUDM/LongBench-v2): 503 four-choice questions on 8k-2M word contexts.

    Subsets are the official prompt styles: ``0shot`` (answer directly, 128 new tokens) and
    ``cot`` (think step by step, 1024 new tokens). Options: ``revision`` of the hub dataset.
    """

    benchmark_name = "longbench_v2"
    all_datasets = SUBSETS
    huggingface_dataset_id = "THUDM/LongBench-v2"
    description = "LongBench-v2: 503 multiple-choice questions, accuracy by difficulty and length"
    label_columns = (
        "answer",
        "difficulty",
        "length",
        "_id",
        "domain",
        "sub_domain",
        "item_question",
        *CHOICE_FIELDS,
    )

    def data_needs(self) -> list[DataNeed]:
        if self.data_dir is not None:
            return [local_need(self.data_dir, LOCAL_NAME)]
        return hub_configs(self.huggingface_dataset_id or "", [None], self.revision)

    def _load_raw(self) -> pd.DataFrame:
        if self.data_dir is not None:
            return read_subset(self.data_dir, LOCAL_NAME, DATA_COLUMNS)
        frame = load_hub_split(
            self.huggingface_dataset_id or "", revision=self.revision, split="train"
        )
        missing = [c for c in DATA_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.huggingface_dataset_id} is missing column(s) {missing}")
        return frame

    def load_datasets(self) -> pd.DataFrame:
        """The questions once per selected subset, with that subset's prompt cut after the text."""
        raw = self._load_raw().to_dict("records")
        records: list[dict[str, Any]] = []
        for subset in self.subsets_to_run:
            for item in raw:
                context, question = split_prompt(subset, item)
                records.append(
                    {
                        "context": context,
                        "question": question,
                        "answer_prefix": "",
                        "max_new_tokens": MAX_NEW_TOKENS[subset],
                        "task": subset,
                        "answer": str(item["answer"]),
                        "item_question": item["question"],
                        "difficulty": item["difficulty"],
                        "length": item["length"],
                        "_id": item["_id"],
                        "domain": item.get("domain"),
                        "sub_domain": item.get("sub_domain"),
                        **{key: item[key] for key in CHOICE_FIELDS},
                    }
                )
        return pd.DataFrame.from_records(records)

    def follow_up(self, row: Mapping[str, Any], answer: str) -> FollowUp | None:
        """cot: pred.py's second question, the chain of thought without the document.

        An empty chain of thought gets none (pred.py drops the row; so does the scorer).
        """
        if row["task"] != "cot" or answer == "":
            return None
        item = {**row, "question": row["item_question"]}
        context, question = answer_prompt(item, answer.strip())
        return FollowUp(context, question, COT_ANSWER_MAX_NEW_TOKENS)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per subset: accuracy overall/easy/hard/short/medium/long (x100, 1 decimal)."""
        details: dict[str, dict[str, Any]] = {}
        for task, frame in results_df.groupby("task", sort=True):
            details[str(task)] = score_subset(frame)
        task_scores = {task: detail["overall"] for task, detail in details.items()}
        return {
            "overall_score": mean_score(task_scores.values()),
            "task_scores": task_scores,
            "accuracy": details,
        }
