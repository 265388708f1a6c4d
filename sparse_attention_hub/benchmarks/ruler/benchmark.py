"""ruler: NVIDIA RULER's 13 tasks, pre-generated per context length, from the hub.

The hub set is ``simonjegou/ruler`` (the one kvpress evaluates on): one folder per context
length (``data_dir="4096"``), split ``test``, already in the standard schema: ``context,
question, answer_prefix, answer`` (a list of gold strings), ``task``, ``max_new_tokens``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks.base import REQUIRED_COLUMNS, HubBenchmark
from sparse_attention_hub.benchmarks.data_needs import HUB_DATASET, DataNeed
from sparse_attention_hub.benchmarks.local_data import load_hub_split, read_subset
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import (
    mean_score,
    score_by_task,
    string_match_all,
    string_match_part,
)

#: The context lengths simonjegou/ruler publishes (kvpress's generate.sh: SEQ_LENGTHS).
HUB_LENGTHS: tuple[str, ...] = ("4096", "8192", "16384")
#: RULER's longer lengths, in the same schema from local files only (``data_dir``).
LOCAL_LENGTHS: tuple[str, ...] = ("32768", "65536", "131072")
RULER_LENGTHS: tuple[str, ...] = HUB_LENGTHS + LOCAL_LENGTHS
RULER_TASKS: tuple[str, ...] = (
    "niah_single_1",
    "niah_single_2",
    "niah_single_3",
    "niah_multikey_1",
    "niah_multikey_2",
    "niah_multikey_3",
    "niah_multivalue",
    "niah_multiquery",
    "vt",
    "cwe",
    "fwe",
    "qa_1",
    "qa_2",
)


def ruler_metric(task: str) -> Callable[[Sequence[str], Sequence[Sequence[str]]], float]:
    """RULER's metric for ``task``: string_match_part for QA tasks, string_match_all otherwise."""
    return string_match_part if task.split("/")[-1].startswith("qa") else string_match_all


@register_benchmark("ruler")
class Ruler(HubBenchmark):
    """RULER (13 tasks) per context length: 4k/8k/16k from the hub (simonjegou/ruler), and
    32k/64k/128k from local files in the same schema (the hub set has no longer lengths)."""

    benchmark_name = "ruler"
    all_datasets = RULER_LENGTHS
    huggingface_dataset_id = "simonjegou/ruler"
    description = "RULER, 13 tasks per context length, pre-generated (hub: simonjegou/ruler)"

    def _not_on_hub(self, subset: str) -> str:
        return (
            f"ruler subset {subset!r}: {self.huggingface_dataset_id} publishes only "
            f"{', '.join(HUB_LENGTHS)}; for {subset} tokens generate the set with NVIDIA "
            "RULER (kvpress's generate.sh with that SEQ_LENGTHS) and pass data_dir=, or "
            "use the synthetic_ruler benchmark"
        )

    def data_needs(self) -> list[DataNeed]:
        if self.data_dir is not None:
            return super().data_needs()
        source = self.huggingface_dataset_id or ""
        return [
            DataNeed(HUB_DATASET, source, None, self.revision, data_dir=subset)
            if subset in HUB_LENGTHS
            else DataNeed(HUB_DATASET, source, data_dir=subset, problem=self._not_on_hub(subset))
            for subset in self.subsets_to_run
        ]

    def _load_subset(self, subset: str) -> pd.DataFrame:
        required = (*REQUIRED_COLUMNS, "answer")
        if self.data_dir is not None:
            return read_subset(self.data_dir, subset, required, ("answer",))
        if subset not in HUB_LENGTHS:
            raise ValueError(self._not_on_hub(subset))
        frame = load_hub_split(
            self.huggingface_dataset_id or "", data_dir=subset, revision=self.revision
        )
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{self.huggingface_dataset_id}/{subset} is missing column(s) {missing}"
            )
        return frame

    def load_datasets(self) -> pd.DataFrame:
        frames = []
        for subset in self.subsets_to_run:
            frame = self._load_subset(subset)
            frame["length"] = int(subset)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per task RULER string matching (x100); with several lengths, keys are "<len>/<task>"."""
        frame = results_df.copy()
        if "length" in frame and frame["length"].nunique() > 1:
            frame["task"] = frame["length"].astype(str) + "/" + frame["task"].astype(str)
        task_scores = score_by_task(frame, ruler_metric)
        return {"overall_score": mean_score(task_scores.values()), "task_scores": task_scores}
