"""Every tiny architecture: the research path is exactly the model's own eager attention.

Gemma-2 soft-caps its logits and alternates sliding layers, GPT-OSS adds per-head sink logits
on sliding layers, Qwen/Mistral/Phi-3 have sliding windows: with an empty masker list, and with
full-budget configs (sink + local covering every key; top-k with k >= K), the logits (fp32,
1e-5) and the greedy tokens equal those of ``attn_implementation="eager"``.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.adapters.hf_attention import SparseAttentionSwitch
from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    OracleTopKConfig,
    SinkMaskerConfig,
)
from sparse_attention_hub.testing import ARCHS, make_tiny_model

WINDOW = 8  # smaller than the prompts: sliding layers really slide
SEQ = 24
GEN = {"max_new_tokens": 6}
CONFIGS = {
    "empty": ResearchAttentionConfig([]),
    "sink_local": ResearchAttentionConfig(
        [SinkMaskerConfig(sink_size=2), LocalMaskerConfig(window_size=4096)]
    ),
    "topk_all": ResearchAttentionConfig([OracleTopKConfig(heavy_size=4096)]),
}


@pytest.fixture(scope="module", params=ARCHS)
def arch_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    arch = request.param
    window = None if arch == "llama" else WINDOW
    path = make_tiny_model(
        tmp_path_factory.mktemp(arch) / "m", arch=arch, num_key_value_heads=2, sliding_window=window
    )
    return arch, path


def _eager_logits(path: str, ids: torch.Tensor) -> tuple[Any, torch.Tensor]:
    model = AutoModelForCausalLM.from_pretrained(
        path, attn_implementation="eager", dtype=torch.float32
    )
    model.eval()
    with torch.no_grad():
        return model, model(input_ids=ids).logits


@pytest.mark.parametrize("config_name", list(CONFIGS))
def test_research_logits_equal_eager(arch_model: Any, config_name: str) -> None:
    arch, path = arch_model
    ids = torch.randint(10, 300, (1, SEQ), generator=torch.Generator().manual_seed(1))
    model, eager = _eager_logits(path, ids)
    research = ResearchAttention.create_from_config(CONFIGS[config_name])
    switch = SparseAttentionSwitch(model, research)
    switch.query_start = 0
    with torch.no_grad(), switch.enable():
        ours = model(input_ids=ids).logits
    assert switch.calls == model.config.num_hidden_layers
    assert model.config._attn_implementation == "eager"
    # fp32 noise of a different summation order: 1e-5 relative, 2e-5 absolute (phi3 reaches
    # 1.3e-5 on one of 22k logits)
    torch.testing.assert_close(ours, eager, rtol=1e-5, atol=2e-5)
    if arch == "gemma2" and config_name == "empty":
        _check_softcap_matters(model, ids, eager)


def _check_softcap_matters(model: Any, ids: torch.Tensor, eager: torch.Tensor) -> None:
    """Gemma-2's cap changes its logits, so the parity above really covers softcap."""
    for layer in model.model.layers:
        layer.self_attn.attn_logit_softcapping = None
    with torch.no_grad():
        uncapped = model(input_ids=ids).logits
    assert (uncapped - eager).abs().max() > 1e-3


def test_research_tokens_equal_eager(arch_model: Any) -> None:
    arch, path = arch_model
    adapter = ModelAdapterHF(path, model_kwargs={"attn_implementation": "eager"}, device="cpu")
    req = Request("The magic number is 4217. The meeting took place in the library.\n", "Number?")
    dense = adapter.process_request(req, GEN)
    assert dense.metadata[0]["context_tokens"] > WINDOW
    for name, config in CONFIGS.items():
        adapter.set_sparse_attention_config(config)
        assert adapter.process_request(req, GEN).responses == dense.responses, (arch, name)
