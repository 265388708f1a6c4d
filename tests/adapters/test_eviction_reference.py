"""KNorm and TOVA against kvpress's KnormPress and TOVAPress on the trained tiny model.

The reference is kvpress's flow, ported: the context runs densely (eager attention, so its
weights are returned), each layer's RoPE'd cache keys are scored by the press's ``score``
(KNorm: ``-||k||``; TOVA: the last query's attention on the keys before it, averaged over all
query heads, repeated per KV head, the last key padded with max + 1), the ``int(L * (1 - r))``
best per KV head are kept, the cache is pruned to them, and the question runs at the original
positions (``KVPressTextGenerationPipeline.generate_answer``). The maskers must keep a top-k set
of the same scores on every layer and KV head, and the question's logits must match.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import DynamicCache

from sparse_attention_hub.adapters import ModelAdapterHF
from sparse_attention_hub.adapters.prompting import RequestOptions, encode_request
from sparse_attention_hub.benchmarks.synthetic_ruler.generate import fit_sample
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import KNormConfig, TOVAConfig
from sparse_attention_hub.testing import trained_model_dir

RATIO = 0.5


@pytest.fixture(scope="module")
def trained() -> ModelAdapterHF:
    return ModelAdapterHF(trained_model_dir(), device="cpu")


@pytest.fixture(scope="module")
def niah_prompt(trained: ModelAdapterHF) -> tuple[list[int], list[int]]:
    """(context ids, question ids) of a synthetic RULER niah_single sample of 512 tokens."""
    sample = fit_sample(trained.tokenizer, "niah_single", 512, 7, 0.4)
    options = RequestOptions.from_kwargs({})
    encoded = encode_request(
        trained.tokenizer, sample.context, [sample.question], sample.answer_prefix, options
    )
    return encoded.prompts[0].context_ids, encoded.prompts[0].question_ids


def press_scores(name: str, keys: torch.Tensor, attentions: torch.Tensor) -> torch.Tensor:
    """kvpress's ``score`` of KnormPress / TOVAPress: (B, Hkv, L) from the cache keys
    (B, Hkv, L, D) and the layer's attention weights (B, H, L, L)."""
    if name == "knorm":
        return -keys.norm(dim=-1)
    weights = attentions[..., -1:, :-1].mean(1)  # (B, 1, L - 1)
    scores = weights.repeat(1, keys.shape[1], 1)  # (B, Hkv, L - 1)
    return F.pad(scores, (0, 1), value=scores.max().item() + 1)


def dense_prefill(adapter: ModelAdapterHF, ids: list[int]) -> tuple[DynamicCache, Any]:
    model = adapter.model
    model.config._attn_implementation = "eager"
    cache = DynamicCache()
    try:
        with torch.inference_mode():
            out = model(
                input_ids=torch.tensor([ids]), cache=cache, use_cache=True, output_attentions=True
            )
    finally:
        model.config._attn_implementation = "sdpa"
    return cache, out.attentions


def masker_decisions(
    adapter: ModelAdapterHF, config: Any, ids: list[int], question: list[int]
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each layer's (B, Hkv, L) kept context keys after the observed prefill, and the
    question's next-token logits (V,) under the eviction."""
    adapter.set_sparse_attention_config(ResearchAttentionConfig([config]))
    try:
        context = adapter.new_context()
        with torch.inference_mode():
            with adapter._observing():
                adapter.forward(ids, context.cache)[-1]
            research = adapter.research_attention
            assert research is not None
            masker = research.maskers[0]
            keeps = []
            for layer in range(adapter.model.config.num_hidden_layers):
                entry = research.states.entry(layer, masker)
                assert entry is not None and entry.value.keep is not None
                keeps.append(entry.value.keep[:, :, : len(ids)].clone())
            with adapter.enable_sparse_mode():
                logits = adapter._run_question(question, context.cache)
    finally:
        adapter.set_sparse_attention_config(None)
    return keeps, logits


def pruned_question_logits(
    adapter: ModelAdapterHF, cache: DynamicCache, keeps: list[torch.Tensor], question: list[int]
) -> torch.Tensor:
    """kvpress's flow after compression: the cache pruned to ``keeps``, the question at the
    original positions; its next-token logits (V,)."""
    length = keeps[0].shape[-1]
    for layer, keep in zip(cache.layers, keeps, strict=True):
        b, kv_heads = keep.shape[:2]
        index = keep.nonzero()[:, 2].view(b, kv_heads, -1)  # (B, Hkv, n) in position order
        index = index[..., None].expand(-1, -1, -1, layer.keys.shape[-1])
        layer.keys = layer.keys.gather(2, index).contiguous()
        layer.values = layer.values.gather(2, index).contiguous()
    positions = torch.arange(length, length + len(question))[None]
    with torch.inference_mode():
        out = adapter.model(
            input_ids=torch.tensor([question]), cache=cache, position_ids=positions, use_cache=True
        )
    return out.logits[0, -1]


@pytest.mark.parametrize(
    ("name", "config"), [("knorm", KNormConfig(RATIO)), ("tova", TOVAConfig(RATIO))]
)
def test_the_kept_keys_and_the_answer_logits_are_kvpress_s(
    trained: ModelAdapterHF, niah_prompt: tuple[list[int], list[int]], name: str, config: Any
) -> None:
    ids, question = niah_prompt
    keeps, logits = masker_decisions(trained, config, ids, question)
    cache, attentions = dense_prefill(trained, ids)
    n_kept = int(len(ids) * (1 - RATIO))
    for layer, keep in enumerate(keeps):
        scores = press_scores(name, cache.layers[layer].keys, attentions[layer]).float()
        assert torch.equal(keep.sum(-1), torch.full_like(keep.sum(-1), n_kept)), layer
        # a top-k set of kvpress's scores (ties, e.g. equal-norm keys of one token, either way)
        lowest_kept = scores.masked_fill(~keep, float("inf")).amin(-1)
        highest_evicted = scores.masked_fill(keep, float("-inf")).amax(-1)
        assert torch.all(lowest_kept >= highest_evicted - 1e-5), (name, layer)
        reference = torch.zeros_like(keep).scatter_(2, scores.topk(n_kept, dim=-1).indices, True)
        assert (keep ^ reference).sum() <= 4, (name, layer)  # at most two tied swaps
    reference_logits = pruned_question_logits(trained, cache, keeps, question)
    torch.testing.assert_close(logits, reference_logits, atol=2e-4, rtol=1e-4)
