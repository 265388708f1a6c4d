"""Registration in transformers' attention interface: public API, one name, scoped by context."""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any

import pytest
import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.adapters.hf_attention import ATTENTION_NAME

from .conftest import CONTEXT, small_window


def test_nothing_registers_at_import() -> None:
    code = (
        "import sparse_attention_hub, sparse_attention_hub.adapters, "
        "sparse_attention_hub.testing\n"
        "from transformers import AttentionInterface\n"
        "print(sorted(k for k in AttentionInterface() if k.startswith('sah')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_sparse_mode_switches_and_restores(llama_adapter: ModelAdapterHF) -> None:
    name = llama_adapter.attention_implementation_name
    assert name == ATTENTION_NAME
    assert name in AttentionInterface()
    assert name in AttentionMaskInterface()
    with llama_adapter.enable_sparse_mode():  # dense config: a no-op
        assert llama_adapter.model.config._attn_implementation == "sdpa"
    llama_adapter.set_sparse_attention_config(small_window())
    with llama_adapter.enable_sparse_mode():
        assert llama_adapter.model.config._attn_implementation == name
        for layer in llama_adapter.model.model.layers:
            assert layer.self_attn.config._attn_implementation == name
    assert llama_adapter.model.config._attn_implementation == "sdpa"


def test_exception_inside_sparse_mode_restores_implementation(
    llama_adapter: ModelAdapterHF, monkeypatch: pytest.MonkeyPatch
) -> None:
    llama_adapter.set_sparse_attention_config(small_window())
    with pytest.raises(KeyError, match="boom"), llama_adapter.enable_sparse_mode():
        raise KeyError("boom")
    assert llama_adapter.model.config._attn_implementation == "sdpa"

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("masker exploded")

    monkeypatch.setattr(llama_adapter.research_attention, "custom_attention", broken)
    with pytest.raises(RuntimeError, match="masker exploded"):
        llama_adapter.process_request(Request(CONTEXT, "Q?"), {"max_new_tokens": 2})
    assert llama_adapter.model.config._attn_implementation == "sdpa"
    monkeypatch.undo()
    out = llama_adapter.process_request(Request(CONTEXT, "Q?"), {"max_new_tokens": 2})
    assert out.metadata[0]["generated_tokens"] == 2


def test_two_adapters_do_not_interfere(tiny_model_dir: str) -> None:
    dense = ModelAdapterHF(tiny_model_dir, device="cpu")
    sparse = ModelAdapterHF(tiny_model_dir, sparse_attention_config=small_window(), device="cpu")
    other = ModelAdapterHF(tiny_model_dir, sparse_attention_config=small_window(), device="cpu")
    # one process-wide name; the switch active in the context decides
    assert sparse.attention_implementation_name == other.attention_implementation_name
    req = Request("Item 1 is red. " * 30, "What is item 1?")
    gen = {"max_new_tokens": 6}
    baseline = dense.process_request(req, gen).responses
    sparse_out = sparse.process_request(req, gen).responses
    with sparse.enable_sparse_mode():
        assert dense.model.config._attn_implementation == "sdpa"
        assert dense.process_request(req, gen).responses == baseline
        calls = sparse._switch.calls
        assert other.process_request(req, gen).responses == sparse_out
        assert sparse._switch.calls == calls  # the other adapter ran its own research attention
        assert sparse._switch.is_active
    assert not sparse._switch.is_active
    assert sparse.process_request(req, gen).responses == sparse_out
    assert sparse_out != baseline
    del sparse, other
    gc.collect()
    assert ATTENTION_NAME in AttentionInterface()  # never unregistered
    assert dense.process_request(req, gen).responses == baseline


def test_model_left_on_the_name_outside_sparse_mode_is_an_error(
    llama_adapter: ModelAdapterHF,
) -> None:
    llama_adapter.set_sparse_attention_config(small_window())
    model = llama_adapter.model
    model.set_attn_implementation(ATTENTION_NAME)
    try:
        with pytest.raises(RuntimeError, match="outside an active"):
            model(input_ids=torch.tensor([[1, 2, 3]]))
    finally:
        model.set_attn_implementation("sdpa")


def test_sub_config_implementations_are_restored() -> None:
    """A model with sub-configs (a tiny random Llava) keeps its per-tower choice."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    from sparse_attention_hub.adapters.hf_attention import SparseAttentionSwitch
    from sparse_attention_hub.sparse_attention import ResearchAttention

    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
    config = LlavaConfig(
        text_config=LlamaConfig(**small, num_attention_heads=2, vocab_size=64),
        vision_config=CLIPVisionConfig(**small, num_attention_heads=2, image_size=8, patch_size=4),
        image_token_id=5,
    )
    model = LlavaForConditionalGeneration(config)
    model.set_attn_implementation({"": "sdpa", "text_config": "sdpa", "vision_config": "eager"})
    switch = SparseAttentionSwitch(model, ResearchAttention([]))
    with switch.enable():
        assert model.config.text_config._attn_implementation == ATTENTION_NAME
    assert model.config._attn_implementation == "sdpa"
    assert model.config.text_config._attn_implementation == "sdpa"
    assert model.config.vision_config._attn_implementation == "eager"


def test_without_research_attention_the_previous_implementation_runs(
    llama_adapter: ModelAdapterHF,
) -> None:
    """The fallback calls the implementation registered under the model's previous name."""
    from sparse_attention_hub.adapters.hf_attention import SparseAttentionSwitch

    model = llama_adapter.model
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        own = model(input_ids=ids).logits
        switch = SparseAttentionSwitch(model, None)
        with switch.enable():
            assert model.config._attn_implementation == ATTENTION_NAME
            fallback = model(input_ids=ids).logits
    assert switch.calls == 0
    torch.testing.assert_close(fallback, own)


def test_attention_argument_we_do_not_handle_fails_loudly_naming_the_model_class(
    llama_adapter: ModelAdapterHF,
) -> None:
    """An argument outside HANDLED_KWARGS/IGNORED_KWARGS is an error, never dropped."""
    llama_adapter.set_sparse_attention_config(small_window())
    q = torch.randn(1, 4, 2, 16)
    with (
        llama_adapter.enable_sparse_mode(),
        pytest.raises(ValueError, match=r"LlamaForCausalLM \(LlamaAttention\).*'cu_seq_lens_k'"),
    ):
        llama_adapter._switch.attention(
            llama_adapter.model.model.layers[0].self_attn, q, q, q, None, cu_seq_lens_k=[0, 2]
        )


def test_a_transformers_release_passing_a_new_attention_argument_fails_loudly(
    llama_adapter: ModelAdapterHF,
) -> None:
    """The guard behind pyproject's ``transformers<6``: a release whose model forward passes an
    attention argument we do not handle fails here, through the model's own forward (its
    ``**kwargs`` reach the attention function, as a new argument of a new release would)."""
    llama_adapter.set_sparse_attention_config(small_window())
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        llama_adapter.model(input_ids=ids, attention_argument_of_a_new_release=None)  # None: unused
        with (
            llama_adapter.enable_sparse_mode(),
            pytest.raises(ValueError, match=r"\['attention_argument_of_a_new_release'\]"),
        ):
            llama_adapter.model(input_ids=ids, attention_argument_of_a_new_release=True)
