"""zero_scrolls: ZeroSCROLLS's 10 long-text tasks, zero-shot prompts built into the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from sparse_attention_hub import cell_store
from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.data_needs import DataNeed, hub_files, local_need
from sparse_attention_hub.benchmarks.local_data import (
    download_hub_file,
    read_subset,
    read_zip_member_jsonl,
)
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import mean_score
from sparse_attention_hub.benchmarks.zero_scrolls.scoring import score_task
from sparse_attention_hub.benchmarks.zero_scrolls.tasks import (
    MAX_NEW_TOKENS,
    SPLITS,
    SUBMISSION_FILE,
    SUBMISSION_LINK,
    TASKS,
)

_COLUMNS = ("id", "input", "output", "document_end_index")


def group_examples(raw: pd.DataFrame) -> list[dict[str, Any]]:
    """One example per id, first-seen order; its outputs collected (rows repeat an id per reference)."""
    examples: dict[str, dict[str, Any]] = {}
    for item in raw.to_dict("records"):
        key = str(item["id"])
        if key not in examples:
            examples[key] = {**{str(k): v for k, v in item.items()}, "outputs": []}
        output = item.get("output")
        if isinstance(output, str):
            examples[key]["outputs"].append(output)
    return list(examples.values())


def submission(results_df: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per task ``{id: prediction}``: the per-task JSON files ``prepare_submission.py`` reads."""
    out: dict[str, dict[str, str]] = {}
    for task, row_id, prediction in zip(
        results_df["task"], results_df["id"], results_df["predicted_answer"], strict=True
    ):
        out.setdefault(str(task), {})[str(row_id)] = "" if pd.isna(prediction) else str(prediction)
    return out


def submission_table(predictions: dict[str, dict[str, str]]) -> pd.DataFrame:
    """The leaderboard CSV's rows: columns Task, ID, Prediction."""
    rows = [(task, i, p) for task, by_id in predictions.items() for i, p in by_id.items()]
    return pd.DataFrame(rows, columns=["Task", "ID", "Prediction"])


@register_benchmark("zero_scrolls")
class ZeroScrolls(Benchmark):
    """ZeroSCROLLS (tau/zero_scrolls): 10 tasks, one subset each.

    Options: ``split`` ("validation", scored; or "test", unlabeled: the predictions go into
    metrics.json and ``zero_scrolls_predictions.csv`` in the leaderboard's format) and
    ``revision`` of the hub dataset.
    """

    benchmark_name = "zero_scrolls"
    all_datasets = TASKS
    huggingface_dataset_id = "tau/zero_scrolls"
    description = (
        "ZeroSCROLLS: 10 zero-shot long-text tasks; validation scored, test for submission"
    )
    label_columns = ("outputs", "id")
    option_help: ClassVar[dict[str, str]] = {
        "split": "validation (scored) or test (predictions in the submission format)",
        "revision": "hub dataset revision",
    }

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        split: str = "validation",
        revision: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(subsets_to_run=subsets_to_run, data_dir=data_dir, **options)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.split = split
        self.revision = revision

    def config_options(self) -> dict[str, Any]:
        return {"split": self.split}

    def data_needs(self) -> list[DataNeed]:
        if self.data_dir is not None:
            return [local_need(self.data_dir / task, self.split) for task in self.subsets_to_run]
        files = [f"{task}.zip" for task in self.subsets_to_run]
        return hub_files(self.huggingface_dataset_id or "", files, self.revision)

    def _load_raw(self, task: str) -> pd.DataFrame:
        if self.data_dir is not None:
            return read_subset(self.data_dir / task, self.split, _COLUMNS)
        name = self.huggingface_dataset_id or ""
        archive = download_hub_file(name, f"{task}.zip", self.revision)
        frame = read_zip_member_jsonl(archive, f"{task}/{self.split}.jsonl")
        missing = [c for c in _COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.huggingface_dataset_id}/{task} is missing column(s) {missing}")
        return frame

    def load_datasets(self) -> pd.DataFrame:
        """One row per example id; the prompt cut at ``document_end_index``."""
        records: list[dict[str, Any]] = []
        for task in self.subsets_to_run:
            for item in group_examples(self._load_raw(task)):
                text, cut = str(item["input"]), int(item["document_end_index"])
                records.append(
                    {
                        "context": text[:cut],
                        "question": text[cut:],
                        "answer_prefix": "",
                        "max_new_tokens": MAX_NEW_TOKENS[task],
                        "task": task,
                        "outputs": item["outputs"],
                        "id": str(item["id"]),
                    }
                )
        return pd.DataFrame.from_records(records)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Validation: each task's official metric (x100). Test: the predictions to submit."""
        if self.split == "test":
            return {
                "overall_score": None,
                "task_scores": {},
                "split": "test",
                "note": (
                    "the test split has no labels: nothing is scored; the predictions are in "
                    f"'submission' (per task {{id: prediction}}, the input of the official "
                    f"prepare_submission.py) and in {SUBMISSION_FILE} (columns Task, ID, "
                    f"Prediction); submit at {SUBMISSION_LINK}"
                ),
                "submission": submission(results_df),
            }
        details = {str(t): score_task(str(t), f) for t, f in results_df.groupby("task", sort=True)}
        task_scores = {task: d["score"] for task, d in details.items()}
        unavailable = {t: d["unavailable"] for t, d in details.items() if d["unavailable"]}
        return {
            "overall_score": mean_score(task_scores.values()),
            "task_scores": task_scores,
            "split": "validation",
            "metrics": {task: d["metrics"] for task, d in details.items()},
            "unavailable": unavailable,
        }

    def run_benchmark(
        self, adapter: Any, result_dir: str | Path, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """As :meth:`Benchmark.run_benchmark`; on the test split also writes the leaderboard CSV."""
        metrics = super().run_benchmark(adapter, result_dir, *args, **kwargs)
        if self.split == "test":
            table = submission_table(metrics["submission"])
            cell_store.write_text_atomic(
                Path(result_dir) / SUBMISSION_FILE, table.to_csv(index=False)
            )
        return metrics
