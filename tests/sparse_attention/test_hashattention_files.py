"""HashAttention weight files: what the masker, the loader and the converter refuse.

NaN or inf weights, integer dtypes, layers the model does not have, metadata that is missing
or names another format, version or activation: each is refused with the file and the tensor
(or field) named, before any attention call.
"""

from __future__ import annotations

import pickle
import re

import pytest
import torch
from safetensors.torch import save_file

from sparse_attention_hub.cli import main
from sparse_attention_hub.sparse_attention.maskers import HashAttentionConfig, create_masker
from sparse_attention_hub.sparse_attention.maskers.hashattention_checks import METADATA
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    load_hat_weights,
    random_hat_weights,
    to_pickle_layout,
    to_tensors,
)

H, D, LAYERS = 2, 4, 2
NAME = "layers.1.key.2.bias"


def _write(tmp_path, tensors=None, metadata=METADATA, name="w.safetensors"):
    tensors = (
        tensors if tensors is not None else to_tensors(random_hat_weights(LAYERS, H, D, 32, 8))
    )
    path = tmp_path / name
    save_file(tensors, str(path), metadata=metadata)
    return str(path)


def _with(value: torch.Tensor) -> dict[str, torch.Tensor]:
    tensors = to_tensors(random_hat_weights(LAYERS, H, D, 32, 8))
    tensors[NAME] = value
    return tensors


@pytest.mark.parametrize(
    "tensor, message",
    [
        (torch.full((H, 32), float("nan")), r"tensor layers\.1\.key\.2\.bias holds 64 NaN"),
        (torch.full((H, 32), float("inf")), r"layers\.1\.key\.2\.bias holds 0 NaN and 64 inf"),
        (torch.zeros(H, 32, dtype=torch.int32), r"layers\.1\.key\.2\.bias has dtype torch\.int32"),
        (torch.zeros(H, 32, dtype=torch.uint8), r"has dtype torch\.uint8.*floating point"),
    ],
)
def test_bad_tensors_are_refused_naming_file_and_tensor(tmp_path, tensor, message):
    path = _write(tmp_path, _with(tensor))
    with pytest.raises(ValueError, match=r"w\.safetensors: .*" + message):
        create_masker(HashAttentionConfig(4, path))


@pytest.mark.parametrize(
    "metadata, message",
    [
        (None, "no header metadata"),
        ({**METADATA, "activation": "relu"}, r"metadata field 'activation' is 'relu'.*\['silu'\]"),
        ({**METADATA, "format": "pt"}, r"metadata field 'format' is 'pt'"),
        ({"format": METADATA["format"], "activation": "silu"}, r"field 'version' is no,"),
        ({**METADATA, "version": "2"}, r"field 'version' is '2'"),
    ],
)
def test_bad_metadata_is_refused(tmp_path, metadata, message):
    path = _write(tmp_path, metadata=metadata)
    with pytest.raises(ValueError, match=r"w\.safetensors: .*" + message):
        create_masker(HashAttentionConfig(4, path))


def test_extra_metadata_keys_are_ignored(tmp_path):
    path = _write(tmp_path, metadata={**METADATA, "trained_on": "tiny"})
    assert sorted(load_hat_weights(path)) == [0, 1]


def test_layers_beyond_the_model_are_refused_when_its_layer_count_is_given(tmp_path):
    path = _write(tmp_path)
    assert sorted(load_hat_weights(path, num_layers=2)) == [0, 1]
    assert sorted(load_hat_weights(path, num_layers=8)) == [0, 1]  # a subset is fine
    with pytest.raises(
        ValueError,
        match=r"w\.safetensors: weights for layer\(s\) \[1\], but the model has 1 layers",
    ):
        load_hat_weights(path, num_layers=1)


@pytest.mark.parametrize(
    "value, message",
    [
        (torch.full((H, 32), float("nan")), r"layer 1 key_bias\[2\] holds 64 NaN"),
        (torch.zeros(H, 32, dtype=torch.int64), r"layer 1 key_bias\[2\] has dtype torch\.int64"),
        ("text", r"layer 1 key_bias\[2\] is not a tensor or array"),
    ],
)
def test_the_converter_and_a_trusted_pickle_check_the_tensors(tmp_path, capsys, value, message):
    layout = to_pickle_layout(random_hat_weights(LAYERS, H, D, 32, 8))
    layout[1]["key_bias"][2] = value
    source, target = tmp_path / "w.pkl", tmp_path / "w.safetensors"
    source.write_bytes(pickle.dumps(layout))
    assert main(["convert", "hashattention", str(source), "--out", str(target)]) == 2
    assert re.search(r"w\.pkl: .*" + message, capsys.readouterr().err)
    assert not target.exists()
    with pytest.raises(ValueError, match=r"w\.pkl: .*" + message):
        create_masker(HashAttentionConfig(4, str(source), allow_pickle=True))
