"""Every masker that reads an artefact file refuses a file holding NaN, at load and in the
check run before any worker starts, naming the file.

The maskers are found in the registry (a config class with ``artefact_fields``), so a new
artefact masker fails this test until it has a NaN case in ``NAN_FILES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from sparse_attention_hub.sparse_attention.maskers import available_maskers, create_masker
from sparse_attention_hub.sparse_attention.maskers.base import MaskerConfig
from sparse_attention_hub.sparse_attention.maskers.double_sparsity import DoubleSparsityConfig
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
    layer_key,
    random_channel_table,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention import HashAttentionConfig
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    random_hat_weights,
    save_hat_weights,
)
from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape
from sparse_attention_hub.sparse_attention.maskers.registry import resolve_masker

SHAPE = ModelShape(layers=2, heads=4, kv_heads=2, head_dim=8)


def _hashattention(folder: Path) -> MaskerConfig:
    weights = random_hat_weights(SHAPE.layers, SHAPE.heads, SHAPE.head_dim, hidden=8)
    weights[1].key[0][0][0, 0, 0] = float("nan")
    return HashAttentionConfig(4, str(save_hat_weights(weights, folder / "nan.safetensors")))


def _double_sparsity(folder: Path) -> MaskerConfig:
    table: dict[str, list[list[float]]] = dict(
        random_channel_table(SHAPE.layers, SHAPE.heads, SHAPE.kv_heads, SHAPE.head_dim)  # type: ignore[arg-type]
    )
    table[layer_key(1, "q")][0][0] = float("nan")
    path = folder / "nan.json"
    path.write_text(json.dumps(table))  # json writes NaN, Python's json reads it back
    return DoubleSparsityConfig(4, str(path))


#: masker name -> (folder) -> a config of that masker whose artefact file holds a NaN.
NAN_FILES: dict[str, Callable[[Path], MaskerConfig]] = {
    "hashattention": _hashattention,
    "double_sparsity": _double_sparsity,
}


def artefact_maskers() -> list[str]:
    """Registered maskers whose config names an artefact file."""
    return [n for n in available_maskers() if resolve_masker(n).config_class.artefact_fields]


def test_the_registry_has_artefact_maskers():
    assert {"hashattention", "double_sparsity"} <= set(artefact_maskers())


@pytest.mark.parametrize("name", artefact_maskers())
def test_every_artefact_masker_refuses_a_nan_file(tmp_path, name):
    if name not in NAN_FILES:
        pytest.fail(f"masker {name!r} reads an artefact file: add a NaN case to NAN_FILES")
    config = NAN_FILES[name](tmp_path)
    with pytest.raises(ValueError, match=r"nan\.(safetensors|json)"):
        create_masker(config)
    for shape in (None, SHAPE):
        problems = config.artefact_problems(shape)
        assert problems and all("nan." in p for p in problems), problems


@pytest.mark.parametrize("name", artefact_maskers())
def test_every_artefact_masker_reports_a_missing_file(tmp_path, name):
    config = NAN_FILES[name](tmp_path) if name in NAN_FILES else None
    if config is None:
        pytest.fail(f"masker {name!r} reads an artefact file: add a NaN case to NAN_FILES")
    for field in type(config).artefact_fields:
        Path(getattr(config, field)).unlink()
    problems = config.artefact_problems(SHAPE)
    assert problems and all("no such file" in p for p in problems), problems
