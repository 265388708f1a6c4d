"""The sparse prefill inside the models: a full BlockMask gives each tiny architecture's own
prefill logits; a sparse one changes them and the questions still run."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.adapters.hf_attention import SparseAttentionSwitch
from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.prefill import engine
from sparse_attention_hub.testing import ARCHS, make_tiny_model

WINDOW = 8
SEQ = 27  # not a multiple of the block size
FULL = {"maskers": [], "prefill_maskers": [{"block_top_k": {"block_budget": 1.0}}]}


@pytest.fixture(autouse=True)
def _eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine.EAGER_ENV, "1")


@pytest.mark.parametrize("arch", ARCHS)
def test_a_full_block_mask_gives_the_models_own_prefill(arch: str, tmp_path: Any) -> None:
    window = None if arch == "llama" else WINDOW
    path = make_tiny_model(tmp_path / "m", arch=arch, num_key_value_heads=2, sliding_window=window)
    model = AutoModelForCausalLM.from_pretrained(
        path, attn_implementation="eager", dtype=torch.float32
    )
    model.eval()
    ids = torch.randint(10, 300, (1, SEQ), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(input_ids=ids).logits
    config = ResearchAttentionConfig.from_dict({**FULL, "prefill_block_size": 4})
    switch = SparseAttentionSwitch(model, ResearchAttention.create_from_config(config))
    switch.query_start = 0
    with torch.no_grad(), switch.prefill():
        ours = model(input_ids=ids).logits
    assert model.config._attn_implementation == "eager"  # restored
    torch.testing.assert_close(ours, eager, rtol=1e-5, atol=2e-5)
    sparse = {"maskers": [], "prefill_maskers": [{"block_top_k": {"block_budget": 1}}]}
    switch.research_attention = ResearchAttention.create_from_config(
        ResearchAttentionConfig.from_dict({**sparse, "prefill_block_size": 4})
    )
    with torch.no_grad(), switch.prefill():
        assert (model(input_ids=ids).logits - eager).abs().max() > 1e-4  # the path is used


def test_a_padded_batch_is_refused_before_any_attention(tmp_path: Any) -> None:
    """Padding keys would be attended (the prefill reads no mask): a clear error instead; an
    all-ones mask (two rows of one length) runs."""
    path = make_tiny_model(tmp_path / "m", arch="llama", num_key_value_heads=2)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    config = ResearchAttentionConfig.from_dict({**FULL, "prefill_block_size": 4})
    research = ResearchAttention.create_from_config(config)
    switch = SparseAttentionSwitch(model, research)
    switch.query_start = 0
    ids = torch.randint(10, 300, (2, 12), generator=torch.Generator().manual_seed(2))
    padded = torch.ones(2, 12, dtype=torch.long)
    padded[1, :3] = 0  # the second row left-padded
    with torch.no_grad(), switch.prefill():
        with pytest.raises(ValueError, match=r"padded .*shape \(2, 12\).*batch 1"):
            model(input_ids=ids, attention_mask=padded)
        model(input_ids=ids, attention_mask=torch.ones_like(padded))


def _prefill_logits(adapter: ModelAdapterHF, ids: list[int]) -> torch.Tensor:
    context = adapter.new_context()
    with torch.inference_mode(), adapter._observing():
        return adapter.forward(ids, context.cache)[-1]


def test_a_sparse_prefill_changes_the_logits_and_questions_still_run(
    tiny_gqa_model_dir: str,
) -> None:
    adapter = ModelAdapterHF(tiny_gqa_model_dir, device="cpu")
    context = " ".join(f"Item {i}: key {i * 7 % 13} holds {i * 31 % 97}." for i in range(12))
    ids = adapter.tokenizer(context)["input_ids"]
    dense = _prefill_logits(adapter, ids)
    adapter.set_sparse_attention_config(
        {"maskers": [], "dense_layers": [0], **FULL, "prefill_block_size": 16}
    )
    full = _prefill_logits(adapter, ids)
    torch.testing.assert_close(full, dense, rtol=1e-4, atol=1e-4)
    sparse_config = {
        "maskers": [{"sink": {"sink_size": 4}}, {"local": {"window_size": 16}}],
        "prefill_maskers": [{"sink": {"sink_size": 4}}, {"local": {"window_size": 16}}],
        "prefill_block_size": 16,
    }
    adapter.set_sparse_attention_config(sparse_config)
    sparse = _prefill_logits(adapter, ids)
    assert (sparse - dense).abs().max() > 1e-3
    response = adapter.process_request(
        Request(context, ["Which key?", "Why?"]), {"max_new_tokens": 3}
    )
    assert len(response.responses) == 2
    assert all(m["generated_tokens"] >= 1 for m in response.metadata)
    assert adapter.model.config._attn_implementation == "sdpa"
