"""Eviction through the adapter: the observed context prefill gives the same logits as the
model's own, and a query-agnostic decision is made once per request and reused."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import QuestConfig, SnapKVConfig, TOVAConfig

from .conftest import QUESTIONS, long_context


def _prefill_logits(adapter: ModelAdapterHF, ids: list[int]) -> torch.Tensor:
    context = adapter.new_context()
    with torch.inference_mode(), adapter._observing():
        return adapter.forward(ids, context.cache)[-1]


@pytest.mark.parametrize("name", ["llama_adapter", "qwen_adapter"])
def test_an_observing_masker_leaves_the_prefill_logits_unchanged(
    name: str, request: pytest.FixtureRequest
) -> None:
    adapter: ModelAdapterHF = request.getfixturevalue(name)
    ids = adapter.tokenizer(long_context(3))["input_ids"]
    dense = _prefill_logits(adapter, ids)
    adapter.set_sparse_attention_config(ResearchAttentionConfig([SnapKVConfig(0.5, window_size=8)]))
    observed = _prefill_logits(adapter, ids)
    assert torch.equal(dense, observed)
    layers = adapter.model.config.num_hidden_layers
    masker = adapter.research_attention.maskers[0]
    states = adapter.research_attention.states
    assert all(states.entry(i, masker) is not None for i in range(layers))  # it did observe
    assert adapter.model.config._attn_implementation == "sdpa"  # restored


def _count_decisions(adapter: ModelAdapterHF, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    masker = adapter.research_attention.maskers[0]
    calls: list[int] = []
    real = masker.decide

    def counting(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(masker, "decide", counting)
    return calls


@pytest.mark.parametrize(("aware", "per_question"), [(False, False), (True, True)])
def test_query_agnostic_decides_once_per_request_and_query_aware_per_question(
    llama_adapter: ModelAdapterHF, monkeypatch: pytest.MonkeyPatch, aware: bool, per_question: bool
) -> None:
    adapter = llama_adapter
    adapter.set_sparse_attention_config(
        ResearchAttentionConfig([TOVAConfig(0.5, query_aware=aware), QuestConfig(8, page_size=4)])
    )
    calls = _count_decisions(adapter, monkeypatch)
    adapter.process_request(Request(long_context(3), QUESTIONS), {"max_new_tokens": 3})
    layers = adapter.model.config.num_hidden_layers
    assert len(calls) == layers * (len(QUESTIONS) if per_question else 1)


def test_query_agnostic_reuse_equals_a_fresh_prefill_per_question(
    llama_adapter: ModelAdapterHF,
) -> None:
    adapter = llama_adapter
    adapter.set_sparse_attention_config(
        ResearchAttentionConfig([SnapKVConfig(0.6, window_size=8), QuestConfig(8, page_size=4)])
    )
    request = Request(long_context(3), QUESTIONS)
    reused = adapter.process_request(request, {"max_new_tokens": 4}).responses
    adapter.reuse_context_cache = False
    fresh = adapter.process_request(request, {"max_new_tokens": 4}).responses
    assert reused == fresh
