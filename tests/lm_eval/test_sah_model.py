"""The lm-eval model ``sah`` against lm-eval's own ``hf`` model on a local task set
(generation, multiple choice, rolling log-likelihood) and the tiny model: dense, it gives
``hf``'s results; with a sparse config they change and the logged density is below 1."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sparse_attention_hub.metric_logging import MicroMetricLogger, load_micro_metrics

pytestmark = pytest.mark.slow

TASKS = ["sah_tiny_gen", "sah_tiny_mc", "sah_tiny_rolling"]
MAX_LENGTH = 20  # short: the rolling documents need two windows, some prompts are cut
SPARSE = [{"sink": {"sink_size": 1}}, {"local": {"window_size": 2}}]


def evaluate(lm_eval: ModuleType, task_dir: Path, model: str, **model_args: Any) -> dict:
    from lm_eval.tasks import TaskManager

    from sparse_attention_hub.lm_eval import register

    register()
    return lm_eval.simple_evaluate(
        model=model,
        model_args={"max_length": MAX_LENGTH, **model_args},
        tasks=TASKS,
        device="cpu",
        log_samples=True,
        task_manager=TaskManager(include_path=str(task_dir)),
    )


@pytest.fixture(scope="module")
def hf_results(lm_eval, task_dir, tiny_model_dir) -> dict:
    return evaluate(lm_eval, task_dir, "hf", pretrained=tiny_model_dir)


@pytest.fixture(scope="module")
def sah_dense(lm_eval, task_dir, tiny_model_dir) -> dict:
    return evaluate(lm_eval, task_dir, "sah", pretrained=tiny_model_dir)


@pytest.fixture(scope="module")
def sah_sparse(lm_eval, task_dir, tiny_model_dir, tmp_path_factory) -> tuple[dict, Path]:
    metrics_dir = tmp_path_factory.mktemp("sah_micro_metrics")
    try:
        results = evaluate(
            lm_eval,
            task_dir,
            "sah",
            pretrained=tiny_model_dir,
            sparse_config=SPARSE,
            micro_metrics_dir=str(metrics_dir),
        )
    finally:
        MicroMetricLogger().enable_metrics(None)  # later tests in this process log nothing
    return results, metrics_dir


def responses(results: dict, task: str) -> list[Any]:
    return [sample["resps"] for sample in results["samples"][task]]


def logprobs(results: dict, task: str) -> list[float]:
    out = []
    for sample in results["samples"][task]:
        for resp in sample["resps"]:
            value = resp[0]
            out.append(float(value[0] if isinstance(value, (list, tuple)) else value))
    return out


def test_dense_sah_gives_the_hf_results(hf_results, sah_dense):
    for task in TASKS:
        assert len(sah_dense["samples"][task]) == len(hf_results["samples"][task]) == 3
    assert responses(sah_dense, "sah_tiny_gen") == responses(hf_results, "sah_tiny_gen")
    for task in ("sah_tiny_mc", "sah_tiny_rolling"):
        # a dense prefill plus an incremental pass instead of one forward: float rounding only
        assert logprobs(sah_dense, task) == pytest.approx(logprobs(hf_results, task), rel=1e-5)
    greedy = [[r[0][1] for r in s["resps"]] for s in sah_dense["samples"]["sah_tiny_mc"]]
    hf_greedy = [[r[0][1] for r in s["resps"]] for s in hf_results["samples"]["sah_tiny_mc"]]
    assert greedy == hf_greedy
    for task in TASKS:
        ours, theirs = sah_dense["results"][task], hf_results["results"][task]
        for key, value in theirs.items():
            if isinstance(value, float) and not key.endswith("_stderr,none"):
                assert ours[key] == pytest.approx(value, rel=1e-5), (task, key)
    assert (
        sah_dense["results"]["sah_tiny_mc"]["acc,none"]
        == hf_results["results"]["sah_tiny_mc"]["acc,none"]
    )
    assert sah_dense["config"]["sah"]["sparse_attention_config"] is None


def test_sparse_config_changes_the_results_and_logs_density_below_one(sah_dense, sah_sparse):
    results, metrics_dir = sah_sparse
    assert results["config"]["sah"]["sparse_attention_config"] == {"maskers": SPARSE}
    for task in ("sah_tiny_mc", "sah_tiny_rolling"):
        dense, sparse = logprobs(sah_dense, task), logprobs(results, task)
        assert max(abs(a - b) for a, b in zip(dense, sparse, strict=True)) > 0.1, task
    events = load_micro_metrics(metrics_dir)
    density = events[events["metric"] == "research_attention_density"]
    assert len(density) > 0
    assert density["value"].max() <= 1.0
    assert density["value"].mean() < 0.9
    # every lm-eval request is tagged: one request per context, its continuations questions
    assert density["request_index"].nunique() >= 3 + 3 + 3
    assert density["question_index"].max() == 3  # four choices on one multiple-choice prompt
    assert not math.isnan(results["results"]["sah_tiny_rolling"]["word_perplexity,none"])
