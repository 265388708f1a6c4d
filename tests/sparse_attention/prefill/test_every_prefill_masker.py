"""Every registered prefill masker, at small sizes: the engine computes exactly its
selection's causal pairs (against dense masked attention on the brute-force mask), padded or
not, and its selection allocates no (Q, K)-sized tensor at 16k. A new prefill masker fails
here until it has an entry in SMALL."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention.prefill import engine
from sparse_attention_hub.sparse_attention.prefill.attention import SparsePrefill, prefill_inputs
from sparse_attention_hub.sparse_attention.prefill.registry import (
    available_prefill_maskers,
    create_prefill_masker,
    prefill_config_from_dict,
)
from tests.support.prefill import LargestTensor

from .reference import allowed_pairs, dense_masked, union_pairs

#: Small parameters of each registered prefill masker (a call of about 200 tokens).
SMALL = {
    "sink": {"sink_size": 5},
    "local": {"window_size": 20},
    "block_top_k": {"block_budget": 0.3},
    "vertical_slash": {"vertical_size": 40, "slash_size": 60, "last_q": 16},
    "flexprefill": {"block_size": 16, "min_budget": 16, "gamma": 0.5},
    "xattention": {"stride": 4, "block_size": 16, "threshold": 0.5},
}


def test_every_registered_prefill_masker_has_small_parameters() -> None:
    assert set(available_prefill_maskers()) == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("pad", [False, True])
def test_the_engine_computes_exactly_the_selected_pairs(
    name: str, pad: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(engine.EAGER_ENV, "1")
    masker = create_prefill_masker(prefill_config_from_dict(name, SMALL[name]))
    gen = torch.Generator().manual_seed(4)
    q = torch.randn(1, 4, 150, 16, generator=gen)
    k, v = (torch.randn(1, 2, 190, 16, generator=gen) for _ in range(2))
    kwargs = {"query_start": 40, "layer_idx": 0}
    prefill = SparsePrefill([masker], block_size=16, budget_bytes=2**20)
    prefill.pad_eager = pad
    out = prefill.attention(q, k, v, 0.25, dict(kwargs))
    selection = masker.select(prefill_inputs(q, k, 0.25, kwargs, 16, 2**20))
    mask = union_pairs([selection], 1, 4, allowed_pairs(150, 190, 40, 0, None))
    assert 0 < int(mask.sum()) < int(allowed_pairs(150, 190, 40, 0, None).sum()) * 4
    torch.testing.assert_close(out, dense_masked(q, k, v, mask, 0.25), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_no_selection_allocates_a_query_by_key_tensor_at_16k(name: str) -> None:
    masker = create_prefill_masker(prefill_config_from_dict(name, SMALL[name]))
    n = 16384
    q = torch.randn(1, 2, n, 8)
    k = torch.randn(1, 1, n, 8)
    inputs = prefill_inputs(q, k, 0.35, {"query_start": 0, "layer_idx": 0}, 128, 8 * 2**20)
    recorder = LargestTensor()
    with recorder:
        masker.select(inputs)
    assert recorder.largest <= n * n // 16, recorder.op  # far below Q x K (268 M entries)
