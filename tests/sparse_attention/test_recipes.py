"""Recipes: the published stacks by name, their defaults, errors, the study file and the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sparse_attention_hub.experiment import load_experiment_text
from sparse_attention_hub.experiment.checks import ExperimentError
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig, recipe_registry
from sparse_attention_hub.sparse_attention import recipes as recipes_module
from sparse_attention_hub.sparse_attention.maskers import masker_class
from sparse_attention_hub.sparse_attention.recipes import (
    available_recipes,
    describe_recipes,
    expand_recipe,
)

RECIPES = [
    "streaming_llm",
    "oracle_top_k",
    "oracle_top_p",
    "quest",
    "magicpig",
    "vattention",
    "pq_cache",
    "double_sparsity",
    "hashattention",
    "socket",
]


def _artefacts(tmp_path) -> dict[str, dict[str, str]]:
    """The artefact parameters the recipes that read one need (any file of the right kind)."""
    from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
        random_channel_table,
        write_channel_file,
    )
    from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
        random_hat_weights,
        save_hat_weights,
    )

    channels = write_channel_file(tmp_path / "channels.json", random_channel_table(2, 4, 2, 16))
    weights = save_hat_weights(random_hat_weights(2, 4, 16, hidden=8), tmp_path / "hat.st")
    return {
        "double_sparsity": {"channel_file": str(channels)},
        "hashattention": {"weights_file": str(weights)},
    }


def test_the_registry_holds_the_published_stacks_and_each_builds(tmp_path):
    assert available_recipes()[: len(RECIPES)] == RECIPES
    artefacts = _artefacts(tmp_path)
    for name in available_recipes():
        config = ResearchAttentionConfig.from_recipe(name, **artefacts.get(name, {}))
        assert config.masker_configs or config.prefill_masker_configs, name
    with pytest.raises((TypeError, ValueError), match="channel_file"):
        ResearchAttentionConfig.from_recipe("double_sparsity")  # names what is missing


def test_paper_defaults():
    quest = ResearchAttentionConfig.from_recipe("quest")
    assert quest.dense_layers == [0, 1] and quest.masker_configs[0].page_size == 16
    pig = ResearchAttentionConfig.from_recipe("magicpig")
    assert pig.masker_names() == ["magicpig"] and pig.dense_layers == [0, 16]
    (lsh,) = pig.masker_configs  # it attends its sink and window itself
    assert (lsh.sink_size, lsh.window_size, lsh.lsh_k, lsh.lsh_l) == (4, 64, 10, 150)
    assert (lsh.min_collisions, lsh.attend_generated) == (2, True)
    streaming = ResearchAttentionConfig.from_recipe("streaming_llm")
    assert [c.__dict__ for c in streaming.masker_configs] == [
        {"sink_size": 4},
        {"window_size": 1020},
    ]
    vatt = ResearchAttentionConfig.from_recipe("vattention", heavy_size=0.1, epsilon=0.1)
    assert vatt.masker_names() == ["sink", "local", "oracle_top_k", "vattention"]
    assert vatt.masker_configs[2].heavy_size == 0.1 and vatt.masker_configs[3].epsilon == 0.1
    assert masker_class(vatt.masker_configs[-1]).is_sampling
    pq = ResearchAttentionConfig.from_recipe("pq_cache", token_budget=1000)
    assert pq.masker_names() == ["sink", "local", "pq_cache"] and pq.dense_layers == []
    sink, local, codes = pq.masker_configs
    assert (sink.sink_size, local.window_size, codes.heavy_size) == (32, 500, 500)
    assert (codes.init_offset, codes.pq_subvectors, codes.pq_bits) == (32, 2, 6)
    assert ResearchAttentionConfig.from_recipe("pq_cache").masker_configs[2].heavy_size == 0.1


def test_double_sparsity_recipe_is_the_papers_setting(tmp_path):
    files = _artefacts(tmp_path)["double_sparsity"]
    ds = ResearchAttentionConfig.from_recipe("double_sparsity", **files)
    assert ds.masker_names() == ["double_sparsity"] and ds.dense_layers == [0, 1]
    (labels,) = ds.masker_configs
    assert (labels.heavy_size, labels.group_factor, labels.label_bits) == (0.0625, 8, 4)
    assert labels.channel_file == files["channel_file"]


def test_hashattention_recipe_is_the_papers_stack(tmp_path):
    files = _artefacts(tmp_path)["hashattention"]
    hat = ResearchAttentionConfig.from_recipe("hashattention", **files)
    assert hat.masker_names() == ["sink", "local", "hashattention"] and hat.dense_layers == []
    sink, local, signatures = hat.masker_configs
    assert (sink.sink_size, local.window_size) == (128, 128)
    assert (signatures.heavy_size, signatures.hat_bits, signatures.allow_pickle) == (
        0.125,
        32,
        False,
    )
    vatt = ResearchAttentionConfig.from_recipe("vattention", heavy="hashattention", **files)
    assert vatt.masker_names() == ["sink", "local", "hashattention", "vattention"]


def test_parameters_override_and_unknown_ones_name_the_recipes_parameters():
    assert ResearchAttentionConfig.from_recipe("quest", dense_layers=[]).dense_layers == []
    with pytest.raises(ValueError, match=r"'quest'.*heavy_size=1024, page_size=16"):
        ResearchAttentionConfig.from_recipe("quest", budget=0.1)
    with pytest.raises(ValueError, match="unknown recipe 'nope'; known recipes: streaming_llm"):
        ResearchAttentionConfig.from_recipe("nope")
    with pytest.raises(ValueError, match="heavy must be one of"):
        expand_recipe("vattention", {"heavy": "quest"})


def test_the_hashattention_heavy_part_names_its_masker():
    expanded = expand_recipe("vattention", {"heavy": "hashattention", "weights_file": "w.st"})
    assert expanded["maskers"][2] == {"hashattention": {"heavy_size": 0.05, "weights_file": "w.st"}}
    with pytest.raises(ValueError, match="weights_file"):
        expand_recipe("vattention", {"heavy": "hashattention"})


STUDY = """
result_dir: {result_dir}
models: [{{tiny_model: {{arch: llama}}}}]
sparse_configs:
  dense: dense
  qk: {{recipe: quest, heavy_size: [0.02, 0.05]}}
  pig: {{recipe: magicpig, lsh_l: 20, dense_layers: [[0], [1]]}}
benchmarks: [mock_benchmark]
"""


def test_a_study_file_expands_recipes_and_sweeps_their_parameters(tmp_path):
    spec = load_experiment_text(STUDY.format(result_dir=tmp_path))
    configs = dict(spec.sparse_attention_configs())
    assert list(configs) == [
        "dense",
        "qk.heavy_size=0.02",
        "qk.heavy_size=0.05",
        "pig.dense_layers=0",
        "pig.dense_layers=1",
    ]
    assert configs["qk.heavy_size=0.05"] == ResearchAttentionConfig.from_recipe(
        "quest", heavy_size=0.05
    )
    assert configs["pig.dense_layers=1"].dense_layers == [1]
    assert configs["pig.dense_layers=1"].masker_configs[-1].lsh_l == 20
    # The spec holds the expanded masker list (config.json records it).
    assert dict(spec.sparse_configs)["qk.heavy_size=0.02"][0] == {
        "quest": {"token_budget": 0.02, "page_size": 16}
    }


def test_a_bad_recipe_parameter_in_a_study_names_the_config_and_the_parameters(tmp_path):
    text = STUDY.format(result_dir=tmp_path).replace("heavy_size: [0.02, 0.05]", "budget: 3")
    with pytest.raises(ExperimentError, match=r"sparse_configs\.qk.*heavy_size=1024"):
        load_experiment_text(text)


def test_a_changed_recipe_default_changes_the_cell_fingerprint(tmp_path, monkeypatch):
    from sparse_attention_hub.executor.executor import BenchmarkExecutor

    def fingerprints() -> dict[str, str]:
        spec = load_experiment_text(STUDY.format(result_dir=tmp_path))
        executor = BenchmarkExecutor(**spec.executor_kwargs(verbose=False))
        planned = executor.plan_matrix(**spec.matrix_kwargs())
        return {stub.sparse_config_name: stub.fingerprint for stub, _ in planned}

    before = fingerprints()
    quest = recipes_module.get_recipe("quest")
    changed = recipes_module.Recipe(
        quest.name, quest.paper, quest.build, {**quest.defaults, "page_size": 32}
    )
    monkeypatch.setitem(recipe_registry._RECIPES, "quest", changed)
    after = fingerprints()
    assert after["qk.heavy_size=0.02"] != before["qk.heavy_size=0.02"]
    assert (
        after["dense"] == before["dense"]
        and after["pig.dense_layers=0"] == before["pig.dense_layers=0"]
    )


def test_sah_list_recipes_prints_each_expansion_and_paper():
    out = subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", "list", "recipes"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name, text, paper in describe_recipes():
        assert name in out and paper in out and text.splitlines()[0] in out
    assert "magicpig(lsh_k=10, lsh_l=150" in out and "Chen et al., 2024" in out
