"""The ``magicpig`` recipe's dense split, as the official code's (Infini-AI-Lab/MagicPIG v0.2,
``select_kv_cache``): the 4 sink keys, the last 64 keys of the prompt [P - 64, P) and every key
after the prompt are attended; only [4, P - 64) is sampled. The prompt is the context and the
question (the keys of a layer's first call); the window does not slide with the query."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    ResearchAttention,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.maskers import create_masker
from tests.support.tensors import random_qkv as qkv

SINK, WINDOW = 4, 64
#: Few bits and tables, so that many middle keys are sampled; with D = 64 random vectors the
#: inclusion probability stays far below 1, so p == 1 means attended densely.
LSH = {"lsh_k": 3, "lsh_l": 12}


def recipe_attention() -> ResearchAttention:
    config = ResearchAttentionConfig.from_recipe("magicpig", dense_layers=[], **LSH)
    return ResearchAttention([create_masker(c) for c in config.masker_configs])


def calls(context: int, question: int, generated: int) -> Iterator[AttentionInputs]:
    """The adapter's calls of one layer: the question rows over the prompt (causal), then one
    call per generated token over every key up to its own."""
    prompt = context + question
    q, k, v = qkv(4, 2, question + generated, prompt + generated, d=64, seed=11)
    rows = torch.arange(context, prompt).unsqueeze(-1)  # (Q, 1)
    causal = torch.arange(prompt) <= rows  # (Q, P)
    yield AttentionInputs(
        q[:, :, :question], k[:, :, :prompt], v[:, :, :prompt], causal, layer_idx=1
    )
    for j in range(generated):
        n, row = prompt + j + 1, question + j
        yield AttentionInputs(q[:, :, row : row + 1], k[:, :, :n], v[:, :, :n], layer_idx=1)


def expected_dense(prompt: int, position: int, n_keys: int) -> torch.Tensor:
    """(K,) bool: the sink, the prompt's window and every later key, up to ``position``."""
    key = torch.arange(n_keys)
    return ((key < SINK) | (key >= prompt - WINDOW)) & (key <= position)


@pytest.mark.parametrize("question", [8, 90])
def test_decode_steps_attend_the_prompt_window_and_every_generated_key(question):
    """At the first decode step exactly [P - 64, P) and the query's own key (plus the sink)
    are dense; after j generated tokens the window still starts at P - 64 and covers every
    generated key; [4, P - 64) is sampled, question keys in it included (question = 90)."""
    context, generated = 200, 6
    prompt = context + question
    attention = recipe_attention()
    sampled = torch.zeros(prompt + generated, dtype=torch.bool)
    steps = calls(context, question, generated)
    attention.build_mask(next(steps))  # the question call
    for j, inputs in enumerate(steps):
        probs = attention.build_mask(inputs).to_dense()[0, :, 0]  # (H, K)
        position = prompt + j
        want = expected_dense(prompt, position, position + 1)
        assert torch.equal(probs == 1, want.expand_as(probs)), (j, (probs == 1) ^ want)
        middle = (probs > 0) & (probs < 1)  # (H, K)
        assert not middle[:, want].any()
        sampled[: position + 1] |= middle.any(0)
    assert sampled[SINK : prompt - WINDOW].any()
    assert not sampled[:SINK].any() and not sampled[prompt - WINDOW :].any()


def test_question_rows_attend_the_sink_and_the_window_up_to_their_position():
    """The question call (the rows the official code prefills densely) runs under the same
    split: row i attends densely the sink and [P - 64, C + i], causally."""
    context, question = 200, 90
    prompt = context + question
    inputs = next(calls(context, question, 0))
    probs = recipe_attention().build_mask(inputs).to_dense()[0]  # (H, Q, P)
    for row in range(question):
        want = expected_dense(prompt, context + row, prompt)
        assert torch.equal(probs[:, row] == 1, want.expand(probs.shape[0], -1)), row


def test_the_adapter_prompt_is_the_context_and_the_question(tiny_model_dir):
    """On a real tiny model through the adapter: the question call's keys are the whole
    prompt P (context + question), every decode step attends [P - 64, P) and every
    generated key in every head, and samples only in [4, P - 64)."""
    adapter = ModelAdapterHF(tiny_model_dir, device="cpu")
    config = ResearchAttentionConfig.from_recipe("magicpig", dense_layers=[0], **LSH)
    adapter.set_sparse_attention_config(config)
    context = " ".join(f"Item {i}: key {i * 7 % 13} holds {i * 31 % 97}." for i in range(25))
    with adapter.research_attention.record_masks() as masks:
        out = adapter.process_request(
            Request(context, "Which key holds 40?"), {"max_new_tokens": 4}
        )
    meta = out.metadata[0]
    prompt = meta["context_tokens"] + meta["question_tokens"]
    assert prompt > SINK + WINDOW + 50
    sparse = [(layer, m.to_dense()) for layer, m in masks if layer != 0]
    question_calls = [p for _, p in sparse if p.shape[2] > 1]
    assert question_calls and all(p.shape[3] == prompt for p in question_calls)
    decode = [p[0, :, 0] for _, p in sparse if p.shape[2] == 1]  # (H, K) each
    assert decode and {p.shape[1] for p in decode} <= set(range(prompt + 1, prompt + 4))
    for probs in decode:
        window = expected_dense(prompt, probs.shape[1] - 1, probs.shape[1])
        assert bool((probs[:, window] == 1).all())
        middle = (probs > 0) & (probs < 1)
        assert not middle[:, window].any() and middle[:, SINK : prompt - WINDOW].any()
