"""Experiment files (YAML) for the ``sah`` command, the offline demo and result reports.

>>> spec = load_experiment("examples/demo.yaml")              # doctest: +SKIP
>>> executor = BenchmarkExecutor(**spec.executor_kwargs())     # doctest: +SKIP
>>> executor.run_benchmark_matrix(**spec.matrix_kwargs())      # doctest: +SKIP
"""

from sparse_attention_hub.experiment.checks import ExperimentError
from sparse_attention_hub.experiment.gpus import parse_gpus
from sparse_attention_hub.experiment.loader import load_experiment, load_experiment_text
from sparse_attention_hub.experiment.report import render_report
from sparse_attention_hub.experiment.schema import parse_experiment
from sparse_attention_hub.experiment.spec import (
    BenchmarkSpec,
    ExecutorSpec,
    ExperimentSpec,
    TinyModelSpec,
)

__all__ = [
    "BenchmarkSpec",
    "ExecutorSpec",
    "ExperimentError",
    "ExperimentSpec",
    "TinyModelSpec",
    "load_experiment",
    "load_experiment_text",
    "parse_experiment",
    "parse_gpus",
    "render_report",
]
