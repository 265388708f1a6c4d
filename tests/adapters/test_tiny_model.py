"""The tiny-model factory: deterministic, offline-loadable, any text encodes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sparse_attention_hub.testing import make_tiny_model, tiny_model_fingerprint


def test_loads_offline_and_encodes_any_text(tiny_model_dir: str) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert 300 <= len(tok) <= 2048
    assert model.config.vocab_size == len(tok)
    assert tok.bos_token and tok.eos_token and tok.pad_token
    text = "Hello wörld, 你好 🙂 tab\tnewline\n{json: [1, 2]} the magic number is 4217."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), len(tok))


def test_chat_template_is_llama3_like(tiny_model_dir: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith(tok.bos_token)
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "hi<|eot_id|>" in text


def test_gqa_fixture_has_fewer_kv_heads(tiny_gqa_model_dir: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_gqa_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.config.num_attention_heads == 4
    assert model.config.num_key_value_heads == 2
    assert model.config.max_position_embeddings >= 8192


def test_deterministic_and_not_rewritten(tmp_path: Path, tiny_model_dir: str) -> None:
    other = make_tiny_model(tmp_path / "again", arch="llama", seed=0)
    assert tiny_model_fingerprint(other) == tiny_model_fingerprint(tiny_model_dir)
    weights = Path(other) / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert make_tiny_model(other, arch="llama", seed=0) == other
    assert weights.stat().st_mtime_ns == mtime
    make_tiny_model(other, arch="llama", seed=1)
    assert tiny_model_fingerprint(other) != tiny_model_fingerprint(tiny_model_dir)


def test_mistral_and_bad_arguments(tmp_path: Path) -> None:
    path = make_tiny_model(tmp_path / "m", arch="mistral", num_hidden_layers=1)
    assert AutoModelForCausalLM.from_pretrained(path).config.model_type == "mistral"
    with pytest.raises(ValueError, match="arch='gpt2'"):
        make_tiny_model(tmp_path / "x", arch="gpt2")
    with pytest.raises(ValueError, match="hidden_sise"):
        make_tiny_model(tmp_path / "x", hidden_sise=8)
    with pytest.raises(ValueError, match="num_key_value_heads=3"):
        make_tiny_model(tmp_path / "x", num_key_value_heads=3)
    with pytest.raises(ValueError, match="sliding_window needs an arch"):
        make_tiny_model(tmp_path / "x", arch="llama", sliding_window=8)
    with pytest.raises(ValueError, match="sliding_window=1"):
        make_tiny_model(tmp_path / "x", arch="mistral", sliding_window=1)
