"""loogle: LooGLE's short- and long-dependency QA, cloze and summarization over long documents."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.local_data import load_hub_split, read_subset
from sparse_attention_hub.benchmarks.loogle.prompts import MAX_NEW_TOKENS, TASKS, split_prompt
from sparse_attention_hub.benchmarks.loogle.scoring import score_task
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import mean_score


def parse_qa_pairs(value: Any) -> list[dict[str, Any]]:
    """The hub's ``qa_pairs``: a Python-literal string (or a list) of {"Q", "A", ...} dicts.

    Parsed with ``ast.literal_eval`` (the official script calls ``eval``); "none" is [].
    """
    if isinstance(value, str):
        if value.strip().lower() == "none":
            return []
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"LooGLE qa_pairs is not a list literal: {value[:80]!r}") from exc
    pairs = list(value) if value is not None else []
    if not all(isinstance(p, dict) and "Q" in p and "A" in p for p in pairs):
        raise ValueError("every LooGLE qa_pairs entry needs 'Q' and 'A'")
    return pairs


@register_benchmark("loogle")
class LooGLE(Benchmark):
    """LooGLE (bigai-nlco/LooGLE): 4 tasks on documents of 24k+ tokens, official prompts.

    Options: ``revision`` of the hub dataset; ``bertscore`` (default False) adds BERTScore,
    which needs the ``bert_score`` package and its model available offline.
    """

    benchmark_name = "loogle"
    all_datasets = TASKS
    huggingface_dataset_id = "bigai-nlco/LooGLE"
    description = "LooGLE: short/long-dependency QA, cloze, summarization; BLEU/ROUGE/METEOR, match"
    label_columns = ("answer", "title")
    option_help: ClassVar[dict[str, str]] = {
        "revision": "hub dataset revision",
        "bertscore": "also BERTScore (needs bert_score and its model offline)",
    }

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        revision: str | None = None,
        bertscore: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(subsets_to_run=subsets_to_run, data_dir=data_dir, **options)
        if not isinstance(bertscore, bool):
            raise ValueError(f"bertscore must be a bool, got {bertscore!r}")
        self.revision = revision
        self.bertscore = bertscore

    def config_options(self) -> dict[str, Any]:
        return {"bertscore": self.bertscore}

    def _load_raw(self, task: str) -> pd.DataFrame:
        required = ("input", "output") if task == "longdep_summarization" else ("input", "qa_pairs")
        if self.data_dir is not None:
            return read_subset(self.data_dir, task, required)
        frame = load_hub_split(self.huggingface_dataset_id or "", task, revision=self.revision)
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.huggingface_dataset_id}/{task} is missing column(s) {missing}")
        return frame

    def load_datasets(self) -> pd.DataFrame:
        """One row per question (per document for summarization), sharing the document."""
        records: list[dict[str, Any]] = []
        for task in self.subsets_to_run:
            for item in self._load_raw(task).to_dict("records"):
                document = str(item["input"])
                if task == "longdep_summarization":
                    pairs = [{"Q": "", "A": str(item["output"])}]
                else:
                    pairs = parse_qa_pairs(item["qa_pairs"])
                for pair in pairs:
                    context, question = split_prompt(task, document, str(pair["Q"]))
                    records.append(
                        {
                            "context": context,
                            "question": question,
                            "answer_prefix": "",
                            "max_new_tokens": MAX_NEW_TOKENS[task],
                            "task": task,
                            "answer": pair["A"],
                            "title": item.get("title"),
                        }
                    )
        return pd.DataFrame.from_records(records)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per task every metric (x100); the task score is exact match (cloze) or ROUGE-L recall."""
        details: dict[str, dict[str, Any]] = {}
        for task, frame in results_df.groupby("task", sort=True):
            details[str(task)] = score_task(str(task), frame, self.bertscore)
        task_scores = {task: d["score"] for task, d in details.items()}
        return {
            "overall_score": mean_score(task_scores.values()),
            "task_scores": task_scores,
            "metrics": {task: d["metrics"] for task, d in details.items()},
            "unavailable": {
                task: d["unavailable"] for task, d in details.items() if d["unavailable"]
            },
        }
