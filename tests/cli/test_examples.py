"""The shipped examples parse into exactly the executor call they describe."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

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


#: Artefacts the examples name, relative to the directory sah runs in: loading checks that
#: they exist, so the test puts a placeholder there (each example says how to make its own).
EXAMPLE_ARTEFACTS = ["channels/Llama-3.1-8B-Instruct.json"]


def test_every_example_loads(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for artefact in EXAMPLE_ARTEFACTS:
        (tmp_path / artefact).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / artefact).write_text("{}")
    files = sorted(EXAMPLES.glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        if path.name.startswith("tune"):  # a tune file: a study with a search: section
            from sparse_attention_hub.experiment.tune import load_tune

            load_tune(path)
            continue
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
    """The official code has no attention sink and no local window: Quest pages alone."""
    spec = load_experiment(EXAMPLES / "quest.yaml")
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs["dense"] is None
    for budget in (1024, 4096):
        quest = {"quest": {"token_budget": budget, "page_size": 16}}
        expected = ResearchAttentionConfig.from_dict({"maskers": [quest], "dense_layers": [0, 1]})
        assert configs[f"quest_{budget}"] == expected
        assert expected == ResearchAttentionConfig.from_recipe("quest", heavy_size=budget)
    top_k = {"oracle_top_k": {"heavy_size": 1024}}
    oracle = ResearchAttentionConfig.from_dict({"maskers": [top_k], "dense_layers": [0, 1]})
    assert configs["oracle_top_k_1024"] == oracle
    assert "sink" not in (EXAMPLES / "quest.yaml").read_text().split("sparse_configs:")[1]


def test_all_recipes_example_expands_every_recipe_with_its_defaults() -> None:
    from sparse_attention_hub.sparse_attention.recipes import available_recipes

    spec = load_experiment(EXAMPLES / "all_recipes.yaml")
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs.pop("dense") is None
    for heavy in (0.02, 0.05):
        name = f"oracle_top_k.heavy_size={heavy}"
        assert configs.pop(name) == ResearchAttentionConfig.from_recipe(
            "oracle_top_k", heavy_size=heavy
        )
    quest = configs.pop("quest")
    assert quest == ResearchAttentionConfig.from_recipe("quest", heavy_size=0.05)
    assert quest.dense_layers == [0, 1]
    for name, config in configs.items():
        assert config == ResearchAttentionConfig.from_recipe(name)
    # recipes that read an artefact made for the model are shown in comments, with its command
    text = (EXAMPLES / "all_recipes.yaml").read_text()
    commented = {"double_sparsity", "hashattention"}
    assert all(f"#   {name}: {{recipe: {name}" in text for name in commented)
    assert set(configs) | {"oracle_top_k", "quest"} | commented == set(available_recipes())


def test_pq_cache_example_is_the_papers_stack() -> None:
    spec = load_experiment(EXAMPLES / "pq_cache.yaml")
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs["dense"] is None
    sink = {"sink": {"sink_size": 32}}
    for name, share in (("pq_cache_10pct", 0.05), ("pq_cache_20pct", 0.1)):
        pq = {"pq_subvectors": 2, "pq_bits": 6, "init_offset": 32}
        expected = rac(
            sink, {"local": {"window_size": share}}, {"pq_cache": {"heavy_size": share, **pq}}
        )
        assert configs[name] == expected  # half window, half PQ top-k, after 32 sinks


def test_double_sparsity_example_is_the_papers_stack_with_dense_layers(tmp_path, monkeypatch):
    """The official code has no attention sink and no local window: the recipe alone."""
    monkeypatch.chdir(tmp_path)
    channels = tmp_path / "channels" / "Llama-3.1-8B-Instruct.json"
    channels.parent.mkdir()
    channels.write_text("{}")
    spec = load_experiment(EXAMPLES / "double_sparsity.yaml")
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    for budget in (1024, 4096):
        ds = {
            "double_sparsity": {
                "heavy_size": budget,
                "channel_file": "channels/Llama-3.1-8B-Instruct.json",
                "group_factor": 8,
                "label_bits": 4,
            }
        }
        expected = ResearchAttentionConfig.from_dict({"maskers": [ds], "dense_layers": [0, 1]})
        assert configs[f"double_sparsity_{budget}"] == expected
        assert expected == ResearchAttentionConfig.from_recipe(
            "double_sparsity", heavy_size=budget, channel_file=ds["double_sparsity"]["channel_file"]
        )
    top_k = {"oracle_top_k": {"heavy_size": 1024}}
    oracle = ResearchAttentionConfig.from_dict({"maskers": [top_k], "dense_layers": [0, 1]})
    assert configs["oracle_top_k_1024"] == oracle
    comment = " ".join(
        line.lstrip("# ").rstrip("\\ ")
        for line in (EXAMPLES / "double_sparsity.yaml").read_text().splitlines()
    )
    assert (
        f"sah calibrate double-sparsity {spec.model_names()[0]} --out {channels.relative_to(tmp_path)}"
        in comment
    )
    channels.unlink()  # without the calibrated file the check before any worker names it
    problems = configs["double_sparsity_1024"].masker_configs[0].artefact_problems()
    assert problems and "channels/Llama-3.1-8B-Instruct.json" in problems[0]


def test_hashattention_example_is_the_papers_stack() -> None:
    spec = load_experiment(EXAMPLES / "hashattention.yaml")
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs["dense"] is None
    sink, local = {"sink": {"sink_size": 128}}, {"local": {"window_size": 128}}
    weights = "hat/llama31-8b.safetensors"
    for name, heavy in (("hashattention_8x", 0.125), ("hashattention_32x", 0.03125)):
        hat = {"hashattention": {"heavy_size": heavy, "weights_file": weights}}
        assert configs[name] == rac(sink, local, hat)
    assert configs["oracle_top_k_8x"] == rac(sink, local, {"oracle_top_k": {"heavy_size": 0.125}})


def test_eviction_demo_compares_every_method_at_the_same_kept_keys() -> None:
    """Per compression ratio r: the eviction methods remove r of the context, and the sparse
    references (StreamingLLM's window, oracle top-k) keep 1 - r of the keys."""
    spec = load_experiment(EXAMPLES / "eviction_demo.yaml")
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs.pop("dense") is None
    for percent in (50, 75):
        ratio, kept = percent / 100, 1 - percent / 100
        for method, extra in [
            ("snapkv", {}),
            ("snapkv_qa", {"query_aware": True}),
            ("knorm", {}),
            ("tova", {}),
        ]:
            name = method.removesuffix("_qa")
            expected = rac({name: {"compression_ratio": ratio, **extra}})
            assert configs.pop(f"{method}_{percent}") == expected
        streaming = rac({"sink": {"sink_size": 4}}, {"local": {"window_size": kept}})
        assert configs.pop(f"streaming_{percent}") == streaming
        assert configs.pop(f"oracle_top_k_{percent}") == rac({"oracle_top_k": {"heavy_size": kept}})
    assert configs == {}


def test_sparse_prefill_example_sets_each_prefill_recipe_to_each_target(tmp_path, capsys) -> None:
    from sparse_attention_hub.cli import main
    from sparse_attention_hub.sparse_attention.recipes import available_recipes, get_recipe

    path = EXAMPLES / "sparse_prefill.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["sparse_configs"]
    spec = load_experiment(path)
    configs = dict(spec.matrix_kwargs()["sparse_attention_configs"])
    assert configs.pop("dense") is None
    paired = configs.pop("flexprefill_quest.at_0.3")
    assert paired.masker_names() == ["sink", "local", "quest"]
    assert paired.prefill_masker_configs == configs["flexprefill.at_0.3"].prefill_masker_configs
    targets: dict[str, set[str]] = {}
    for name, config in configs.items():
        recipe, target = name.split(".at_")
        params = {k: v for k, v in raw[name].items() if k != "recipe"}
        assert raw[name]["recipe"] == recipe, name
        assert config == ResearchAttentionConfig.from_recipe(recipe, **params), name
        assert config.masker_configs == [] and config.prefill_masker_configs, name
        targets.setdefault(recipe, set()).add(target)
    prefill_recipes = {
        name for name in available_recipes() if "prefill_maskers" in get_recipe(name).expand()
    }
    assert set(targets) == prefill_recipes  # every prefill recipe, each at both targets
    assert all(found == {"0.3", "0.2"} for found in targets.values()), targets
    out_dir = tmp_path / "out"
    assert main(["-q", "run", str(path), "--dry-run", "--result-dir", str(out_dir)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: 12 cells: 12 pending under {out_dir}")
