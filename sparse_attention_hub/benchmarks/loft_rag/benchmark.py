"""loft_rag: LOFT's RAG tasks (nq, hotpotqa, musique, qampari, quest at 32k, 128k and 1m)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks.base import HubBenchmark
from sparse_attention_hub.benchmarks.data_needs import DataNeed, hub_configs
from sparse_attention_hub.benchmarks.local_data import read_subset
from sparse_attention_hub.benchmarks.loft_rag.scoring import score_task
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import as_answer_list, mean_score

DATASETS = ("nq", "hotpotqa", "musique", "qampari", "quest")
LENGTHS = ("32k", "128k", "1m")
SUBSETS: tuple[str, ...] = tuple(f"{d}_{n}" for d in DATASETS for n in LENGTHS)
#: The hub's splits, concatenated in this order (as the reference framework's loader).
SPLITS = ("dev", "test")
COLUMNS = ("context", "question", "answers", "answer_prefix", "max_new_tokens")
HUB_OWNER = "f20180301"


def hub_dataset_id(subset: str) -> str:
    """``f20180301/loft-rag-<dataset>-<length>``: one hub dataset per subset."""
    dataset, length = subset.rsplit("_", 1)
    return f"{HUB_OWNER}/loft-rag-{dataset}-{length}"


def load_hub_splits(dataset_id: str, revision: str | None) -> pd.DataFrame:
    """Every split of ``SPLITS`` the hub dataset has, with a ``split`` column (real download
    path; nothing in tests calls it). A failure names the dataset and the local alternative."""
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id, revision=revision)
    except Exception as exc:
        raise RuntimeError(
            f"could not load {dataset_id} from the HuggingFace hub: {exc}. Pass data_dir= "
            "with local files in the hub schema (see the loft_rag README)."
        ) from exc
    frames = [loaded[s].to_pandas().assign(split=s) for s in SPLITS if s in loaded]
    if not frames:
        raise ValueError(f"{dataset_id} has none of the splits {SPLITS}: {list(loaded)}")
    return pd.concat(frames, ignore_index=True)


@register_benchmark("loft_rag")
class LoftRag(HubBenchmark):
    """LOFT RAG (google-deepmind/loft): 5 datasets x 3 lengths, the prompts as published with
    the data, LOFT's metrics. Hub: ``f20180301/loft-rag-<dataset>-<length>`` (splits dev and
    test). Options: ``revision`` of the hub datasets."""

    benchmark_name = "loft_rag"
    all_datasets = SUBSETS
    huggingface_dataset_id = None  # one hub dataset per subset: see hub_dataset_id
    description = "LOFT RAG: nq, hotpotqa, musique, qampari, quest at 32k/128k/1m; subspan EM"
    label_columns = ("answers", "split", "qid")

    def data_needs(self) -> list[DataNeed]:
        if self.data_dir is not None:
            return super().data_needs()
        ids = [hub_dataset_id(s) for s in self.subsets_to_run]
        return [n for i in ids for n in hub_configs(i, [None], self.revision)]

    def data_source(self) -> dict[str, Any]:
        if self.data_dir is not None:
            return super().data_source()
        ids = ", ".join(hub_dataset_id(s) for s in self.subsets_to_run)
        return {"dataset_id": ids, "revision": self.revision}

    def _load_raw(self, subset: str) -> pd.DataFrame:
        if self.data_dir is not None:
            return read_subset(self.data_dir, subset, COLUMNS, ("answers",))
        frame = load_hub_splits(hub_dataset_id(subset), self.revision)
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{hub_dataset_id(subset)} is missing column(s) {missing}")
        return frame

    def load_datasets(self) -> pd.DataFrame:
        """The published rows of every selected subset, task = the subset name."""
        records: list[dict[str, Any]] = []
        for subset in self.subsets_to_run:
            for item in self._load_raw(subset).to_dict("records"):
                answers = as_answer_list(item["answers"])
                if not answers:
                    raise ValueError(f"a loft_rag {subset} row has no answers: {item['answers']!r}")
                records.append(
                    {
                        "context": str(item["context"]),
                        "question": str(item["question"]),
                        "answer_prefix": str(item["answer_prefix"] or ""),
                        "max_new_tokens": int(item["max_new_tokens"]),
                        "task": subset,
                        "answers": answers,
                        "split": item.get("split"),
                        "qid": None if item.get("qid") is None else str(item["qid"]),
                    }
                )
        return pd.DataFrame.from_records(records)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Per task LOFT's metrics x100; the task score is subspan EM (LOFT's primary RAG
        metric); overall: the mean over tasks."""
        metrics = {
            str(task): score_task(str(task).rsplit("_", 1)[0], frame)
            for task, frame in results_df.groupby("task", sort=True)
        }
        task_scores = {task: m["subspan_em"] for task, m in metrics.items()}
        return {
            "overall_score": mean_score(task_scores.values()),
            "task_scores": task_scores,
            "metrics": metrics,
        }
