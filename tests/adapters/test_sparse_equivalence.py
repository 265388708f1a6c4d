"""Sparse mode on real tiny models: same tokens as dense when it should, different when not."""

from __future__ import annotations

from typing import Any

import pytest

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import LocalMaskerConfig, SinkMaskerConfig

from .conftest import CONTEXT, QUESTIONS, long_context, small_window

GEN = {"max_new_tokens": 10}


def _ids(adapter: ModelAdapterHF, responses: Any) -> list[list[int]]:
    texts = [responses] if isinstance(responses, str) else responses
    return [adapter.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


@pytest.mark.parametrize("name", ["llama_adapter", "qwen_adapter"])
def test_empty_config_gives_dense_tokens(name: str, request: pytest.FixtureRequest) -> None:
    adapter: ModelAdapterHF = request.getfixturevalue(name)
    req = Request(CONTEXT, QUESTIONS[:2])
    dense = adapter.process_request(req, GEN)
    adapter.set_sparse_attention_config(ResearchAttentionConfig([]))
    calls_before = adapter._switch.calls
    sparse = adapter.process_request(req, GEN)
    assert adapter._switch.calls > calls_before  # the research path really ran
    assert sparse.responses == dense.responses
    assert [m["generated_tokens"] for m in sparse.metadata] == [10, 10]


@pytest.mark.parametrize("name", ["llama_adapter", "qwen_adapter"])
def test_window_covering_prompt_gives_dense_tokens(
    name: str, request: pytest.FixtureRequest
) -> None:
    adapter: ModelAdapterHF = request.getfixturevalue(name)
    req = Request(CONTEXT, QUESTIONS[0])
    dense = adapter.process_request(req, GEN)
    adapter.set_sparse_attention_config(
        ResearchAttentionConfig([SinkMaskerConfig(sink_size=4), LocalMaskerConfig(window_size=512)])
    )
    assert adapter.process_request(req, GEN).responses == dense.responses


def test_small_window_changes_output_on_long_prompt(llama_adapter: ModelAdapterHF) -> None:
    req = Request(long_context(24), "What is the value of key 3?")
    dense = llama_adapter.process_request(req, GEN)
    assert dense.metadata[0]["context_tokens"] > 300
    llama_adapter.set_sparse_attention_config(small_window())
    sparse = llama_adapter.process_request(req, GEN)
    assert _ids(llama_adapter, sparse.responses) != _ids(llama_adapter, dense.responses)


def test_research_attention_calls_per_token_equal_layers(
    llama_adapter: ModelAdapterHF, monkeypatch: pytest.MonkeyPatch
) -> None:
    llama_adapter.set_sparse_attention_config(small_window())
    research = llama_adapter.research_attention
    seen: list[tuple[int, Any]] = []  # (layer_idx, the masker states of the call)
    real = research.custom_attention

    def spy(module: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((module.layer_idx, research.states))
        return real(module, *args, **kwargs)

    monkeypatch.setattr(research, "custom_attention", spy)
    out = llama_adapter.process_request(Request(CONTEXT, QUESTIONS[:2]), {"max_new_tokens": 6})
    layers = llama_adapter.model.config.num_hidden_layers
    generated = sum(m["generated_tokens"] for m in out.metadata)
    assert generated == 12  # no EOS from this prompt: one forward per generated token
    assert len(seen) == layers * generated
    assert {layer for layer, _ in seen} == set(range(layers))
    # One set of masker states per request (it follows the KV cache), shared by its questions.
    first = seen[0][1]
    assert all(states is first for _, states in seen)
    llama_adapter.process_request(Request(CONTEXT, QUESTIONS[0]), {"max_new_tokens": 2})
    assert seen[-1][1] is not first


def test_dense_config_never_calls_research_attention(llama_adapter: ModelAdapterHF) -> None:
    before = llama_adapter._switch.calls
    llama_adapter.process_request(Request(CONTEXT, QUESTIONS[0]), {"max_new_tokens": 3})
    assert llama_adapter._switch.calls == before
    assert llama_adapter.research_attention is None


@pytest.mark.parametrize("arch", ["mistral", "qwen3"])
def test_other_architectures(arch: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from sparse_attention_hub.testing import make_tiny_model

    path = make_tiny_model(tmp_path_factory.mktemp(arch) / "m", arch=arch, num_key_value_heads=2)
    adapter = ModelAdapterHF(path, device="cpu")
    req = Request(CONTEXT, QUESTIONS[:2])
    dense = adapter.process_request(req, GEN)
    adapter.set_sparse_attention_config(ResearchAttentionConfig([]))
    assert adapter.process_request(req, GEN).responses == dense.responses
    adapter.set_sparse_attention_config(small_window())
    fresh = [adapter.process_request(Request(CONTEXT, q), GEN).responses for q in QUESTIONS[:2]]
    assert adapter.process_request(req, GEN).responses == fresh
