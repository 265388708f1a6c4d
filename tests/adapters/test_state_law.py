"""The rollback law for every stateful masker: with state reuse and KV-cache rollback, answers
and masks equal those of a fresh prefill and fresh state for every question, and those of
fresh state when the contexts of a request's questions share only a prefix (partial rollback).

Parametrised over the registry (every registered stateful masker, through its configs in the
shared example list, or for a masker that reads an artefact made for one model, through
``ARTEFACT_EXAMPLES`` with the artefact written for the tiny model) plus the stateful test
masker of ``sparse_attention_hub.testing``, which is named by import path. Run on a Llama (full attention) and on a Mistral whose every layer
slides (the cache keeps only the last keys there, so key index != position).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.adapters.generation import GenerationSettings
from sparse_attention_hub.adapters.prompting import (
    EncodedPrompt,
    RequestOptions,
    common_prefix_length,
    encode_request,
)
from sparse_attention_hub.sparse_attention import MaskerStates, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    MaskerConfig,
    SinkMaskerConfig,
    masker_class,
    masker_config_from_dict,
)
from sparse_attention_hub.sparse_attention.maskers.examples import (
    ARTEFACT_EXAMPLES,
    ModelShape,
    example_masker_configs,
)
from sparse_attention_hub.testing import make_tiny_model

from .conftest import CONTEXT, QUESTIONS, long_context

TEST_MASKER = "tests.support.maskers:KeyMaxTopK"
GEN = {"max_new_tokens": 5}
WINDOW = 32  # the prompts are ~90 tokens; a question plus its answer fit in it

REGISTERED_STATEFUL = [c for c in example_masker_configs() if masker_class(c).is_stateful]


def stateful_configs() -> list[Any]:
    """Every registered stateful masker's example configs, then the test masker's."""
    return [*REGISTERED_STATEFUL, {TEST_MASKER: {"heavy_size": 3}}]


def _config(entry: Any) -> MaskerConfig:
    if isinstance(entry, MaskerConfig):
        return entry
    ((name, params),) = entry.items()
    return masker_config_from_dict(name, params)


@pytest.fixture(scope="module", params=["llama", "mistral_sliding"])
def law_adapter(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModelAdapterHF]:
    if request.param == "llama":
        path = request.getfixturevalue("tiny_model_dir")
    else:
        path = make_tiny_model(
            tmp_path_factory.mktemp("law_mistral") / "m",
            arch="mistral",
            num_key_value_heads=2,
            sliding_window=WINDOW,
        )
    adapter = ModelAdapterHF(path, device="cpu")
    yield adapter
    adapter.set_sparse_attention_config(None)


def _run(adapter: ModelAdapterHF, request: Request) -> tuple[list[list[int]], list[Any]]:
    """(generated ids per question, [(layer, dense mask)] of every attention call)."""
    with adapter.research_attention.record_masks() as masks:
        out = adapter.process_request(request, GEN)
    ids = [m["generated_ids"] for m in out.metadata]
    return ids, [(layer, mask.to_dense()) for layer, mask in masks]


def _law(adapter: ModelAdapterHF, context: str) -> tuple[list[list[int]], list[Any]]:
    """Run every question with reuse, then each fresh; assert both agree; return the reuse run."""
    reused_ids, reused_masks = _run(adapter, Request(context, QUESTIONS))
    fresh_ids: list[list[int]] = []
    fresh_masks: list[Any] = []
    for question in QUESTIONS:
        ids, masks = _run(adapter, Request(context, question))
        fresh_ids += ids
        fresh_masks += masks
    _assert_same(reused_ids, reused_masks, fresh_ids, fresh_masks)
    return reused_ids, reused_masks


def _assert_same(
    reused_ids: list[list[int]], reused_masks: list[Any], ids: list[list[int]], masks: list[Any]
) -> None:
    assert reused_ids == ids
    assert len(reused_masks) == len(masks)
    for i, ((layer_a, a), (layer_b, b)) in enumerate(zip(reused_masks, masks, strict=True)):
        assert layer_a == layer_b and a.shape == b.shape, i
        assert torch.equal(a, b), f"call {i} (layer {layer_a}): masks differ"


@pytest.mark.parametrize("entry", stateful_configs(), ids=repr)
def test_state_reuse_with_rollback_equals_fresh_state(
    law_adapter: ModelAdapterHF,
    entry: Any,
    scratch_masker_registry: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _check_law(law_adapter, _config(entry), monkeypatch)


@pytest.mark.parametrize("name", sorted(ARTEFACT_EXAMPLES))
def test_the_law_for_maskers_that_read_an_artefact_made_for_the_model(
    law_adapter: ModelAdapterHF, name: str, tmp_path: Path
) -> None:
    """Maskers whose artefact (channel file, weights) is made for one model shape: their
    examples, with the artefact written for this model."""
    shape = ModelShape.of(law_adapter.model.config)
    configs = ARTEFACT_EXAMPLES[name](shape, tmp_path)
    assert configs and all(masker_class(c).is_stateful for c in configs)
    for config in configs:
        with pytest.MonkeyPatch.context() as patch:
            _check_law(law_adapter, config, patch)


def _check_law(
    adapter: ModelAdapterHF, stateful: MaskerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter.set_sparse_attention_config(
        ResearchAttentionConfig([SinkMaskerConfig(2), LocalMaskerConfig(4), stateful])
    )
    masker = adapter.research_attention.maskers[-1]
    calls = {"build": 0, "extend": 0}
    for name in calls:
        real = getattr(masker, f"{name}_state")

        def counting(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(masker, f"{name}_state", counting)
    context = long_context(3)
    ids, masks = _law(adapter, context)
    assert calls["extend"] > 0  # the state really was reused
    assert any(len(answer) > 1 for answer in ids) and len(masks) > 6
    # The masks depend on the state: a state that ignores rollback breaks the law.
    monkeypatch.setattr(MaskerStates, "truncate", lambda self, length: None)
    with pytest.raises((ValueError, AssertionError)):
        _law(adapter, context)


def _prompts_sharing_a_prefix(adapter: ModelAdapterHF) -> list[EncodedPrompt]:
    """Four questions whose contexts share only a prefix with the one before (as when a
    request's context tokenizes differently per question): C[:n-20]; C[:n-20] plus another
    tail (a dense prefill extends the context the state was built on); C (a cut below the
    second context's end, then its tail prefilled again); C[:n-10] (a cut into the context,
    nothing to prefill)."""
    tokenizer = adapter.tokenizer
    prompts = encode_request(tokenizer, long_context(4), QUESTIONS, "", RequestOptions()).prompts
    context = prompts[0].context_ids
    n = len(context)
    tail = tokenizer(" Other: the door is green; note 9.", add_special_tokens=False)["input_ids"]
    contexts = [context[: n - 20], context[: n - 20] + tail, context, context[: n - 10]]
    assert common_prefix_length(contexts[1], contexts[2]) == n - 20
    questions = [p.question_ids for p in prompts] + [prompts[0].question_ids]
    return [EncodedPrompt(c + q, len(c)) for c, q in zip(contexts, questions, strict=True)]


def _run_prompts(
    adapter: ModelAdapterHF, prompts: list[EncodedPrompt]
) -> tuple[list[list[int]], list[Any], list[int]]:
    """(generated ids, [(layer, dense mask)], prefill tokens) of one request's questions."""
    settings = GenerationSettings.from_kwargs(GEN)
    with adapter.research_attention.record_masks() as masks, torch.inference_mode():
        _, metadata = adapter._answer_all(prompts, settings, request_index=0)
    dense = [(layer, mask.to_dense()) for layer, mask in masks]
    return [m["generated_ids"] for m in metadata], dense, [m["prefill_tokens"] for m in metadata]


def _check_partial_rollback(
    adapter: ModelAdapterHF, stateful: MaskerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reused states equal states built fresh (cleared at every rollback) on the same cache.
    The same cache, not a fresh prefill: keys prefilled on top of a kept prefix differ from
    those of one whole prefill in the last bits, which no masker state can be blamed for."""
    adapter.set_sparse_attention_config(
        ResearchAttentionConfig([SinkMaskerConfig(2), LocalMaskerConfig(4), stateful])
    )
    prompts = _prompts_sharing_a_prefix(adapter)
    ids, masks, prefilled = _run_prompts(adapter, prompts)
    n = len(prompts[2].context_ids)
    assert prefilled == [n - 20, prompts[1].context_end - (n - 20), 20, 0]  # partial rollbacks
    monkeypatch.setattr(MaskerStates, "truncate", lambda self, length: self.clear())
    fresh_ids, fresh_masks, _ = _run_prompts(adapter, prompts)
    _assert_same(ids, masks, fresh_ids, fresh_masks)


@pytest.mark.parametrize("entry", stateful_configs(), ids=repr)
def test_the_law_when_contexts_share_only_a_prefix(
    law_adapter: ModelAdapterHF,
    entry: Any,
    scratch_masker_registry: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _check_partial_rollback(law_adapter, _config(entry), monkeypatch)


@pytest.mark.parametrize("name", sorted(ARTEFACT_EXAMPLES))
def test_the_law_when_contexts_share_only_a_prefix_for_maskers_that_read_an_artefact(
    law_adapter: ModelAdapterHF, name: str, tmp_path: Path
) -> None:
    configs = ARTEFACT_EXAMPLES[name](ModelShape.of(law_adapter.model.config), tmp_path)
    for config in configs:
        with pytest.MonkeyPatch.context() as patch:
            _check_partial_rollback(law_adapter, config, patch)


def test_a_stale_state_raises_naming_the_layer_and_both_lengths(
    law_adapter: ModelAdapterHF, scratch_masker_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = law_adapter
    adapter.set_sparse_attention_config(ResearchAttentionConfig([_config(stateful_configs()[-1])]))
    monkeypatch.setattr(MaskerStates, "truncate", lambda self, length: None)
    request = Request(CONTEXT, ["A long first question about the meeting and the number?", "Q?"])
    with pytest.raises(ValueError, match=r"layer 0: the state of .* covers (\d+) keys but this"):
        adapter.process_request(request, {"max_new_tokens": 4})


def test_context_cache_rollback_truncates_states_and_a_reset_clears_them(
    law_adapter: ModelAdapterHF,
) -> None:
    from sparse_attention_hub.adapters.context_cache import ContextCache
    from sparse_attention_hub.sparse_attention import AttentionInputs
    from tests.support.maskers import KeyMaxTopK, KeyMaxTopKConfig

    model = law_adapter.model
    ids = law_adapter.tokenizer(long_context(3))["input_ids"]
    states = MaskerStates()
    masker = KeyMaxTopK(KeyMaxTopKConfig(2))
    keys = torch.randn(1, 2, len(ids) + 4, 8)
    inputs = AttentionInputs(keys[:, :, -1:].repeat(1, 2, 1, 1), keys, keys, layer_idx=0)
    states.read(masker, inputs)  # a state over the context and 4 more tokens
    context = ContextCache(model.config, states)
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids + ids[:4]]), cache=context.cache)
    context.prefilled(ids, 0)
    assert context.rollback(ids) == len(ids)
    entry = states.entry(0, masker)
    assert entry is not None and entry.end == len(ids)  # cut in the same step as the cache
    sliding = any(getattr(context.cache, "is_sliding", ()))
    kept = context.rollback(ids[:5])
    if sliding:  # below the point the windows were cut at: the cache resets, so do the states
        assert kept == 0 and len(states) == 0
    else:
        assert kept == 5 and entry.end == 5


SEEDED_SAMPLERS = [
    c
    for c in example_masker_configs()
    if masker_class(c).is_sampling and not masker_class(c).is_stateful and hasattr(c, "seed")
]


@pytest.mark.parametrize("config", SEEDED_SAMPLERS[:1], ids=repr)
def test_seeded_sampling_with_reuse_equals_fresh_prefill(
    law_adapter: ModelAdapterHF, config: MaskerConfig
) -> None:
    """A sampler seeded per call (vAttention) draws the same keys for a question with KV reuse
    as after a fresh prefill."""
    adapter = law_adapter
    adapter.set_sparse_attention_config(
        ResearchAttentionConfig([SinkMaskerConfig(2), LocalMaskerConfig(4), config])
    )
    _, masks = _law(adapter, long_context(3))
    assert any(bool(((m > 0) & (m < 1)).any()) for _, m in masks)  # it did sample
