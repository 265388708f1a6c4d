"""The Benchmark base class: rows in one schema in, a scored cell directory out.

Adding a benchmark is one folder ``benchmarks/<name>/``: a subclass of :class:`Benchmark` with
``load_datasets`` (the loader) and ``post_run_evaluate`` (a pure scorer), decorated with
``@register_benchmark("<name>")``, a README, and a ``"<name>": "module:Class"`` line in the
registry's built-in table so it resolves without being imported first.

A benchmark's loader returns a DataFrame with the columns ``context, question, answer_prefix,
max_new_tokens, task`` plus label columns (an optional ``sample_index`` marks repeated samples of
one question: each index runs in its own requests, with generation seed + index); its scorer (:meth:`Benchmark.post_run_evaluate`) is a
pure function of the results DataFrame, which carries the prediction in ``predicted_answer``.
A benchmark that asks a second question after a row's answer (LongBench-v2's chain of thought,
then its answer) returns a :class:`FollowUp` from :meth:`Benchmark.follow_up`.
:meth:`Benchmark.run_benchmark` (in :mod:`.run_loop`) turns rows into requests, one per context,
and writes the cell directory so that a crashed run resumes where it stopped.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from sparse_attention_hub.benchmarks.data_needs import DataNeed, hub_configs, local_need
from sparse_attention_hub.benchmarks.run_loop import ProgressCallback, run_cell
from sparse_attention_hub.benchmarks.schema import REQUIRED_COLUMNS, check_columns

if TYPE_CHECKING:
    from sparse_attention_hub.adapters.base import ModelAdapter

__all__ = ["REQUIRED_COLUMNS", "Benchmark", "check_columns"]


@dataclass(frozen=True)
class FollowUp:
    """A second request a benchmark asks after a row's first answer (e.g. "extract the answer").

    Its answer becomes the row's ``predicted_answer``; the first one is kept as
    ``first_answer``. ``max_new_tokens`` is capped by the caller's, as a row's is.
    """

    context: str
    question: str
    max_new_tokens: int | None = None


class Benchmark(ABC):
    """Base class of benchmarks.

    Class attributes:
        benchmark_name: the registry name.
        all_datasets: the subsets a run may select (``subsets_to_run``).
        huggingface_dataset_id: the hub dataset, or None for locally generated data.
        description: one line for ``sah list benchmarks``.
        label_columns: columns besides the standard ones the scorer needs.
        requires_model: False for a benchmark that sends no request (the executor then
            gives it a stand-in adapter and loads no model).
        option_help: constructor option -> its meaning, for ``sah list benchmarks``.
    """

    benchmark_name: ClassVar[str] = ""
    all_datasets: ClassVar[tuple[str, ...]] = ()
    huggingface_dataset_id: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    label_columns: ClassVar[tuple[str, ...]] = ("answer",)
    requires_model: ClassVar[bool] = True
    option_help: ClassVar[dict[str, str]] = {}
    #: the hub dataset revision (benchmarks with a ``revision`` option set it)
    revision: str | None = None

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        **options: Any,
    ) -> None:
        if options:
            raise ValueError(
                f"benchmark {self.benchmark_name!r} got unknown option(s) "
                f"{', '.join(sorted(options))}; it accepts subsets_to_run, data_dir"
                f"{self._option_help()}"
            )
        self.subsets_to_run = self._validate_subsets(subsets_to_run)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise ValueError(f"data_dir {str(self.data_dir)!r} is not a directory")

    def _option_help(self) -> str:
        """The constructor's other options, for error messages (read from its signature)."""
        skip = {"self", "subsets_to_run", "data_dir"}
        params = inspect.signature(type(self).__init__).parameters.values()
        return "".join(
            f", {p.name}" for p in params if p.name not in skip and p.kind is not p.VAR_KEYWORD
        )

    def _validate_subsets(self, subsets: list[str] | str | None) -> list[str]:
        if subsets is None:
            return list(self.all_datasets)
        if isinstance(subsets, str):
            subsets = [subsets]
        subsets = [str(s) for s in subsets]
        if not subsets:
            raise ValueError(
                f"subsets_to_run for {self.benchmark_name!r} is empty; give None for all of "
                f"{', '.join(self.all_datasets)}"
            )
        unknown = [s for s in subsets if s not in self.all_datasets]
        if unknown:
            raise ValueError(
                f"unknown subset(s) {', '.join(map(repr, unknown))} for benchmark "
                f"{self.benchmark_name!r}; valid subsets: {', '.join(self.all_datasets)}"
            )
        return list(dict.fromkeys(subsets))

    def get_available_datasets(self) -> list[str]:
        """Every subset this benchmark has."""
        return list(self.all_datasets)

    @abstractmethod
    def load_datasets(self) -> pd.DataFrame:
        """The rows of the selected subsets in the standard schema, in a deterministic order."""

    @abstractmethod
    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        """Score ``results_df`` (which has ``predicted_answer``); a pure function.

        Returns at least ``overall_score`` and ``task_scores`` (task name -> score).
        """

    def prepare(self, adapter: ModelAdapter) -> None:  # noqa: B027 - optional hook
        """Called by run_benchmark before load_datasets (e.g. to take the adapter's tokenizer)."""

    def data_source(self) -> dict[str, Any]:
        """Where the rows come from, for config.json: the hub id and revision or a local path."""
        if self.data_dir is not None:
            return {"local_source": str(self.data_dir.resolve())}
        return {"dataset_id": self.huggingface_dataset_id, "revision": self.revision}

    def data_needs(self) -> list[DataNeed]:
        """The data the selected subsets read, for a check before anything runs.

        The default: with ``data_dir``, each subset's local files (checked now); else each
        subset as a config of ``huggingface_dataset_id``; a benchmark without either needs
        nothing. Benchmarks that read other files override it.
        """
        if self.data_dir is not None:
            return [local_need(self.data_dir, subset) for subset in self.subsets_to_run]
        if self.huggingface_dataset_id is None:
            return []
        revision = getattr(self, "revision", None)
        return hub_configs(self.huggingface_dataset_id, list(self.subsets_to_run), revision)

    def request_overrides(self, task: str) -> dict[str, Any]:
        """request_kwargs this benchmark sets for the rows of ``task``; they win over the caller's.

        Rows with different overrides go into different requests.
        """
        return {}

    def follow_up(self, row: Mapping[str, Any], answer: str) -> FollowUp | None:
        """The request to ask after ``row`` got ``answer``, or None (the default: none)."""
        return None

    def estimated_cost(self, subset: str | None) -> float | None:
        """A relative cost of running ``subset`` (about the prompt tokens), or None if unknown.

        The executor may use it to start the most expensive cells first.
        """
        return None

    def config_options(self) -> dict[str, Any]:
        """Benchmark options that shape the rows (seed, num_samples, ...), for config.json."""
        return {}

    def describe(self) -> dict[str, Any]:
        """This benchmark and its data, as written into a cell's config.json."""
        return {
            "name": self.benchmark_name,
            "subsets": list(self.subsets_to_run),
            "options": self.config_options(),
            **self.data_source(),
        }

    def run_benchmark(
        self,
        adapter: ModelAdapter,
        result_dir: str | Path,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        show_progress: bool | None = None,
        on_phase: Callable[[str], None] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> dict[str, Any]:
        """Run every (remaining) row through ``adapter`` and write the cell at ``result_dir``.

        Rows are grouped into one Request per (context, answer_prefix, max_new_tokens), so the
        questions on one context share its KV cache. A row's max_new_tokens is the minimum of
        its own and ``generation_kwargs["max_new_tokens"]``. ``request_kwargs["max_requests"]``
        limits the run to the first N rows. Rows already in ``predictions.jsonl`` are skipped.
        The caller's dicts are never mutated. ``show_progress=None`` shows a progress bar
        unless ``SAH_PROGRESS=0``. ``on_phase(name)`` is told each phase as it starts
        (``"dataset"``, ``"run"``); ``on_progress(done, total, generated_tokens)`` after
        each request (and once before the first), in requests of this cell. Returns the metrics dict also written to metrics.json.
        """
        return run_cell(
            self,
            adapter,
            Path(result_dir),
            generation_kwargs,
            request_kwargs,
            show_progress,
            on_phase,
            on_progress,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(subsets_to_run={self.subsets_to_run!r})"


class HubBenchmark(Benchmark):
    """A benchmark read from a hub dataset (or local files in its schema) at a ``revision``."""

    option_help: ClassVar[dict[str, str]] = {"revision": "hub dataset revision"}

    def __init__(
        self,
        subsets_to_run: list[str] | None = None,
        data_dir: str | Path | None = None,
        revision: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(subsets_to_run=subsets_to_run, data_dir=data_dir, **options)
        self.revision = revision
