"""longbench: LongBench's 21 tasks and 13 LongBench-E tasks, with the official scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.data_needs import DataNeed, hub_configs, hub_files
from sparse_attention_hub.benchmarks.local_data import (
    download_hub_file,
    load_hub_split,
    read_subset,
    read_zip_member_jsonl,
)
from sparse_attention_hub.benchmarks.longbench.metrics import METRICS
from sparse_attention_hub.benchmarks.longbench.tasks import (
    FIRST_LINE_TASKS,
    LENGTH_BUCKETS,
    LONGBENCH_E_TASKS,
    LONGBENCH_TASKS,
    NO_CHAT_TASKS,
    TASK_METRIC,
    base_task,
    dataset2maxlen,
    length_bucket,
    split_prompt,
)
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import as_answer_list, mean_score

CLASSIFICATION_TASKS = frozenset(t for t, m in TASK_METRIC.items() if m == "classification")
OFFICIAL_ARCHIVE = "data.zip"


def read_official_archive(archive: Path, subset: str) -> pd.DataFrame:
    """One task of LongBench's official ``data.zip`` (member ``data/<subset>.jsonl``)."""
    return read_zip_member_jsonl(archive, f"data/{subset}.jsonl")


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value)


def _optional_list(value: Any) -> list[str] | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return [str(v) for v in value]


def score_row(task: str, prediction: Any, answers: Any, all_classes: Any = None) -> float:
    """LongBench's score of one row in [0, 1]: the best metric value over the gold answers.

    For trec, triviaqa, samsum and lsht (and their "_e" versions) only the first line of the
    prediction (after leading newlines) is scored.
    """
    base = base_task(task)
    text = _text(prediction)
    if base in FIRST_LINE_TASKS:
        text = text.lstrip("\n").split("\n")[0]
    metric = METRICS[TASK_METRIC[base]]
    classes = _optional_list(all_classes)
    score = 0.0
    for gold in as_answer_list(answers):
        score = max(score, metric(text, gold, all_classes=classes))
    return score


def score_task(task: str, frame: pd.DataFrame) -> tuple[float, dict[str, float | None] | None]:
    """(score x100 rounded to 2, LongBench-E bucket scores or None) for one task's rows."""
    classes = frame["all_classes"] if "all_classes" in frame else [None] * len(frame)
    scores = [
        score_row(task, p, a, c)
        for p, a, c in zip(frame["predicted_answer"], frame["answers"], classes, strict=True)
    ]
    overall = round(100 * sum(scores) / len(scores), 2)
    if not task.endswith("_e"):
        return overall, None
    grouped: dict[str, list[float]] = {name: [] for name in LENGTH_BUCKETS}
    for score, length in zip(scores, frame["length"], strict=True):
        grouped[length_bucket(int(length))].append(score)
    # as LongBench's scorer_e: numpy's mean (pairwise sum) and numpy's rounding, which can
    # differ from the plain sum in the last digit
    buckets = {k: (float(round(100 * np.mean(v), 2)) if v else None) for k, v in grouped.items()}
    return overall, buckets


@register_benchmark("longbench")
class LongBench(Benchmark):
    """LongBench (21 tasks) and LongBench-E (13 "<task>_e" subsets), hub THUDM/LongBench.

    The official data is the ``data.zip`` of the THUDM/LongBench dataset repository (its
    loading script no longer runs under ``datasets`` >= 4): it is downloaded once into the
    HuggingFace cache and each task read from ``data/<task>.jsonl``. Options: ``revision`` of
    the hub dataset, ``dataset_id`` to load a script-free mirror in the same schema (e.g. a
    parquet conversion) with ``datasets.load_dataset``, or ``data_dir`` with local files.
    """

    benchmark_name = "longbench"
    all_datasets = LONGBENCH_TASKS + LONGBENCH_E_TASKS
    huggingface_dataset_id = "THUDM/LongBench"
    description = "LongBench: 21 tasks + 13 LongBench-E tasks, official prompts and metrics"
    label_columns = ("answers", "all_classes", "length")
    option_help: ClassVar[dict[str, str]] = {
        "revision": "hub dataset revision",
        "dataset_id": "a script-free hub mirror in the same schema",
    }

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        revision: str | None = None,
        dataset_id: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(subsets_to_run=subsets_to_run, data_dir=data_dir, **options)
        self.revision = revision
        self.dataset_id = dataset_id or self.huggingface_dataset_id

    def data_source(self) -> dict[str, Any]:
        if self.data_dir is not None:
            return super().data_source()
        return {"dataset_id": self.dataset_id, "revision": self.revision}

    def request_overrides(self, task: str) -> dict[str, Any]:
        """LongBench runs its few-shot and code tasks without a chat template."""
        return {"apply_chat_template": False} if base_task(task) in NO_CHAT_TASKS else {}

    def _required(self, subset: str) -> tuple[str, ...]:
        required = ["context", "input", "answers"]
        if subset.endswith("_e"):
            required.append("length")
        if base_task(subset) in CLASSIFICATION_TASKS:
            required.append("all_classes")
        return tuple(required)

    def data_needs(self) -> list[DataNeed]:
        if self.data_dir is not None:
            return super().data_needs()
        if self.dataset_id == self.huggingface_dataset_id:
            return hub_files(self.dataset_id, [OFFICIAL_ARCHIVE], self.revision)
        return hub_configs(self.dataset_id or "", list(self.subsets_to_run), self.revision)

    def _load_raw(self, subset: str) -> pd.DataFrame:
        if self.data_dir is not None:
            return read_subset(
                self.data_dir, subset, self._required(subset), ("answers", "all_classes")
            )
        if self.dataset_id == self.huggingface_dataset_id:
            archive = download_hub_file(self.dataset_id, OFFICIAL_ARCHIVE, self.revision)
            frame = read_official_archive(archive, subset)
        else:
            frame = load_hub_split(self.dataset_id or "", subset, revision=self.revision)
        missing = [c for c in self._required(subset) if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.dataset_id}/{subset} is missing column(s) {missing}")
        return frame

    def load_datasets(self) -> pd.DataFrame:
        """Every selected subset as rows in the standard schema (LongBench's prompt, cut after the context)."""
        records: list[dict[str, Any]] = []
        for subset in self.subsets_to_run:
            raw = self._load_raw(subset)
            max_new = dataset2maxlen()[base_task(subset)]
            for row in raw.to_dict("records"):
                context, question = split_prompt(
                    subset, _text(row["context"]), _text(row.get("input"))
                )
                records.append(
                    {
                        "context": context,
                        "question": question,
                        "answer_prefix": "",
                        "max_new_tokens": max_new,
                        "task": subset,
                        "answers": as_answer_list(row["answers"]),
                        "all_classes": _optional_list(row.get("all_classes")),
                        "length": row.get("length"),
                        "_id": row.get("_id"),
                    }
                )
        return pd.DataFrame.from_records(records)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per task LongBench score (x100); LongBench-E tasks also per length bucket."""
        task_scores: dict[str, float] = {}
        bucket_scores: dict[str, dict[str, float | None]] = {}
        for task, frame in results_df.groupby("task", sort=True):
            score, buckets = score_task(str(task), frame)
            task_scores[str(task)] = score
            if buckets is not None:
                bucket_scores[str(task)] = buckets
        metrics: dict[str, Any] = {
            "overall_score": mean_score(task_scores.values()),
            "task_scores": task_scores,
        }
        if bucket_scores:
            metrics["length_bucket_scores"] = bucket_scores
        return metrics


@register_benchmark("longbench_e")
class LongBenchE(LongBench):
    """LongBench-E alone: the 13 "<task>_e" subsets, scored per task and per length bucket.

    The same data, prompts and metrics as :class:`LongBench`; without ``subsets`` it runs the
    E tasks only (``longbench`` without subsets runs all 34).
    """

    benchmark_name = "longbench_e"
    all_datasets = LONGBENCH_E_TASKS
    description = "LongBench-E: 13 tasks with length-bucket scores (0-4k, 4-8k, 8k+ words)"
