"""synthetic_ruler: RULER-style tasks generated locally with the model's tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from sparse_attention_hub.benchmarks.base import Benchmark
from sparse_attention_hub.benchmarks.data_needs import DataNeed
from sparse_attention_hub.benchmarks.registry import register_benchmark
from sparse_attention_hub.benchmarks.scoring import mean_score, score_by_task, string_match_all
from sparse_attention_hub.benchmarks.synthetic_ruler.generate import (
    GENERATOR_VERSION,
    default_cache_dir,
    load_or_generate,
    tokenizer_fingerprint,
)
from sparse_attention_hub.benchmarks.synthetic_ruler.tasks import TASKS

if TYPE_CHECKING:
    from sparse_attention_hub.adapters.base import ModelAdapter

LENGTHS: tuple[str, ...] = (
    "512",
    "1024",
    "2048",
    "4096",
    "8192",
    "16384",
    "32768",
    "65536",
    "131072",
)


@register_benchmark("synthetic_ruler", aliases=("synthetic",))
class SyntheticRuler(Benchmark):
    """RULER-style needle, variable-tracking and common-word tasks; generated, no download.

    Subsets are context lengths in tokens of the model's tokenizer. Options: ``num_samples``
    per task and length (default 5), ``seed`` (default 42), ``tasks`` (default all of
    :data:`TASKS`), ``tokenizer`` (else the adapter's, taken in run_benchmark) and
    ``cache_dir`` (else ``$SAH_CACHE_DIR`` or ``~/.cache/sparse_attention_hub``).
    """

    benchmark_name = "synthetic_ruler"
    all_datasets = LENGTHS
    huggingface_dataset_id = None
    description = "RULER-style synthetic tasks generated with the model's tokenizer; no download"
    option_help: ClassVar[dict[str, str]] = {
        "data_dir": "unused (the data is generated)",
        "num_samples": "samples per task and length",
        "seed": "generation seed",
        "tasks": "task names (None: all)",
        "tokenizer": "None: the adapter's",
        "cache_dir": "None: $SAH_CACHE_DIR or ~/.cache/sparse_attention_hub",
    }

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        num_samples: int = 5,
        seed: int = 42,
        tasks: list[str] | None = None,
        tokenizer: Any = None,
        cache_dir: str | Path | None = None,
        **options: Any,
    ) -> None:
        super().__init__(subsets_to_run=subsets_to_run, data_dir=data_dir, **options)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        chosen = list(TASKS) if tasks is None else list(tasks)
        unknown = [t for t in chosen if t not in TASKS]
        if unknown or not chosen:
            raise ValueError(
                f"unknown synthetic task(s) {unknown or chosen!r}; known: {', '.join(TASKS)}"
            )
        self.num_samples = num_samples
        self.seed = seed
        self.tasks = chosen
        self.tokenizer = tokenizer
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def prepare(self, adapter: ModelAdapter) -> None:
        if self.tokenizer is None:
            self.tokenizer = getattr(adapter, "tokenizer", None)

    def data_source(self) -> dict[str, Any]:
        fingerprint = tokenizer_fingerprint(self.tokenizer) if self.tokenizer is not None else None
        return {"local_source": "generated", "tokenizer_fingerprint": fingerprint}

    def config_options(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "seed": self.seed,
            "tasks": list(self.tasks),
            "generator_version": GENERATOR_VERSION,
        }

    def estimated_cost(self, subset: str | None) -> float | None:
        lengths = [int(s) for s in ([subset] if subset else self.subsets_to_run)]
        return float(sum(lengths) * len(self.tasks) * self.num_samples)

    def data_needs(self) -> list[DataNeed]:
        return []  # the data is generated

    def load_datasets(self) -> pd.DataFrame:
        """Generate (or read from the cache) every selected task at every selected length."""
        if self.tokenizer is None:
            raise ValueError(
                "synthetic_ruler needs a tokenizer: pass tokenizer=... or run it with an adapter "
                "that has a .tokenizer"
            )
        cache_dir = self.cache_dir if self.cache_dir is not None else default_cache_dir()
        fingerprint = tokenizer_fingerprint(self.tokenizer)
        rows: list[dict[str, Any]] = []
        for subset in self.subsets_to_run:
            for task in self.tasks:
                rows.extend(
                    load_or_generate(
                        self.tokenizer,
                        task,
                        int(subset),
                        self.seed,
                        self.num_samples,
                        cache_dir,
                        fingerprint,
                    )
                )
        return pd.DataFrame.from_records(rows)

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """RULER string_match_all per task (x100); with several lengths, keys are "<len>/<task>"."""
        frame = results_df.copy()
        if frame["length"].nunique() > 1:
            frame["task"] = frame["length"].astype(str) + "/" + frame["task"].astype(str)
        task_scores = score_by_task(frame, lambda _task: string_match_all)
        return {"overall_score": mean_score(task_scores.values()), "task_scores": task_scores}
