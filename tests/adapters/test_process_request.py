"""process_request: KV reuse, exact prompt tokens, truncation, sampling, metadata, logging."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.metric_logging import MicroMetricLogger, load_micro_metrics
from sparse_attention_hub.sparse_attention import DENSITY_METRIC

from .conftest import CONTEXT, QUESTIONS, long_context, small_window

Spy = Callable[[ModelAdapterHF], list[list[int]]]


def test_kv_reuse_equals_fresh_prefill_per_question(llama_adapter: ModelAdapterHF) -> None:
    llama_adapter.set_sparse_attention_config(small_window())
    context = long_context(6)
    gen = {"max_new_tokens": 8}
    reused = llama_adapter.process_request(Request(context, QUESTIONS, "Answer:"), gen)
    fresh = [
        llama_adapter.process_request(Request(context, q, "Answer:"), gen).responses
        for q in QUESTIONS
    ]
    assert reused.responses == fresh
    llama_adapter.reuse_context_cache = False
    again = llama_adapter.process_request(Request(context, QUESTIONS, "Answer:"), gen)
    assert again.responses == reused.responses
    # With reuse only the first question prefills the context.
    prefills = [m["prefill_tokens"] for m in reused.metadata]
    assert prefills[0] == reused.metadata[0]["context_tokens"] > 100
    assert prefills[1:] == [0, 0]
    assert [m["prefill_tokens"] for m in again.metadata] == [prefills[0]] * 3


def test_chat_template_tokens_are_exactly_the_templated_prompt(
    llama_adapter: ModelAdapterHF, fed_ids: Spy
) -> None:
    tok = llama_adapter.tokenizer
    calls = fed_ids(llama_adapter)
    prefix = "The answer is"
    out = llama_adapter.process_request(
        Request(CONTEXT, QUESTIONS[:2], prefix), {"max_new_tokens": 2}
    )
    for i, question in enumerate(QUESTIONS[:2]):
        messages = [{"role": "user", "content": CONTEXT + question}]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        expected = tok(text + prefix, add_special_tokens=False)["input_ids"]
        assert tok(text, add_special_tokens=False)["input_ids"] == list(
            tok.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]
        )
        meta = out.metadata[i]
        assert meta["context_tokens"] + meta["question_tokens"] == len(expected)
        assert expected.count(tok.bos_token_id) == 1 and expected[0] == tok.bos_token_id
        context_part = expected[: meta["context_tokens"]]
        # Question 0 feeds context then question; question 1 reuses the cached context.
        fed = calls[0] + calls[1] if i == 0 else context_part + calls[3]
        assert fed == expected
    assert calls[0] == expected[: out.metadata[1]["context_tokens"]]


def test_plain_prompt_without_template(llama_adapter: ModelAdapterHF, fed_ids: Spy) -> None:
    tok = llama_adapter.tokenizer
    calls = fed_ids(llama_adapter)
    llama_adapter.process_request(
        Request(CONTEXT, QUESTIONS[0], " A:"), {"max_new_tokens": 1}, {"apply_chat_template": False}
    )
    expected = tok(CONTEXT + QUESTIONS[0] + " A:")["input_ids"]
    assert calls[0] + calls[1] == expected
    assert expected.count(tok.bos_token_id) == 1


def test_truncation_policies(llama_adapter: ModelAdapterHF, fed_ids: Spy) -> None:
    tok = llama_adapter.tokenizer
    context = "BEGIN " + long_context(10) + " FINISH"
    full = len(tok(context, add_special_tokens=False)["input_ids"])
    kept_text = {}
    for policy in ("middle", "left", "right"):
        calls = fed_ids(llama_adapter)
        out = llama_adapter.process_request(
            Request(context, "Q?"),
            {"max_new_tokens": 1},
            {"max_context_length": 40, "truncation": policy, "apply_chat_template": False},
        )
        meta = out.metadata[0]
        assert meta["truncated_tokens"] == full - 40
        assert 35 <= meta["context_tokens"] <= 45  # ~40 after decode/re-encode, plus BOS
        assert meta["question_tokens"] >= 2  # the question is never truncated
        kept_text[policy] = tok.decode(calls[0])
    assert "BEGIN" in kept_text["middle"] and "FINISH" in kept_text["middle"]
    assert "BEGIN" not in kept_text["left"] and "FINISH" in kept_text["left"]
    assert "BEGIN" in kept_text["right"] and "FINISH" not in kept_text["right"]
    short = llama_adapter.process_request(
        Request(CONTEXT, "Q?"), {"max_new_tokens": 1}, {"max_context_length": 10_000}
    )
    assert short.metadata[0]["truncated_tokens"] == 0


def test_callers_dicts_unchanged_and_single_question_gives_str(
    llama_adapter: ModelAdapterHF,
) -> None:
    gen = {"max_new_tokens": 3, "do_sample": True, "seed": 1, "top_k": 5, "top_p": 0.9}
    req_kwargs = {"max_context_length": 30, "truncation": "left", "request_index": 4}
    gen_copy, req_copy = copy.deepcopy(gen), copy.deepcopy(req_kwargs)
    out = llama_adapter.process_request(Request(CONTEXT, "Who?"), gen, req_kwargs)
    assert gen == gen_copy and req_kwargs == req_copy
    assert isinstance(out.responses, str)
    assert set(out.metadata[0]) >= {
        "context_tokens",
        "truncated_tokens",
        "question_tokens",
        "generated_tokens",
        "prefill_seconds",
        "decode_seconds",
    }
    assert out.metadata[0]["prefill_seconds"] > 0 and out.metadata[0]["decode_seconds"] >= 0


def test_seeded_sampling_is_reproducible(llama_adapter: ModelAdapterHF) -> None:
    req = Request(CONTEXT, QUESTIONS[:2])

    def run(seed: int, **extra: object) -> object:
        gen = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.5, "seed": seed, **extra}
        return llama_adapter.process_request(req, gen).responses

    assert run(3) == run(3)
    assert run(3) != run(4)
    greedy = llama_adapter.process_request(req, {"max_new_tokens": 8}).responses
    assert run(5, top_k=1) == greedy


def test_logger_context_carries_request_and_question_index(
    llama_adapter: ModelAdapterHF, tmp_path: Path
) -> None:
    metric_logger = MicroMetricLogger()
    registry = MicroMetricLogger.get_registered_metrics()
    metric_logger.set_context(run_tag="outer")
    try:
        metric_logger.configure_logging(tmp_path, enabled_metrics=[DENSITY_METRIC])
        llama_adapter.set_sparse_attention_config(small_window())
        llama_adapter.process_request(
            Request(CONTEXT, QUESTIONS[:2]), {"max_new_tokens": 2}, {"request_index": 7}
        )
        assert metric_logger.get_context() == {"run_tag": "outer"}
        metric_logger.flush()
        frame = load_micro_metrics(tmp_path)
    finally:
        MicroMetricLogger._reset_for_tests(registry=registry)
    layers = llama_adapter.model.config.num_hidden_layers
    assert len(frame) == 2 * 2 * layers
    assert set(frame["request_index"]) == {7}
    assert sorted(set(frame["question_index"])) == [0, 1]
    assert set(frame["layer_idx"]) == set(range(layers))
    assert set(frame["run_tag"]) == {"outer"}


def test_describe_is_json(llama_adapter: ModelAdapterHF) -> None:
    llama_adapter.set_sparse_attention_config(small_window())
    info = json.loads(json.dumps(llama_adapter.describe()))
    assert info["sparse_attention_config"] == small_window().to_dict()
    assert info["dtype"] == "float32" and info["device"] == "cpu"
    llama_adapter.set_sparse_attention_config(None)
    assert llama_adapter.describe()["sparse_attention_config"] is None


def test_bpe_token_across_the_boundary(llama_adapter: ModelAdapterHF, fed_ids: Spy) -> None:
    """A word split between context and question is tokenized as in the full prompt; the
    cached context is rolled back only as far as the context parts differ."""
    tok = llama_adapter.tokenizer
    llama_adapter.set_sparse_attention_config(small_window())
    context, questions = "The value of the vari", ["able is", "ous things", "x"]
    calls = fed_ids(llama_adapter)
    gen = {"max_new_tokens": 3}
    reused = llama_adapter.process_request(Request(context, questions), gen)
    fresh, fed_fresh = [], []
    for question in questions:
        calls.clear()
        fresh.append(llama_adapter.process_request(Request(context, question), gen).responses)
        fed_fresh.append(calls[0] + calls[1])  # the context prefill, then the question
    assert reused.responses == fresh
    prefills = [m["prefill_tokens"] for m in reused.metadata]
    assert prefills[0] == reused.metadata[0]["context_tokens"]
    assert prefills[1] == reused.metadata[1]["context_tokens"] - prefills[0] > 0
    assert prefills[2] == 0
    # Every question's prompt reached the model exactly as the full templated prompt encodes.
    for i, question in enumerate(questions):
        text = tok.apply_chat_template(
            [{"role": "user", "content": context + question}],
            tokenize=False,
            add_generation_prompt=True,
        )
        assert fed_fresh[i] == tok(text, add_special_tokens=False)["input_ids"]


def test_generated_ids_per_question_are_in_the_metadata(llama_adapter: ModelAdapterHF) -> None:
    out = llama_adapter.process_request(Request(CONTEXT, QUESTIONS[:2]), {"max_new_tokens": 4})
    for answer, meta in zip(out.responses, out.metadata, strict=True):
        ids = meta["generated_ids"]
        assert len(ids) == meta["generated_tokens"] and all(isinstance(i, int) for i in ids)
        assert llama_adapter.tokenizer.decode(ids, skip_special_tokens=True) == answer
