"""LongBench's tasks, prompts, generation lengths and metrics (THUDM/LongBench ``config/``)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LONGBENCH_TASKS: tuple[str, ...] = (
    "narrativeqa",
    "qasper",
    "multifieldqa_en",
    "multifieldqa_zh",
    "hotpotqa",
    "2wikimqa",
    "musique",
    "dureader",
    "gov_report",
    "qmsum",
    "multi_news",
    "vcsum",
    "trec",
    "triviaqa",
    "samsum",
    "lsht",
    "passage_count",
    "passage_retrieval_en",
    "passage_retrieval_zh",
    "lcc",
    "repobench-p",
)
# LongBench-E: the hub configs are these names with an "_e" suffix
LONGBENCH_E_BASES: tuple[str, ...] = (
    "qasper",
    "multifieldqa_en",
    "hotpotqa",
    "2wikimqa",
    "gov_report",
    "multi_news",
    "trec",
    "triviaqa",
    "samsum",
    "passage_count",
    "passage_retrieval_en",
    "lcc",
    "repobench-p",
)
LONGBENCH_E_TASKS: tuple[str, ...] = tuple(f"{name}_e" for name in LONGBENCH_E_BASES)

TASK_METRIC: dict[str, str] = {
    "narrativeqa": "qa_f1",
    "qasper": "qa_f1",
    "multifieldqa_en": "qa_f1",
    "multifieldqa_zh": "qa_f1_zh",
    "hotpotqa": "qa_f1",
    "2wikimqa": "qa_f1",
    "musique": "qa_f1",
    "dureader": "rouge_zh",
    "gov_report": "rouge",
    "qmsum": "rouge",
    "multi_news": "rouge",
    "vcsum": "rouge_zh",
    "trec": "classification",
    "triviaqa": "qa_f1",
    "samsum": "rouge",
    "lsht": "classification",
    "passage_retrieval_en": "retrieval",
    "passage_count": "count",
    "passage_retrieval_zh": "retrieval_zh",
    "lcc": "code_sim",
    "repobench-p": "code_sim",
}
# few-shot tasks: only the first line of the prediction is scored
FIRST_LINE_TASKS = frozenset({"trec", "triviaqa", "samsum", "lsht"})
# tasks LongBench runs without a chat template (few-shot and code completion)
NO_CHAT_TASKS = frozenset({"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"})
LENGTH_BUCKETS = ("0-4k", "4-8k", "8k+")

_HERE = Path(__file__).parent


@cache
def dataset2prompt() -> dict[str, str]:
    """LongBench's prompt template per task (``{context}`` and ``{input}`` placeholders)."""
    return dict(json.loads((_HERE / "dataset2prompt.json").read_text(encoding="utf-8")))


@cache
def dataset2maxlen() -> dict[str, int]:
    """LongBench's max_new_tokens per task."""
    return dict(json.loads((_HERE / "dataset2maxlen.json").read_text(encoding="utf-8")))


def base_task(task: str) -> str:
    """The LongBench task of a subset name: "qasper_e" -> "qasper" (only a final "_e" goes)."""
    if task.endswith("_e") and task[:-2] in LONGBENCH_E_BASES:
        return task[:-2]
    if task in LONGBENCH_TASKS:
        return task
    raise ValueError(
        f"unknown LongBench task {task!r}; valid: {', '.join(LONGBENCH_TASKS + LONGBENCH_E_TASKS)}"
    )


def length_bucket(length: int) -> str:
    """LongBench-E's bucket of a sample's length: "0-4k" (< 4000), "4-8k" (< 8000), "8k+"."""
    if length < 4000:
        return "0-4k"
    return "4-8k" if length < 8000 else "8k+"


def split_prompt(task: str, context: str, question: str) -> tuple[str, str]:
    """LongBench's prompt cut after the context: (instruction + context, rest with the input).

    The context part is what the adapter prefills once; the rest (question and answer cue)
    is the question. ``context_part + question_part`` equals LongBench's full prompt.
    """
    template = dataset2prompt()[base_task(task)]
    head, tail = template.split("{context}")
    return head + context, tail.replace("{input}", question)
