"""The ``sparse_config`` model argument of ``sah`` (no lm-eval needed) and its other options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_attention_hub.lm_eval import parse_sparse_config
from sparse_attention_hub.lm_eval.options import SahOptions
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

MASKERS = [{"sink": {"sink_size": 4}}, {"local": {"window_size": 16}}]


@pytest.mark.parametrize("value", [None, "dense", []])
def test_dense_forms_mean_the_models_own_attention(value):
    assert parse_sparse_config(value) is None


def test_a_recipe_name_and_a_recipe_with_parameters():
    assert parse_sparse_config("quest") == ResearchAttentionConfig.from_recipe("quest")
    config = parse_sparse_config({"recipe": "quest", "heavy_size": 0.05})
    assert config == ResearchAttentionConfig.from_recipe("quest", heavy_size=0.05)
    assert config.dense_layers == [0, 1]


def test_masker_lists_inline_in_json_and_in_files(tmp_path: Path):
    expected = ResearchAttentionConfig.from_dict({"maskers": MASKERS})
    assert parse_sparse_config(MASKERS) == expected
    assert parse_sparse_config(json.dumps(MASKERS)) == expected
    (tmp_path / "c.json").write_text(json.dumps({"maskers": MASKERS, "dense_layers": [0]}))
    with_layers = parse_sparse_config(str(tmp_path / "c.json"))
    assert with_layers.masker_names() == ["sink", "local"] and with_layers.dense_layers == [0]
    (tmp_path / "c.yaml").write_text("- sink: {sink_size: 4}\n- local: {window_size: 16}\n")
    assert parse_sparse_config(str(tmp_path / "c.yaml")) == expected
    (tmp_path / "r.yml").write_text("recipe: quest\nheavy_size: 64\n")
    assert parse_sparse_config(str(tmp_path / "r.yml")) == parse_sparse_config(
        {"recipe": "quest", "heavy_size": 64}
    )


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("no_such_recipe", "no_such_recipe"),
        ("missing.yaml", "does not exist"),
        ("[{", "not valid JSON"),
        ({"recipe": "quest", "nope": 1}, "nope"),
        ({"sink": {"sink_size": 4}}, "maskers"),
        ([{"no_such_masker": {}}], "no_such_masker"),
        (3, "int"),
    ],
)
def test_bad_configs_are_named(value, named):
    with pytest.raises(ValueError, match=named):
        parse_sparse_config(value)


def test_options_refuse_unknown_arguments_and_need_a_model():
    with pytest.raises(ValueError, match=r"unknown model argument.*'spares_config'"):
        SahOptions.from_kwargs({"pretrained": "m", "spares_config": "quest"})
    with pytest.raises(ValueError, match="pretrained=MODEL"):
        SahOptions.from_kwargs({"sparse_config": "quest"})
    with pytest.raises(ValueError, match="max_gen_toks"):
        SahOptions.from_kwargs({"pretrained": "m", "max_gen_toks": 0})


def test_a_cuda_device_without_cuda_falls_back_to_the_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert SahOptions.from_kwargs({"pretrained": "m", "device": "cuda:0"}).device == "cpu"
    assert SahOptions.from_kwargs({"pretrained": "m", "device": "cpu"}).device == "cpu"
