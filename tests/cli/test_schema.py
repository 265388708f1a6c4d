"""The experiment-file schema: structure and types (no registries involved)."""

from __future__ import annotations

import textwrap

import pytest

from sparse_attention_hub.experiment import (
    BenchmarkSpec,
    ExecutorSpec,
    ExperimentError,
    ExperimentSpec,
    TinyModelSpec,
    load_experiment,
    parse_gpus,
)
from sparse_attention_hub.experiment.loader import load_experiment_text

MINIMAL = """
models: [org/model]
sparse_configs: {dense: dense}
benchmarks: [mock_benchmark]
"""


def parse(text: str) -> ExperimentSpec:
    return load_experiment_text(textwrap.dedent(text), "exp.yaml", validate=False)


def error_of(text: str) -> str:
    with pytest.raises(ExperimentError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith("exp.yaml: "), message
    assert "\n" not in message
    return message


def test_preflight_and_progress_interval_reach_the_executor() -> None:
    spec = parse(MINIMAL + "executor: {preflight: false, progress_interval: 5}\n")
    assert spec.executor.preflight is False
    kwargs = spec.executor_kwargs()
    assert kwargs["preflight"] is False and kwargs["progress_interval"] == 5


def test_the_ray_backend_and_its_address_reach_the_executor() -> None:
    spec = parse(MINIMAL + "executor: {backend: ray, address: auto}\n")
    kwargs = spec.executor_kwargs()
    assert kwargs["backend"] == "ray" and kwargs["ray_address"] == "auto"
    assert "backend" not in parse(MINIMAL).executor_kwargs()  # the local default says nothing
    flags = parse(MINIMAL).with_overrides(backend="ray", address="10.0.0.1:6379")
    assert flags.executor_kwargs()["ray_address"] == "10.0.0.1:6379"


def test_minimal_file_gets_defaults() -> None:
    spec = parse(MINIMAL)
    assert spec == ExperimentSpec(
        source="exp.yaml",
        result_dir="./benchmark_results",
        models=["org/model"],
        sparse_configs=[("dense", None)],
        benchmarks=[BenchmarkSpec("mock_benchmark")],
    )
    assert spec.executor_kwargs() == {
        "gpu_ids": [],
        "max_concurrent_runs": 1,
        "base_result_dir": "./benchmark_results",
        "enable_resumability": True,
        "verbose": True,
        "max_records": None,
        "sampling_factor": 1.0,
        "enabled_metrics": None,
    }


def test_full_file_parses_every_section() -> None:
    spec = parse(
        """
        name: study
        result_dir: out
        models: [a/b, {tiny_model: {arch: qwen2, seed: 3}}]
        sparse_configs:
          dense: null
          streaming:
            - sink: {sink_size: 4}
            - local: {window_size: 0.25}
          bare: [oracle_top_k]
        benchmarks:
          - mock_benchmark
          - name: synthetic_ruler
            subsets: [1024, "2048"]
            benchmark_kwargs: {num_samples: 2}
        adapter:
          model_kwargs: {torch_dtype: bf16, attn_implementation: eager}
          tokenizer_kwargs: {padding_side: left}
        generation_kwargs: {max_new_tokens: 4, do_sample: false, temperature: 0.0}
        request_kwargs: {max_context_length: 512, truncation: middle}
        executor:
          gpus: "0,1"
          timeout_per_benchmark: 60
          enabled_metrics: all
          max_records: 5
          sampling_factor: 0.5
          max_retries: 0
        """
    )
    assert spec.models == ["a/b", TinyModelSpec("qwen2", 3)]
    assert spec.model_names() == ["a/b", "out/tiny_models/tiny-qwen2-s3"]
    assert spec.sparse_configs == [
        ("dense", None),
        ("streaming", [{"sink": {"sink_size": 4}}, {"local": {"window_size": 0.25}}]),
        ("bare", [{"oracle_top_k": {}}]),
    ]
    assert spec.benchmarks[1] == BenchmarkSpec(
        "synthetic_ruler", ["1024", "2048"], {"num_samples": 2}
    )
    assert spec.model_kwargs == {"dtype": "bfloat16", "attn_implementation": "eager"}
    assert spec.tokenizer_kwargs == {"padding_side": "left"}
    assert spec.executor == ExecutorSpec(
        gpus=[0, 1],
        timeout_per_benchmark=60.0,
        enabled_metrics="all",
        max_records=5,
        sampling_factor=0.5,
        max_retries=0,
    )
    kwargs = spec.executor_kwargs(verbose=False)
    assert kwargs["max_concurrent_runs"] == 2  # one run per GPU by default
    assert kwargs["timeout_per_benchmark"] == 60.0 and kwargs["max_retries"] == 0


def test_home_is_expanded_in_paths(monkeypatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    spec = parse(
        MINIMAL.replace("[org/model]", "[~/models/m, org/model, ./here/m]") + "result_dir: ~/runs\n"
    )
    assert spec.result_dir == "/home/someone/runs"
    assert spec.models == ["/home/someone/models/m", "org/model", "here/m"]


def test_command_line_overrides_win() -> None:
    spec = parse(MINIMAL + "executor: {gpus: [0], max_concurrent_runs: 3}\nresult_dir: a\n")
    over = spec.with_overrides(result_dir="b", gpus=[], max_concurrent_runs=2)
    assert over.executor_kwargs()["gpu_ids"] == []
    assert over.executor_kwargs()["max_concurrent_runs"] == 2
    assert over.executor_kwargs()["base_result_dir"] == "b"
    assert spec.with_overrides() == spec


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "modles: [x]",
            "modles: unknown key; allowed here: adapter, allow_large_sweep, benchmarks",
        ),
        (
            "executor: {gpu: [0]}",
            "executor.gpu: unknown key; allowed here: address, backend, enable_resumability",
        ),
        ("generation_kwargs: {max_tokens: 3}", "generation_kwargs.max_tokens: unknown key"),
        ("adapter: {model_kwarg: {}}", "adapter.model_kwarg: unknown key"),
    ],
)
def test_unknown_keys_are_errors(snippet: str, expected: str) -> None:
    assert expected in error_of(MINIMAL + snippet)


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "executor: {max_concurrent_runs: two}",
            "executor.max_concurrent_runs: expected an integer, got str 'two'",
        ),
        ("executor: {max_concurrent_runs: 0}", "executor.max_concurrent_runs: must be >= 1, got 0"),
        (
            "executor: {sampling_factor: 1.5}",
            "executor.sampling_factor: must be in (0.0, 1.0], got 1.5",
        ),
        ("executor: {enable_resumability: yes please}", "expected true or false"),
        ("executor: {preflight: off please}", "executor.preflight: expected true or false"),
        ("executor: {progress_interval: 0}", "executor.progress_interval: must be in (0.0"),
        ("executor: {backend: slurm}", "executor.backend: expected local or ray, got str 'slurm'"),
        ("executor: {address: auto}", "executor.address: is a Ray address: set executor.backend"),
        ("executor: {backend: ray, address: 6379}", "executor.address: expected a Ray address"),
        (
            "generation_kwargs: {max_new_tokens: 1.5}",
            "generation_kwargs.max_new_tokens: expected an integer",
        ),
        (
            "request_kwargs: {truncation: top}",
            "request_kwargs.truncation: 'top' is not allowed; allowed: left, middle, right",
        ),
        (
            "adapter: {model_kwargs: {dtype: float8}}",
            "adapter.model_kwargs.dtype: unknown dtype str 'float8'; allowed: auto, bf16",
        ),
        (
            "executor: {enabled_metrics: some}",
            "executor.enabled_metrics: expected all or a list of metric names like [some], "
            "got str 'some'",
        ),
    ],
)
def test_wrong_types_name_the_key_path(snippet: str, expected: str) -> None:
    assert expected in error_of(MINIMAL + snippet)


def test_structural_mistakes() -> None:
    assert "exp.yaml: (top level): expected a mapping" in error_of("- just a list")
    assert "exp.yaml: models: missing (this key is required)" in error_of(
        "sparse_configs: {d: dense}\nbenchmarks: [m]"
    )
    assert "models: expected a non-empty list" in error_of(
        MINIMAL.replace("[org/model]", "org/model")
    )
    assert "models[1]: 'org/model' is listed twice" in error_of(
        MINIMAL.replace("[org/model]", "[org/model, org/model]")
    )
    tiny = error_of(MINIMAL.replace("[org/model]", "[{tiny_model: {arch: gpt2}}]"))
    assert (
        "models[0].tiny_model.arch: 'gpt2' is not allowed; allowed: llama, mistral, qwen2" in tiny
    )
    assert "benchmarks[1]: mock_benchmark is listed twice" in error_of(
        MINIMAL.replace("[mock_benchmark]", "[mock_benchmark, mock_benchmark]")
    )


def test_sparse_config_mistakes() -> None:
    base = "models: [m]\nbenchmarks: [b]\n"
    msg = error_of(base + "sparse_configs: {s: [{sink: {sink_size: 4}, local: {window_size: 8}}]}")
    assert "sparse_configs.s[0]: a masker entry has exactly one key (the masker name), got 2" in msg
    msg = error_of(base + "sparse_configs: {s: sink}")
    assert "sparse_configs.s: expected 'dense' or a list of maskers" in msg
    msg = error_of(base + "sparse_configs: {s: [{sink: 4}]}")
    assert "sparse_configs.s[0].sink: expected a mapping of masker parameters, got int 4" in msg
    msg = error_of(base + "sparse_configs: {'../x': dense}")
    assert "sparse_configs.../x: a config name is a folder name" in msg
    assert "sparse_configs: needs at least one config" in error_of(base + "sparse_configs: {}")
    msg = error_of(base + "sparse_configs: {s: {dense_layers: [0, -1], maskers: [sink]}}")
    assert "sparse_configs.s.dense_layers: ResearchAttentionConfig.dense_layers" in msg
    msg = error_of(base + "sparse_configs: {s: {dense: [0], maskers: [sink]}}")
    assert "sparse_configs.s: expected 'dense' or a list of maskers" in msg and "dense: " not in msg


def test_yaml_problems_are_reported_with_a_line() -> None:
    assert "exp.yaml: invalid YAML: line 3" in error_of(
        "models: [a]\nsparse_configs: {d: dense}\nmodels: [b]\n"
    )
    assert "duplicate key 'models'" in error_of(
        "models: [a]\nsparse_configs: {d: dense}\nmodels: [b]\n"
    )
    assert "invalid YAML" in error_of("models: [a\n")
    # No object construction from YAML tags.
    assert "invalid YAML" in error_of("models: !!python/object/apply:os.system [echo hi]\n")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(ExperimentError, match=r"nope\.yaml: no such file"):
        load_experiment(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([0, 1], [0, 1]),
        ("0,1", [0, 1]),
        (" 2 , 3 ", [2, 3]),
        ("cpu", []),
        ("CPU", []),
        (None, []),
        ([], []),
        (1, [1]),
        ("1", [1]),
    ],
)
def test_gpu_lists(value: object, expected: list[int]) -> None:
    assert parse_gpus(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,x", "bad GPU id str 'x'"),
        ([0, -1], "bad GPU id int -1"),
        ([0, 0], "GPU 0 is listed twice"),
        ("0,,1", "bad GPU id str ''"),
        ([True], "bad GPU id bool true"),
        (1.5, "bad GPU id float 1.5"),
    ],
)
def test_bad_gpu_lists(value: object, expected: str) -> None:
    with pytest.raises(ExperimentError) as info:
        parse_gpus(value, "executor.gpus")
    assert expected in str(info.value)
    if "twice" not in expected:
        assert 'expected a list of GPU ids like [0, 1], a string like "0,1", or "cpu"' in str(
            info.value
        )


def test_bad_gpu_list_in_a_file() -> None:
    assert "exp.yaml: executor.gpus: bad GPU id str 'gpu0'" in error_of(
        MINIMAL + "executor: {gpus: gpu0}"
    )


def test_a_study_file_sets_the_score_budget_of_a_config() -> None:
    base = "models: [m]\nbenchmarks: [b]\n"
    spec = parse(
        base + "sparse_configs:\n  small:\n    score_budget_bytes: 1048576\n"
        "    maskers: [{oracle_top_k: {heavy_size: [0.1, 0.2]}}]\n"
        "  plain: [{sink: {sink_size: 4}}]\n"
    )
    configs = dict(spec.sparse_attention_configs())
    assert {c.score_budget_bytes for n, c in configs.items() if n != "plain"} == {2**20}
    assert configs["plain"].score_budget_bytes == 128 * 2**20
    msg = error_of(base + "sparse_configs: {s: {score_budget_bytes: 0, maskers: [sink]}}")
    assert "sparse_configs.s.score_budget_bytes: ResearchAttentionConfig.score_budget_bytes" in msg
