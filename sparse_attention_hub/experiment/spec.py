"""The plain result of reading an experiment file: :class:`ExperimentSpec`.

An ``ExperimentSpec`` holds only plain data (strings, numbers, lists, dicts), so tests can
compare it field by field. It maps one to one onto the executor call::

    executor = BenchmarkExecutor(**spec.executor_kwargs())
    executor.run_benchmark_matrix(**spec.matrix_kwargs())

``matrix_kwargs`` is the only place that builds library objects (ResearchAttentionConfig,
BenchmarkConfig, AdapterConfig); it imports them when called.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field, replace
from typing import Any

TINY_MODELS_DIR = "tiny_models"


@dataclass(frozen=True)
class TinyModelSpec:
    """A tiny random model built locally (``models: [{tiny_model: {arch: llama}}]``).

    It lives in ``<result_dir>/tiny_models/tiny-<arch>-s<seed>`` and is built on first use.
    ``trained: true`` is the shipped needle-retrieval llama instead (copied to
    ``tiny_models/tiny-llama-trained``; arch and seed do not apply).
    """

    arch: str = "llama"
    seed: int = 0
    trained: bool = False

    def path(self, result_dir: str) -> str:
        """The model folder, relative to the working directory when it lies below it.

        The executor names cell folders after this string, so one spelling per folder: a
        ``--result-dir`` given as ``runs/demo`` or as ``$PWD/runs/demo`` reuses the same cells.
        """
        folder = os.path.abspath(os.path.join(result_dir, TINY_MODELS_DIR, self.dirname))
        try:
            relative = os.path.relpath(folder)
        except ValueError:  # another drive (Windows)
            return folder
        return folder if relative == ".." or relative.startswith(".." + os.sep) else relative

    @property
    def dirname(self) -> str:
        return "tiny-llama-trained" if self.trained else f"tiny-{self.arch}-s{self.seed}"


ModelSpec = str | TinyModelSpec


@dataclass(frozen=True)
class BenchmarkSpec:
    """One ``benchmarks:`` entry: a registered benchmark name, its subsets and its kwargs."""

    name: str
    subsets: list[str] | None = None
    benchmark_kwargs: dict[str, Any] | None = None


@dataclass(frozen=True)
class ExecutorSpec:
    """The ``executor:`` section (``gpus: []`` means CPU)."""

    gpus: list[int] = field(default_factory=list)
    max_concurrent_runs: int | None = None  # None: one run per GPU, or 1 on CPU
    timeout_per_benchmark: float | None = None
    enabled_metrics: list[str] | str | None = None
    max_records: int | None = None
    sampling_factor: float = 1.0
    max_retries: int | None = None
    enable_resumability: bool = True
    preflight: bool = True  # resolve every model and dataset before any worker starts
    progress_interval: float | None = None  # None: the executor's default (60 s)
    backend: str = "local"  # or "ray": actors on a Ray cluster
    address: str | None = None  # the Ray cluster (only with backend: ray)


@dataclass(frozen=True)
class ExperimentSpec:
    """A whole experiment file, checked and in plain Python types."""

    source: str
    result_dir: str
    models: list[ModelSpec]
    sparse_configs: list[tuple[str, list[dict[str, dict[str, Any]]] | None]]
    benchmarks: list[BenchmarkSpec]
    # config name -> layer indices that stay dense (``{dense_layers: [0, 1], maskers: [...]}``)
    dense_layers: dict[str, list[int]] = field(default_factory=dict)
    # configs whose dense_layers are their recipe's defaults (a smaller model drops the layers
    # it lacks, with a note, where a value the file gives beyond the model is refused)
    recipe_dense_layers: tuple[str, ...] = ()
    # config name -> the research attention's score budget in bytes, where the file sets one
    score_budgets: dict[str, int] = field(default_factory=dict)
    # config name -> {"prefill_maskers": [...], "prefill_block_size": N} (the keys given), for
    # configs with a sparse prefill; its masker list in sparse_configs is None for dense decode
    prefill: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)
    name: str | None = None
    description: str | None = None
    adapter_name: str = "huggingface"
    model_kwargs: dict[str, Any] | None = None
    tokenizer_kwargs: dict[str, Any] | None = None
    generation_kwargs: dict[str, Any] | None = None
    request_kwargs: dict[str, Any] | None = None
    # models given as local paths (checked to exist by validate.py); not part of equality
    local_model_paths: tuple[str, ...] = field(default=(), compare=False)

    # -- the executor call -------------------------------------------------------------

    def model_names(self) -> list[str]:
        """Model ids/paths as the executor sees them (tiny models resolve to their folder)."""
        return [m.path(self.result_dir) if isinstance(m, TinyModelSpec) else m for m in self.models]

    def tiny_models(self) -> list[tuple[TinyModelSpec, str]]:
        """The tiny models this experiment needs, with the folder each is built in."""
        return [(m, m.path(self.result_dir)) for m in self.models if isinstance(m, TinyModelSpec)]

    def executor_kwargs(self, verbose: bool = True) -> dict[str, Any]:
        """Keyword arguments of ``BenchmarkExecutor(...)``; only settings the file gave."""
        ex = self.executor
        kwargs: dict[str, Any] = {
            "gpu_ids": list(ex.gpus),
            "max_concurrent_runs": ex.max_concurrent_runs or max(1, len(ex.gpus)),
            "base_result_dir": self.result_dir,
            "enable_resumability": ex.enable_resumability,
            "verbose": verbose,
            "max_records": ex.max_records,
            "sampling_factor": ex.sampling_factor,
            "enabled_metrics": copy.deepcopy(ex.enabled_metrics),
        }
        if ex.timeout_per_benchmark is not None:
            kwargs["timeout_per_benchmark"] = ex.timeout_per_benchmark
        if ex.max_retries is not None:
            kwargs["max_retries"] = ex.max_retries
        if not ex.preflight:
            kwargs["preflight"] = False
        if ex.progress_interval is not None:
            kwargs["progress_interval"] = ex.progress_interval
        if ex.backend != "local":
            kwargs["backend"] = ex.backend
            kwargs["ray_address"] = ex.address
        return kwargs

    def sparse_attention_configs(self) -> list[tuple[str, Any]]:
        """``[(name, ResearchAttentionConfig or None), ...]`` built from the masker lists
        (and the prefill settings: a config of prefill maskers only has no decode maskers)."""
        from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

        configs: list[tuple[str, Any]] = []
        for name, maskers in self.sparse_configs:
            config = None
            if maskers is not None or name in self.prefill:
                data: dict[str, Any] = {
                    "maskers": maskers or [],
                    "dense_layers": self.dense_layers.get(name, []),
                    **self.prefill.get(name, {}),
                }
                if name in self.score_budgets:
                    data["score_budget_bytes"] = self.score_budgets[name]
                config = ResearchAttentionConfig.from_dict(data)
                config.dense_layers_from_recipe = name in self.recipe_dense_layers
            configs.append((name, config))
        return configs

    def matrix_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``BenchmarkExecutor.run_benchmark_matrix(...)``
        (also those of ``plan_matrix``)."""
        from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig

        benchmark_configs = [
            BenchmarkConfig(
                benchmark_name=b.name,
                subsets=None if b.subsets is None else list(b.subsets),
                benchmark_kwargs=copy.deepcopy(b.benchmark_kwargs),
            )
            for b in self.benchmarks
        ]
        adapter_config = AdapterConfig(
            adapter_name=self.adapter_name,
            model_kwargs=copy.deepcopy(self.model_kwargs),
            tokenizer_kwargs=copy.deepcopy(self.tokenizer_kwargs),
        )
        return {
            "model_names": self.model_names(),
            "sparse_attention_configs": self.sparse_attention_configs(),
            "benchmark_configs": benchmark_configs,
            "adapter_config": adapter_config,
            "generation_kwargs": copy.deepcopy(self.generation_kwargs),
            "request_kwargs": copy.deepcopy(self.request_kwargs),
        }

    # -- command-line overrides ----------------------------------------------------------

    def with_overrides(
        self,
        result_dir: str | None = None,
        gpus: list[int] | None = None,
        max_concurrent_runs: int | None = None,
        backend: str | None = None,
        address: str | None = None,
    ) -> ExperimentSpec:
        """A copy with the command-line flags applied (``None`` keeps the file's value)."""
        executor = self.executor
        if backend is not None:
            executor = replace(executor, backend=backend)
        if address is not None:
            executor = replace(executor, address=address)
        if gpus is not None:
            executor = replace(executor, gpus=list(gpus))
        if max_concurrent_runs is not None:
            executor = replace(executor, max_concurrent_runs=max_concurrent_runs)
        return replace(
            self,
            result_dir=self.result_dir if result_dir is None else result_dir,
            executor=executor,
        )
