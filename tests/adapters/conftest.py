"""Adapter fixtures: loaded tiny-model adapters shared per module, and helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from sparse_attention_hub.adapters import ModelAdapterHF
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import LocalMaskerConfig, SinkMaskerConfig

#: A short context with a question; the tiny tokenizer encodes it in ~60 tokens.
CONTEXT = "The magic number is 4217. The meeting took place in the library on Tuesday.\n"
QUESTIONS = ["What is the magic number?", "Where did the meeting take place?", " When?"]


def long_context(n_sentences: int = 40) -> str:
    """A context of roughly 25 * n_sentences tokens with varied content."""
    parts = [
        f"Item {i}: the value of key {i * 7 % 13} is {i * 31 % 97}; note {i % 5}."
        for i in range(n_sentences)
    ]
    return " ".join(parts) + "\n"


def small_window() -> ResearchAttentionConfig:
    return ResearchAttentionConfig(
        [SinkMaskerConfig(sink_size=2), LocalMaskerConfig(window_size=4)]
    )


@pytest.fixture(scope="module")
def _llama(tiny_model_dir: str) -> ModelAdapterHF:
    return ModelAdapterHF(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module")
def _qwen(tiny_gqa_model_dir: str) -> ModelAdapterHF:
    return ModelAdapterHF(tiny_gqa_model_dir, device="cpu")


def _reset(adapter: ModelAdapterHF) -> Iterator[ModelAdapterHF]:
    yield adapter
    adapter.set_sparse_attention_config(None)
    adapter.reuse_context_cache = True
    assert adapter.model.config._attn_implementation == "sdpa"


@pytest.fixture
def llama_adapter(_llama: ModelAdapterHF) -> Iterator[ModelAdapterHF]:
    """The module's tiny Llama adapter (MHA), back to dense after the test."""
    yield from _reset(_llama)


@pytest.fixture
def qwen_adapter(_qwen: ModelAdapterHF) -> Iterator[ModelAdapterHF]:
    """The module's tiny Qwen2 adapter (GQA 4/2), back to dense after the test."""
    yield from _reset(_qwen)


@pytest.fixture
def fed_ids() -> Iterator[Callable[[ModelAdapterHF], list[list[int]]]]:
    """Attach a forward pre-hook recording the input_ids of every model call (a spy)."""
    handles: list[Any] = []

    def attach(adapter: ModelAdapterHF) -> list[list[int]]:
        calls: list[list[int]] = []

        def hook(_module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            assert isinstance(ids, torch.Tensor)
            calls.append(ids[0].tolist())

        handles.append(adapter.model.register_forward_pre_hook(hook, with_kwargs=True))
        return calls

    yield attach
    for handle in handles:
        handle.remove()
