"""The shipped examples parse into exactly the executor call they describe."""

from __future__ import annotations

import os
from pathlib import Path

from sparse_attention_hub.executor import AdapterConfig, BenchmarkConfig
from sparse_attention_hub.experiment import load_experiment
from sparse_attention_hub.experiment.demo import demo_spec, demo_yaml_text
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def rac(*maskers: dict) -> ResearchAttentionConfig:
    return ResearchAttentionConfig.from_dict({"maskers": list(maskers)})


def test_packaged_demo_yaml_equals_the_example() -> None:
    assert demo_yaml_text() == (EXAMPLES / "demo.yaml").read_text(encoding="utf-8")


def test_demo_yaml_is_the_expected_executor_call() -> None:
    spec = load_experiment(EXAMPLES / "demo.yaml")
    assert spec.executor_kwargs() == {
        "gpu_ids": [],
        "max_concurrent_runs": 2,
        "base_result_dir": "./demo_results",
        "enable_resumability": True,
        "verbose": True,
        "max_records": None,
        "sampling_factor": 1.0,
        "enabled_metrics": ["research_attention_density", "research_attention_output_error"],
        "timeout_per_benchmark": 300.0,
    }
    sink, local = {"sink": {"sink_size": 4}}, {"local": {"window_size": 64}}
    assert spec.matrix_kwargs() == {
        "model_names": ["demo_results/tiny_models/tiny-llama-trained"],
        "sparse_attention_configs": [
            ("dense", None),
            ("oracle_top_k", rac(sink, local, {"oracle_top_k": {"heavy_size": 0.25}})),
            ("quest", rac(sink, local, {"quest": {"token_budget": 0.25, "page_size": 16}})),
            ("random_sampling", rac(sink, local, {"random_sampling": {"sampling_rate": 0.25}})),
            ("streaming", rac(sink, {"local": {"window_size": 0.3}})),
        ],
        "benchmark_configs": [
            BenchmarkConfig(
                "synthetic_ruler",
                ["1024", "2048"],
                {"num_samples": 5, "tasks": ["niah_single"]},
            ),
        ],
        "adapter_config": AdapterConfig(model_kwargs={"dtype": "float32"}),
        "generation_kwargs": {"max_new_tokens": 16, "do_sample": False},
        "request_kwargs": None,
    }


def test_demo_result_dir_override_moves_the_tiny_model_too(tmp_path) -> None:
    spec = demo_spec(result_dir=str(tmp_path / "d"))
    assert spec.executor_kwargs()["base_result_dir"] == str(tmp_path / "d")
    assert spec.model_names() == [str(tmp_path / "d" / "tiny_models" / "tiny-llama-trained")]


def test_gpu_study_is_the_expected_executor_call() -> None:
    spec = load_experiment(EXAMPLES / "llama3_8b_gpu_study.yaml")
    assert spec.executor_kwargs(verbose=False) == {
        "gpu_ids": [0, 1, 2, 3],
        "max_concurrent_runs": 4,
        "base_result_dir": "./results/llama31_8b",
        "enable_resumability": True,
        "verbose": False,
        "max_records": 100000,
        "sampling_factor": 0.1,
        "enabled_metrics": ["research_attention_density"],
        "timeout_per_benchmark": 21600.0,
        "max_retries": 1,
    }
    sink, local = {"sink": {"sink_size": 128}}, {"local": {"window_size": 128}}
    longbench = [
        "narrativeqa",
        "qasper",
        "hotpotqa",
        "2wikimqa",
        "gov_report",
        "passage_retrieval_en",
    ]
    assert spec.matrix_kwargs() == {
        "model_names": ["meta-llama/Llama-3.1-8B-Instruct"],
        "sparse_attention_configs": [
            ("dense", None),
            ("streaming", rac(sink, {"local": {"window_size": 1024}})),
            ("oracle_top_k_5pct", rac(sink, local, {"oracle_top_k": {"heavy_size": 0.05}})),
            ("oracle_top_p_90", rac(sink, local, {"oracle_top_p": {"top_p": 0.9}})),
            (
                "random_sampling_5pct",
                rac(sink, local, {"random_sampling": {"sampling_rate": 0.05}}),
            ),
        ],
        "benchmark_configs": [
            BenchmarkConfig("longbench", longbench),
            BenchmarkConfig("ruler", ["4096", "8192"]),
        ],
        "adapter_config": AdapterConfig(
            model_kwargs={"dtype": "bfloat16"},
            tokenizer_kwargs={"padding_side": "left"},
        ),
        "generation_kwargs": {"max_new_tokens": 128, "do_sample": False},
        "request_kwargs": {
            "max_context_length": 32000,
            "truncation": "middle",
            "apply_chat_template": True,
        },
    }
    # 1 model x 5 configs x (6 + 2) subsets
    assert len(spec.sparse_configs) * sum(len(b.subsets or [None]) for b in spec.benchmarks) == 40


def test_every_example_loads() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        load_experiment(path)


def test_tiny_model_path_does_not_depend_on_how_result_dir_is_spelled(
    tmp_path, monkeypatch
) -> None:
    """Cell folders are named after the model path: ``runs/d`` and ``$PWD/runs/d`` must agree."""
    monkeypatch.chdir(tmp_path)
    relative = demo_spec(result_dir="runs/d").model_names()
    absolute = demo_spec(result_dir=str(tmp_path / "runs" / "d")).model_names()
    dotted = demo_spec(result_dir="./runs/../runs/d").model_names()
    assert (
        relative
        == absolute
        == dotted
        == [os.path.join("runs", "d", "tiny_models", "tiny-llama-trained")]
    )
    outside = demo_spec(result_dir=str(tmp_path.parent / "elsewhere")).model_names()
    assert outside == [str(tmp_path.parent / "elsewhere" / "tiny_models" / "tiny-llama-trained")]


def test_quest_example_is_the_papers_stack_with_dense_layers() -> None:
    spec = load_experiment(EXAMPLES / "quest.yaml")
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs["dense"] is None
    sink, local = {"sink": {"sink_size": 128}}, {"local": {"window_size": 128}}
    for budget in (1024, 4096):
        quest = {"quest": {"token_budget": budget, "page_size": 16}}
        expected = ResearchAttentionConfig.from_dict(
            {"maskers": [sink, local, quest], "dense_layers": [0, 1]}
        )
        assert configs[f"quest_{budget}"] == expected
        assert expected.dense_layers == [0, 1]
    assert configs["oracle_top_k_1024"].dense_layers == [0, 1]
