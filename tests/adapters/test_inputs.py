"""Bad input gives clear errors; option parsing, truncation and sampling helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.adapters.generation import GenerationSettings, TokenSelector
from sparse_attention_hub.adapters.hf_loading import prepare_model_kwargs, resolve_device
from sparse_attention_hub.adapters.prompting import RequestOptions, truncate_ids

from .conftest import CONTEXT


def test_unknown_model_path_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        ModelAdapterHF(missing, device="cpu")
    with pytest.raises(OSError, match="not-a-real-org/not-a-real-model"):
        ModelAdapterHF("not-a-real-org/not-a-real-model", device="cpu")


def test_bad_requests(llama_adapter: ModelAdapterHF) -> None:
    with pytest.raises(ValueError, match="empty"):
        Request(CONTEXT, [])
    req = Request(CONTEXT, ["Q?"])
    req.questions = []
    with pytest.raises(ValueError, match="empty"):
        llama_adapter.process_request(req)
    good = Request(CONTEXT, "Q?")
    with pytest.raises(ValueError, match="max_context_length=0"):
        llama_adapter.process_request(good, {"max_new_tokens": 1}, {"max_context_length": 0})
    with pytest.raises(ValueError, match=r"truncation='top'.*middle.*left.*right"):
        llama_adapter.process_request(good, {"max_new_tokens": 1}, {"truncation": "top"})
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        llama_adapter.process_request(good, {"max_new_tokens": 0})
    with pytest.raises(TypeError, match="Request"):
        llama_adapter.process_request("just a string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ResearchAttentionConfig"):
        llama_adapter.set_sparse_attention_config(["sink"])
    with pytest.raises(ValueError, match="nope"):
        llama_adapter.set_sparse_attention_config({"maskers": [{"nope": {}}]})
    llama_adapter.set_sparse_attention_config({"maskers": [{"local": {"window_size": 8}}]})
    assert llama_adapter.describe()["sparse_attention_config"] == {
        "maskers": [{"local": {"window_size": 8}}]
    }


def test_option_validation() -> None:
    assert RequestOptions.from_kwargs(None) == RequestOptions()
    with pytest.raises(ValueError, match="max_context_length=-3"):
        RequestOptions(max_context_length=-3)
    with pytest.raises(ValueError, match="apply_chat_template='yes'"):
        RequestOptions(apply_chat_template="yes")  # type: ignore[arg-type]
    for bad in ({"temperature": -1.0}, {"top_p": 0.0}, {"top_k": -1}, {"seed": "x"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GenerationSettings.from_kwargs(bad)
    assert GenerationSettings.from_kwargs({"do_sample": True, "temperature": 0}).greedy


def test_truncate_ids_policies() -> None:
    ids = list(range(10))
    assert truncate_ids(ids, 4, "middle") == [0, 1, 8, 9]
    assert truncate_ids(ids, 5, "middle") == [0, 1, 2, 8, 9]
    assert truncate_ids(ids, 1, "middle") == [0]
    assert truncate_ids(ids, 4, "left") == [6, 7, 8, 9]
    assert truncate_ids(ids, 4, "right") == [0, 1, 2, 3]
    assert truncate_ids(ids, 20, "middle") == ids


def test_sampling_filters() -> None:
    logits = torch.tensor([0.0, 5.0, 4.9, -3.0])
    greedy = TokenSelector(GenerationSettings())
    assert greedy(logits) == 1
    top1 = TokenSelector(GenerationSettings(do_sample=True, top_k=1, seed=0))
    assert {top1(logits) for _ in range(20)} == {1}
    top2 = TokenSelector(GenerationSettings(do_sample=True, top_k=2, seed=0))
    assert {top2(logits) for _ in range(200)} == {1, 2}
    nucleus = TokenSelector(GenerationSettings(do_sample=True, top_p=0.3, seed=0))
    assert {nucleus(logits) for _ in range(50)} == {1}


def test_device_and_dtype_parsing() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device='gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:1")
    assert prepare_model_kwargs({"torch_dtype": "bfloat16"}) == {"dtype": torch.bfloat16}
    assert prepare_model_kwargs({"dtype": "torch.float16"}) == {"dtype": torch.float16}
    with pytest.raises(ValueError, match="dtype='float33'"):
        prepare_model_kwargs({"dtype": "float33"})


def test_bfloat16_model_and_trust_remote_code_only_if_passed(tiny_model_dir: str) -> None:
    adapter = ModelAdapterHF(tiny_model_dir, model_kwargs={"torch_dtype": "bfloat16"}, device="cpu")
    assert adapter.model.dtype == torch.bfloat16
    assert adapter.describe()["dtype"] == "bfloat16"
    assert "trust_remote_code" not in adapter.model_kwargs
    assert not adapter.model.training
    out = adapter.process_request(Request(CONTEXT, "Q?"), {"max_new_tokens": 2})
    assert out.metadata[0]["generated_tokens"] <= 2


def test_unknown_kwargs_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="sparse_attention_hub.adapters")
    for _ in range(3):
        options = RequestOptions.from_kwargs({"sah_test_only_key": 5, "truncation": "left"})
        settings = GenerationSettings.from_kwargs(
            {"sah_test_only_stop": ["x"], "max_new_tokens": 2}
        )
    assert options.truncation == "left" and settings.max_new_tokens == 2
    messages = [r.getMessage() for r in caplog.records]
    assert sum("sah_test_only_key" in m for m in messages) == 1
    assert sum("sah_test_only_stop" in m for m in messages) == 1


def test_empty_question_and_empty_context(llama_adapter: ModelAdapterHF) -> None:
    for context, question, template in (("", "Q?", False), (CONTEXT, "", False), ("", "", True)):
        out = llama_adapter.process_request(
            Request(context, [question]),
            {"max_new_tokens": 2},
            {"apply_chat_template": template},
        )
        meta = out.metadata[0]
        assert meta["question_tokens"] >= 1 and meta["context_tokens"] >= 1
