"""Registration in transformers' attention interface: scoped, restored, per adapter."""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any

import pytest
from transformers.masking_utils import AttentionMaskInterface
from transformers.modeling_utils import AttentionInterface

from sparse_attention_hub.adapters import ModelAdapterHF, Request

from .conftest import CONTEXT, small_window


def test_nothing_registers_at_import() -> None:
    code = (
        "import sparse_attention_hub, sparse_attention_hub.adapters, "
        "sparse_attention_hub.testing\n"
        "from transformers.modeling_utils import AttentionInterface\n"
        "print(sorted(k for k in AttentionInterface._global_mapping if k.startswith('sah')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_sparse_mode_switches_and_restores(llama_adapter: ModelAdapterHF) -> None:
    name = llama_adapter.attention_implementation_name
    assert name in AttentionInterface._global_mapping
    assert name in AttentionMaskInterface._global_mapping
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
    assert dense.attention_implementation_name != sparse.attention_implementation_name
    req = Request("Item 1 is red. " * 30, "What is item 1?")
    gen = {"max_new_tokens": 6}
    baseline = dense.process_request(req, gen).responses
    sparse_out = sparse.process_request(req, gen).responses
    with sparse.enable_sparse_mode():
        assert dense.model.config._attn_implementation == "sdpa"
        assert dense.process_request(req, gen).responses == baseline
    assert sparse.process_request(req, gen).responses == sparse_out
    assert sparse_out != baseline
    name = sparse.attention_implementation_name
    del sparse
    gc.collect()
    assert name not in AttentionInterface._global_mapping
    assert name not in AttentionMaskInterface._global_mapping
    assert dense.process_request(req, gen).responses == baseline
