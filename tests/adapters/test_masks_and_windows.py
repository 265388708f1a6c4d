"""What the research attention receives inside a real model: masks for the question tokens and
for decode, sliding-window layers, low precision, tokenizers without template or pad token."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.adapters.context_cache import ContextCache
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    OracleTopKConfig,
    RandomSamplingMaskerConfig,
    SinkMaskerConfig,
)
from sparse_attention_hub.testing import make_tiny_model

from .conftest import CONTEXT, QUESTIONS, small_window

WINDOW = 8  # far smaller than the ~40-token prompts below


def _spy(adapter: ModelAdapterHF, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record (layer, Q, K, attention mask, output dtype) of every research-attention call."""
    research = adapter.research_attention
    real = research.custom_attention
    seen: list[dict[str, Any]] = []

    def spy(module: Any, query: torch.Tensor, key: torch.Tensor, *args: Any, **kw: Any) -> Any:
        out, weights = real(module, query, key, *args, **kw)
        mask = args[1]  # (value, attention_mask, ...)
        seen.append(
            {
                "layer": module.layer_idx,
                "q": query.shape[2],
                "k": key.shape[2],
                "mask": None if mask is None else mask.clone(),
                "out": out,
            }
        )
        return out, weights

    monkeypatch.setattr(research, "custom_attention", spy)
    return seen


def _expected(total: int, q: int, k: int, window: int | None) -> torch.Tensor:
    """(Q, K) bool: the last Q of ``total`` tokens against the last K keys, causal, and within
    ``window`` (kv > q - window, as transformers' sliding_window_overlay) when given."""
    query = torch.arange(total - q, total).unsqueeze(-1)  # (Q, 1) absolute positions
    key = torch.arange(total - k, total)  # (K,)
    allowed = key <= query
    if window is not None:
        allowed &= key > query - window
    return allowed


def _check_masks(
    seen: list[dict[str, Any]], layers: int, prompt: int, sliding: set[int], window: int | None
) -> None:
    """Every call's mask is the causal (or sliding) mask of its position in the sequence."""
    assert len(seen) % layers == 0 and seen[0]["q"] > 1  # the question tokens come first
    total = prompt
    for step in range(len(seen) // layers):
        for call in seen[step * layers : (step + 1) * layers]:
            q, k, mask = call["q"], call["k"], call["mask"]
            assert q == (seen[0]["q"] if step == 0 else 1)
            assert mask is not None and mask.dtype == torch.bool
            expected = _expected(total, q, k, window if call["layer"] in sliding else None)
            assert torch.equal(mask.expand(1, 1, q, k)[0, 0], expected), (step, call["layer"])
        total += 1


@pytest.mark.parametrize("name", ["llama_adapter", "qwen_adapter"])
def test_masks_for_question_tokens_and_decode_are_causal(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter: ModelAdapterHF = request.getfixturevalue(name)
    adapter.set_sparse_attention_config(small_window())
    seen = _spy(adapter, monkeypatch)
    out = adapter.process_request(Request(CONTEXT, QUESTIONS[1]), {"max_new_tokens": 3})
    meta = out.metadata[0]
    layers = adapter.model.config.num_hidden_layers
    assert seen[0]["q"] == meta["question_tokens"] > 1
    assert len(seen) == layers * meta["generated_tokens"]
    prompt = meta["context_tokens"] + meta["question_tokens"]
    _check_masks(seen, layers, prompt, sliding=set(), window=None)


@pytest.fixture(scope="module", params=["mistral", "qwen2"])
def sliding_adapter(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelAdapterHF]:
    """A tiny model with sliding-window layers (all of Mistral's, Qwen2's second layer)."""
    arch = request.param
    path = make_tiny_model(
        tmp_path_factory.mktemp(f"{arch}_sliding") / "m",
        arch=arch,
        num_key_value_heads=2,
        sliding_window=WINDOW,
    )
    adapter = ModelAdapterHF(path, device="cpu")
    yield adapter
    adapter.set_sparse_attention_config(None)


def _sliding_layers(adapter: ModelAdapterHF) -> set[int]:
    config = adapter.model.config
    types = getattr(config, "layer_types", None)
    if not types:  # Mistral: every layer slides
        types = ["sliding_attention"] * config.num_hidden_layers
    return {i for i, kind in enumerate(types) if kind == "sliding_attention"}


def test_sliding_window_models_dense_equivalence_and_masks(
    sliding_adapter: ModelAdapterHF, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = sliding_adapter
    assert adapter.model.config.sliding_window == WINDOW and _sliding_layers(adapter)
    req = Request(CONTEXT, QUESTIONS[:2])
    gen = {"max_new_tokens": 6}
    adapter.set_sparse_attention_config(None)
    dense = adapter.process_request(req, gen)
    assert dense.metadata[0]["context_tokens"] > 2 * WINDOW
    adapter.set_sparse_attention_config(ResearchAttentionConfig([]))
    seen = _spy(adapter, monkeypatch)
    sparse = adapter.process_request(req, gen)
    assert sparse.responses == dense.responses
    layers = adapter.model.config.num_hidden_layers
    first = seen[: layers * sparse.metadata[0]["generated_tokens"]]
    meta = sparse.metadata[0]
    prompt = meta["context_tokens"] + meta["question_tokens"]
    _check_masks(first, layers, prompt, _sliding_layers(adapter), WINDOW)


def test_sliding_window_models_kv_reuse_equals_fresh_prefill(
    sliding_adapter: ModelAdapterHF,
) -> None:
    adapter = sliding_adapter
    adapter.set_sparse_attention_config(small_window())
    gen = {"max_new_tokens": 5}
    fresh = [adapter.process_request(Request(CONTEXT, q), gen).responses for q in QUESTIONS]
    reused = adapter.process_request(Request(CONTEXT, QUESTIONS), gen)
    assert reused.responses == fresh
    prefills = [m["prefill_tokens"] for m in reused.metadata]
    assert prefills[0] > 2 * WINDOW and prefills[1:] == [0, 0]  # one prefill per context


def test_context_cache_rolls_sliding_layers_back_or_resets(
    sliding_adapter: ModelAdapterHF,
) -> None:
    model = sliding_adapter.model
    ids = sliding_adapter.tokenizer(CONTEXT)["input_ids"]
    question = sliding_adapter.tokenizer(QUESTIONS[0], add_special_tokens=False)["input_ids"]
    assert len(ids) > 2 * WINDOW

    def run(tokens: list[int], cache: Any) -> torch.Tensor:
        with torch.inference_mode():
            return model(input_ids=torch.tensor([tokens]), cache=cache).logits[0, -1]

    expected = run(ids + question, ContextCache(model.config).cache)
    context = ContextCache(model.config)
    assert context.rollback(ids) == 0
    run(ids, context.cache)
    context.prefilled(ids, 0)
    for _ in range(2):  # question + a generated token, then back to the context
        run(question, context.cache)
        run(question[:1], context.cache)
        assert context.rollback(ids) == len(ids) == context.cache.get_seq_length()
        torch.testing.assert_close(run(question, context.cache), expected, atol=1e-5, rtol=0)
        assert context.rollback(ids) == len(ids)
    # Below the point its windows were cut at, a sliding cache cannot roll back: it resets.
    assert context.rollback(ids[: WINDOW // 2]) == 0 == context.cache.get_seq_length()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_models_run_every_masker_finitely(
    tiny_gqa_model_dir: str, dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ResearchAttentionConfig(
        [
            SinkMaskerConfig(2),
            LocalMaskerConfig(4),
            OracleTopKConfig(0.2),
            RandomSamplingMaskerConfig(0.3),
        ]
    )
    adapter = ModelAdapterHF(
        tiny_gqa_model_dir, config, model_kwargs={"dtype": dtype}, device="cpu"
    )
    seen = _spy(adapter, monkeypatch)
    out = adapter.process_request(Request(CONTEXT, QUESTIONS[:2]), {"max_new_tokens": 3})
    assert all(isinstance(r, str) for r in out.responses) and seen
    for call in seen:
        assert call["out"].dtype == getattr(torch, dtype)
        assert torch.isfinite(call["out"]).all()


def _strip_tokenizer(source: str, target: Path, drop: tuple[str, ...]) -> str:
    """A copy of a tiny model whose tokenizer lacks the chat template and the ``drop`` tokens."""
    shutil.copytree(source, target)
    (target / "chat_template.jinja").unlink(missing_ok=True)
    config_path = target / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("chat_template", None)
    for key in drop:
        config.pop(key, None)
    config_path.write_text(json.dumps(config))
    return str(target)


@pytest.mark.parametrize(
    "drop", [("pad_token",), ("pad_token", "eos_token")], ids=["no-pad", "no-pad-no-eos"]
)
def test_tokenizer_without_template_or_pad_token(
    tiny_model_dir: str, tmp_path: Path, drop: tuple[str, ...], fed_ids: Any
) -> None:
    path = _strip_tokenizer(tiny_model_dir, tmp_path / "m", drop)
    adapter = ModelAdapterHF(path, small_window(), device="cpu")
    tok = adapter.tokenizer
    assert not tok.chat_template
    if "eos_token" in drop:
        assert tok.eos_token is None and tok.pad_token is None
    else:
        assert tok.pad_token == tok.eos_token is not None
    calls = fed_ids(adapter)
    out = adapter.process_request(
        Request(CONTEXT, QUESTIONS[0]), {"max_new_tokens": 3}, {"apply_chat_template": True}
    )
    assert calls[0] + calls[1] == tok(CONTEXT + QUESTIONS[0])["input_ids"]  # plain prompt
    assert out.metadata[0]["generated_tokens"] >= 1
