"""``sah calibrate double-sparsity``: the official statistic on a real tiny model, a file the
masker loads, offline, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from sparse_attention_hub.offline.double_sparsity_calibration import (
    calibration_blocks,
    channel_statistics,
    rank_channels,
)
from sparse_attention_hub.sparse_attention import AttentionInputs, Mask
from sparse_attention_hub.sparse_attention.maskers import DoubleSparsityConfig, create_masker
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import layer_key


def sah(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_the_cli_writes_a_file_the_masker_loads_offline(tiny_gqa_model_dir, tmp_path):
    out = tmp_path / "channels.json"
    done = sah(
        "calibrate",
        "double-sparsity",
        tiny_gqa_model_dir,
        "--out",
        str(out),
        "--num-tokens",
        "1100",
    )
    assert done.returncode == 0, done.stderr
    assert "wrote Double Sparsity channels" in done.stdout
    assert "block" in done.stderr  # tqdm progress and logging, on stderr
    table = json.loads(out.read_text())
    assert sorted(table) == sorted(layer_key(i, s) for i in (0, 1) for s in ("q", "k"))
    assert torch.tensor(table[layer_key(1, "q")]).shape == (4, 16)  # per query head
    assert torch.tensor(table[layer_key(1, "k")]).shape == (2, 16)  # per KV head
    for selection in ("q", "k"):
        masker = create_masker(DoubleSparsityConfig(4, str(out), channel_selection=selection))
        q, k = torch.randn(1, 4, 1, 16), torch.randn(1, 2, 20, 16)
        inputs = AttentionInputs(q, k, k, layer_idx=1)
        active = masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape)).to_dense() > 0
        assert (active.sum(-1) == 4).all()


def test_only_the_selected_lists_are_written_and_texts_are_read(tiny_model_dir, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("The river ran low that summer and the herons stood in the shallows. " * 40)
    out = tmp_path / "k.json"
    done = sah(
        "calibrate", "double-sparsity", tiny_model_dir, "--out", str(out),
        "--texts", str(texts), "--selection", "k", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(json.loads(out.read_text())) == [layer_key(0, "k"), layer_key(1, "k")]


def test_bad_input_is_a_clear_error_before_any_model_loads(tmp_path):
    done = sah(
        "calibrate", "double-sparsity", str(tmp_path / "nope"), "--out", str(tmp_path / "o.json")
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
    done = sah(
        "calibrate", "double-sparsity", "x/y", "--out", "o.json", "--texts", str(tmp_path / "t")
    )
    assert done.returncode == 2 and "--texts" in done.stderr and "cannot read" in done.stderr
    done = sah("calibrate", "double-sparsity", "x/y", "--out", "o.json", "--num-tokens", "0")
    assert done.returncode == 2 and "--num-tokens" in done.stderr


def _load(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(path)


def test_the_statistic_is_the_mean_abs_pre_rope_projection_summed_over_blocks(tiny_gqa_model_dir):
    model, tokenizer = _load(tiny_gqa_model_dir)
    blocks = calibration_blocks(
        tokenizer, ["Once upon a time there was a village. " * 100], 300, 128
    )
    assert [b.shape for b in blocks] == [(1, 128), (1, 128)]
    attn = model.model.layers[1].self_attn
    inputs: list[torch.Tensor] = []
    handle = attn.q_proj.register_forward_hook(lambda m, args, out: inputs.append(args[0]))
    sums = channel_statistics(model, blocks)
    handle.remove()
    expected = sum(attn.q_proj(x).reshape(-1, 4, 16).abs().mean(0) for x in inputs)
    assert torch.allclose(sums[(1, "q")], expected, atol=1e-5)
    assert sums[(0, "k")].shape == (2, 16)
    # Boost one q channel of head 2 and one k channel of KV head 1: they rank first.
    with torch.no_grad():
        attn.q_proj.weight[2 * 16 + 5] *= 50
        attn.k_proj.weight[1 * 16 + 11] *= 50
    table = rank_channels(channel_statistics(model, blocks))
    assert table[layer_key(1, "q")][2][0] == 5 and table[layer_key(1, "k")][1][0] == 11
    assert table[layer_key(1, "q")][0][0] != 5 or table[layer_key(1, "q")][1][0] != 5


@pytest.mark.parametrize("n_tokens, block, want", [(50, 512, [50]), (1000, 300, [300] * 3)])
def test_calibration_blocks(tiny_model_dir, n_tokens, block, want):
    _, tokenizer = _load(tiny_model_dir)
    blocks = calibration_blocks(tokenizer, ["alpha beta gamma delta " * 400], n_tokens, block)
    assert [b.shape[1] for b in blocks] == want
