"""The rollback law for every stateful masker: with state reuse and KV-cache rollback, answers
and masks equal those of a fresh prefill and fresh state for every question.

Parametrised over the registry (every registered stateful masker, through its configs in the
shared example list, or, for one that needs an artefact made for the model, through a config
whose artefact a function here writes for the law's model) plus the stateful test masker of ``sparse_attention_hub.testing``, which
is named by import path. Run on a Llama (full attention) and on a Mistral whose every layer
slides (the cache keeps only the last keys there, so key index != position).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.sparse_attention import MaskerStates, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import (
    HashAttentionConfig,
    LocalMaskerConfig,
    MaskerConfig,
    SinkMaskerConfig,
    masker_class,
    masker_config_from_dict,
    resolve_masker,
)
from sparse_attention_hub.sparse_attention.maskers.examples import (
    ARTEFACT_MASKERS,
    example_masker_configs,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    random_hat_weights,
    save_hat_weights,
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
    assert reused_ids == fresh_ids
    assert len(reused_masks) == len(fresh_masks)
    for i, ((layer_a, a), (layer_b, b)) in enumerate(zip(reused_masks, fresh_masks, strict=True)):
        assert layer_a == layer_b and a.shape == b.shape, i
        assert torch.equal(a, b), f"call {i} (layer {layer_a}): masks differ"
    return reused_ids, reused_masks


@pytest.mark.parametrize("entry", stateful_configs(), ids=repr)
def test_state_reuse_with_rollback_equals_fresh_state(
    law_adapter: ModelAdapterHF,
    entry: Any,
    scratch_masker_registry: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _check_law(law_adapter, _config(entry), monkeypatch)


def _hashattention_config(adapter: ModelAdapterHF, directory: Path) -> MaskerConfig:
    """HashAttention with random MLPs written for ``adapter``'s model shape."""
    config = adapter.model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    weights = random_hat_weights(config.num_hidden_layers, heads, head_dim, hidden=16, seed=0)
    path = save_hat_weights(weights, directory / "hat.safetensors")
    return HashAttentionConfig(heavy_size=4, weights_file=str(path))


#: Stateful maskers whose configs need an artefact for the model (``ARTEFACT_MASKERS``): a
#: function writing one for the law's model under a directory and returning the config.
ARTEFACT_CONFIGS: dict[str, Callable[[ModelAdapterHF, Path], MaskerConfig]] = {
    "hashattention": _hashattention_config,
}


def test_every_stateful_artefact_masker_has_a_law_config() -> None:
    stateful = {name for name in ARTEFACT_MASKERS if resolve_masker(name).is_stateful}
    assert stateful <= set(ARTEFACT_CONFIGS)


@pytest.mark.parametrize("name", sorted(ARTEFACT_CONFIGS))
def test_state_law_for_maskers_with_artefacts(
    law_adapter: ModelAdapterHF,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _check_law(law_adapter, ARTEFACT_CONFIGS[name](law_adapter, tmp_path), monkeypatch)


def _check_law(
    adapter: ModelAdapterHF, stateful: MaskerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The law for ``stateful`` after sink + local; the state must be extended, and a state
    that ignores rollback must break it."""
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
