"""The sparse-prefill engine: one BlockMask from the selections, flex_attention on it, equal to
dense masked attention on the brute-force mask of the same selections."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention.prefill import engine
from sparse_attention_hub.sparse_attention.prefill.base import PrefillSelection
from sparse_attention_hub.sparse_attention.prefill.block_mask import (
    CallGeometry,
    build_block_mask,
    regrid,
)
from sparse_attention_hub.sparse_attention.prefill.engine import flex_prefill

from .reference import allowed_pairs, dense_masked, union_pairs


@pytest.fixture(autouse=True)
def _eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine.EAGER_ENV, "1")


def _random_selections(b: int, h: int, q_len: int, k_len: int, gen: torch.Generator):
    """A block-level selection at the engine size, one at another size, one with a mask_mod."""

    def blocks(size: int, p: float) -> torch.Tensor:
        nq, nk = -(-q_len // size), -(-k_len // size)
        return torch.rand(b, h, nq, nk, generator=gen) < p

    columns = torch.rand(b, h, k_len, generator=gen) < 0.3  # (B, H, K): a vertical pattern

    def vertical(bi, hi, q_idx, kv_idx):
        return columns[bi, hi, kv_idx]

    return [
        PrefillSelection(blocks(8, 0.3), 8),
        PrefillSelection(blocks(5, 0.3), 5),
        PrefillSelection(blocks(8, 0.8), 8, vertical),
    ]


CASES = {
    # (Q, K, query_start, window, H, Hkv, engine block)
    "square": (37, 37, 0, None, 4, 4, 8),
    "chunk_q_lt_k_gqa": (13, 45, 32, None, 4, 2, 8),
    "sliding": (40, 40, 0, 11, 4, 2, 8),
    "sliding_cache_cut": (9, 20, 30, 20, 2, 1, 8),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("extras", ["plain", "softcap_sinks"])
def test_engine_equals_dense_masked_attention(case: str, extras: str) -> None:
    q_len, k_len, start, window, h, hkv, bs = CASES[case]
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, h, q_len, 16, generator=gen)
    k = torch.randn(1, hkv, k_len, 16, generator=gen)
    v = torch.randn(1, hkv, k_len, 8, generator=gen)
    offset = max(0, start + q_len - k_len)
    geometry = CallGeometry(1, h, q_len, k_len, start, offset, window, bs)
    selections = _random_selections(1, h, q_len, k_len, gen)
    block_mask, full, partial = build_block_mask(selections, geometry, q.device)
    assert bool(partial.any()) and (window is not None or bool(full.any()))  # both kinds
    softcap, sinks = (3.0, torch.randn(h, generator=gen)) if extras != "plain" else (None, None)
    ours = flex_prefill(q, k, v, block_mask, 0.3, softcap, sinks)
    mask = union_pairs(selections, 1, h, allowed_pairs(q_len, k_len, start, offset, window))
    expected = dense_masked(q, k, v, mask, 0.3, softcap, sinks)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_the_compiled_path_runs_on_a_tiny_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(engine.EAGER_ENV)
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 40, 16, generator=gen) for _ in range(3))
    k, v = k[:, :1], v[:, :1]
    geometry = CallGeometry(1, 2, 40, 40, 0, 0, None, 16)
    selections = _random_selections(1, 2, 40, 40, gen)
    block_mask, _, _ = build_block_mask(selections, geometry, q.device)
    assert engine.use_compiled(q.device, needs_lse=False)
    ours = flex_prefill(q, k, v, block_mask, 0.25, softcap=2.0)
    assert not engine._compile_failed  # it compiled (a C compiler is on this machine)
    mask = union_pairs(selections, 1, 2, allowed_pairs(40, 40, 0, 0, None))
    expected = dense_masked(q, k, v, mask, 0.25, softcap=2.0)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_regrid_keeps_every_engine_block_a_selection_block_overlaps() -> None:
    gen = torch.Generator().manual_seed(1)
    for size in (3, 5, 8, 20):
        q_len, k_len = 29, 41
        geometry = CallGeometry(1, 1, q_len, k_len, 12, 0, None, 8)
        blocks = torch.rand(1, 1, -(-q_len // size), -(-k_len // size), generator=gen) < 0.2
        tokens = PrefillSelection(blocks, size)
        pairs = union_pairs([tokens], 1, 1, torch.ones(q_len, k_len, dtype=torch.bool))[0, 0]
        expected = torch.zeros(4, 6, dtype=torch.bool)
        for i in range(4):
            for j in range(6):
                expected[i, j] = pairs[i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8].any()
        assert torch.equal(regrid(blocks, size, geometry)[0, 0], expected), size
