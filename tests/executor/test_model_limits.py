"""Settings checked against the model's config.json in the preflight, before any worker.

The tiny Llama of the conftest has 2 layers and 16,384 positions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sparse_attention_hub.executor import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkExecutor,
    PreflightError,
)
from sparse_attention_hub.executor.model_limits import config_value, read_model_config
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

SINK = {"sink": {"sink_size": 4}}


def preflight_of(base: Path, model: str, configs: list, **generation: int):  # type: ignore[no-untyped-def]
    """The executor's preflight report of one model x ``configs`` x mock_benchmark."""
    executor = BenchmarkExecutor(None, 1, base_result_dir=str(base), verbose=False)
    kwargs = {
        "model_names": [model],
        "sparse_attention_configs": configs,
        "benchmark_configs": [BenchmarkConfig("mock_benchmark")],
        "adapter_config": AdapterConfig(),
        "generation_kwargs": dict(generation) or None,
    }
    plan = executor.plan_matrix(**kwargs)
    return (
        executor.preflight_matrix(
            [model],
            kwargs["benchmark_configs"],
            kwargs["adapter_config"],
            stubs=[s for s, _ in plan],
        ),
        executor,
        kwargs,
    )


def test_dense_layers_beyond_the_model_are_refused_before_any_worker(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    config = ResearchAttentionConfig.from_dict({"maskers": [SINK], "dense_layers": [0, 1, 5]})
    report, executor, kwargs = preflight_of(tmp_path, tiny_model_dir, [("s", config)])
    assert report.problems == [
        f"sparse config 's': dense_layers [0, 1, 5] name layer(s) [5] that model "
        f"{tiny_model_dir} does not have; allowed: 0 to 1 (2 layers)"
    ]
    with pytest.raises(PreflightError, match="dense_layers"):
        executor.run_benchmark_matrix(**kwargs)
    assert not (tmp_path / "execution_summary.json").exists()


def test_a_recipe_given_dense_layers_beyond_the_model_are_refused(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    config = ResearchAttentionConfig.from_recipe("magicpig", dense_layers=[0, 16])
    assert not config.dense_layers_from_recipe
    report, _, _ = preflight_of(tmp_path, tiny_model_dir, [("mp", config)])
    assert len(report.problems) == 1 and "layer(s) [16]" in report.problems[0]


def test_a_recipe_default_beyond_the_model_is_clipped_with_a_note(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    config = ResearchAttentionConfig.from_recipe("magicpig")  # dense layers 0 and 16
    assert config.dense_layers == [0, 16] and config.dense_layers_from_recipe
    assert config == ResearchAttentionConfig.from_dict(config.to_dict())  # not in the identity
    report, _, _ = preflight_of(tmp_path, tiny_model_dir, [("mp", config)])
    assert report.problems == []
    assert report.notes == [
        f"sparse config 'mp': the recipe's default dense_layers [0, 16] go beyond model "
        f"{tiny_model_dir} (2 layers); layer(s) [16] do not exist there, so only [0] stay "
        "dense (set dense_layers to choose)"
    ]


def test_max_new_tokens_beyond_the_models_positions_is_refused(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    report, _, _ = preflight_of(tmp_path, tiny_model_dir, [("dense", None)], max_new_tokens=20000)
    assert report.problems == [
        f"generation_kwargs.max_new_tokens=20000: model {tiny_model_dir} has 16384 positions "
        "(max_position_embeddings); allowed: 1 to 16384"
    ]
    ok, _, _ = preflight_of(tmp_path, tiny_model_dir, [("dense", None)], max_new_tokens=16384)
    assert ok.problems == []


def test_a_hub_models_config_comes_from_the_cache(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cache" / "models--org--tiny"
    shutil.copytree(tiny_model_dir, root / "snapshots" / ("a" * 40))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("a" * 40)
    assert read_model_config("org/tiny", None, 1.0)["num_hidden_layers"] == 2
    config = ResearchAttentionConfig.from_dict({"maskers": [SINK], "dense_layers": [3]})
    report, _, _ = preflight_of(tmp_path / "out", "org/tiny", [("s", config)])
    assert len(report.problems) == 1 and "model org/tiny does not have" in report.problems[0]
    with pytest.raises(OSError, match="not in the local cache"):
        read_model_config("org/absent", None, 1.0)


def test_config_values_are_found_in_a_text_config(tmp_path: Path) -> None:
    config = {"text_config": {"num_hidden_layers": 48, "max_position_embeddings": 131072}}
    assert config_value(config, ("num_hidden_layers",)) == 48
    assert (
        config_value({"n_layer": 12, "n_positions": 1024}, ("num_hidden_layers", "n_layer")) == 12
    )
    assert config_value({"num_hidden_layers": True}, ("num_hidden_layers",)) is None
    (tmp_path / "config.json").write_text(json.dumps([1]))
    with pytest.raises(ValueError, match="JSON object"):
        read_model_config(str(tmp_path), None, 1.0)


def test_pyramidkv_num_layers_other_than_the_models_is_refused_before_any_worker(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    wrong = ResearchAttentionConfig.from_recipe("pyramidkv", num_layers=32)  # the model has 2
    right = ResearchAttentionConfig.from_recipe("pyramidkv", num_layers=2)
    models = ResearchAttentionConfig.from_recipe("pyramidkv")  # the model's layer count
    configs = [("p", wrong), ("q", right), ("r", models)]
    report, executor, kwargs = preflight_of(tmp_path, tiny_model_dir, configs)
    assert report.problems == [
        f"sparse config 'p': pyramidkv's num_layers=32 but model {tiny_model_dir} has 2 layers; "
        "set num_layers: 2 or leave it out (the budget schedule spans the model's layers)"
    ]
    with pytest.raises(PreflightError, match="num_layers"):
        executor.run_benchmark_matrix(**kwargs)
    assert not (tmp_path / "execution_summary.json").exists()
