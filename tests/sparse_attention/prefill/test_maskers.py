"""sink / local / block_top_k selections against brute-force references on small L, config
errors, and no tensor of L x L elements while selecting and building the BlockMask at L=16k."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from sparse_attention_hub.sparse_attention.prefill.base import PrefillInputs
from sparse_attention_hub.sparse_attention.prefill.block_mask import build_block_mask, geometry_of
from sparse_attention_hub.sparse_attention.prefill.block_top_k import (
    BlockTopKPrefill,
    BlockTopKPrefillConfig,
)
from sparse_attention_hub.sparse_attention.prefill.local import LocalPrefill, LocalPrefillConfig
from sparse_attention_hub.sparse_attention.prefill.registry import prefill_config_from_dict
from sparse_attention_hub.sparse_attention.prefill.sink import SinkPrefill, SinkPrefillConfig

from .reference import allowed_pairs, union_pairs

CASES = {
    # (Q, K, query_start, window, H, Hkv, block)
    "square": (37, 37, 0, None, 4, 2, 8),
    "chunk_q_lt_k": (13, 45, 32, None, 2, 1, 8),
    "sliding_cache_cut": (9, 20, 30, 12, 2, 2, 5),
}


def _inputs(case: str, softcap: float | None = None, seed: int = 0) -> PrefillInputs:
    q_len, k_len, start, window, h, hkv, bs = CASES[case]
    gen = torch.Generator().manual_seed(seed)
    return PrefillInputs(
        queries=torch.randn(1, h, q_len, 16, generator=gen),
        keys=torch.randn(1, hkv, k_len, 16, generator=gen),
        scaling=0.25,
        query_start=start,
        key_offset=max(0, start + q_len - k_len),
        sliding_window=window,
        block_size=bs,
        softcap=softcap,
        budget_bytes=2048,  # several query chunks
    )


def _pairs(inputs: PrefillInputs, selection) -> torch.Tensor:
    allowed = allowed_pairs(
        inputs.query_length,
        inputs.key_length,
        inputs.query_start,
        inputs.key_offset,
        inputs.sliding_window,
    )
    return union_pairs([selection], 1, inputs.num_heads, allowed), allowed


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("size", [1, 3, 8, 33])
def test_sink_and_local_equal_their_definition(case: str, size: int) -> None:
    inputs = _inputs(case)
    q_abs = torch.arange(inputs.query_length)[:, None] + inputs.query_start
    k_abs = torch.arange(inputs.key_length)[None, :] + inputs.key_offset
    sink, allowed = _pairs(inputs, SinkPrefill(SinkPrefillConfig(size)).select(inputs))
    assert torch.equal(sink, (k_abs < size).expand_as(sink) & allowed)
    local, _ = _pairs(inputs, LocalPrefill(LocalPrefillConfig(size)).select(inputs))
    assert torch.equal(local, (q_abs - k_abs < size).expand_as(local) & allowed)


def _brute_block_top_k(inputs: PrefillInputs, budget: int | float, bs: int) -> torch.Tensor:
    """(B, H, nq, nk) kept blocks from the dense probabilities, by loops."""
    _, allowed = _pairs(inputs, SinkPrefill(SinkPrefillConfig(1)).select(inputs))
    group = inputs.group_size
    k = inputs.keys.repeat_interleave(group, dim=1)
    s = inputs.queries @ k.transpose(-1, -2) * inputs.scaling
    if inputs.softcap is not None:
        s = inputs.softcap * torch.tanh(s / inputs.softcap)
    p = torch.softmax(s.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    nq, nk = inputs.num_blocks(bs)
    kept = torch.zeros(1, inputs.num_heads, nq, nk, dtype=torch.bool)
    shift = inputs.query_start - inputs.key_offset
    for h in range(inputs.num_heads):
        for i in range(nq):
            rows = slice(i * bs, (i + 1) * bs)
            causal = [j for j in range(nk) if allowed[rows, j * bs : (j + 1) * bs].any()]
            own = {(q + shift) // bs for q in range(i * bs, min((i + 1) * bs, inputs.query_length))}
            diagonal = [j for j in causal if j in own]
            n = budget if isinstance(budget, int) else math.ceil(budget * len(causal))
            mass = {j: float(p[0, h, rows, j * bs : (j + 1) * bs].sum()) for j in causal}
            rest = sorted((j for j in causal if j not in diagonal), key=lambda j: -mass[j])
            for j in diagonal + rest[: max(0, min(n, len(causal)) - len(diagonal))]:
                kept[0, h, i, j] = True
    return kept


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize(("budget", "size"), [(1, None), (2, 4), (0.5, None), (1.0, 6)])
def test_block_top_k_keeps_the_blocks_of_highest_exact_mass(case, budget, size) -> None:
    inputs = _inputs(case, softcap=2.0 if case == "square" else None)
    selection = BlockTopKPrefill(BlockTopKPrefillConfig(budget, size)).select(inputs)
    bs = inputs.block_size if size is None else size
    assert selection.block_size == bs and selection.mask_mod is None
    assert torch.equal(selection.blocks, _brute_block_top_k(inputs, budget, bs))


def test_block_top_k_at_budget_one_keeps_every_causal_pair() -> None:
    inputs = _inputs("chunk_q_lt_k")
    selection = BlockTopKPrefill(BlockTopKPrefillConfig(1.0)).select(inputs)
    pairs, allowed = _pairs(inputs, selection)
    assert torch.equal(pairs, allowed.expand_as(pairs))


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("sink", {"sink_size": 0}, "SinkPrefillConfig.sink_size"),
        ("local", {"window_size": 2.5}, "LocalPrefillConfig.window_size"),
        ("block_top_k", {"block_budget": 1.5}, "BlockTopKPrefillConfig.block_budget"),
        ("block_top_k", {"block_budget": 0}, "BlockTopKPrefillConfig.block_budget"),
        ("block_top_k", {"block_budget": 2, "block_size": 0}, "BlockTopKPrefillConfig.block_size"),
    ],
)
def test_bad_sizes_name_the_field(name: str, params: dict, field: str) -> None:
    with pytest.raises((ValueError, TypeError), match=field):
        prefill_config_from_dict(name, params)


class _LargestOutput(TorchDispatchMode):
    """Records the largest number of elements of any tensor an aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _largest_tensor(length: int, maskers: list, budget_bytes: int) -> tuple[int, torch.Tensor]:
    """(the most elements of any tensor, the full blocks) of selecting and building the
    BlockMask of a length x length call (H=1, D=8)."""
    gen = torch.Generator().manual_seed(0)
    inputs = PrefillInputs(
        queries=torch.randn(1, 1, length, 8, generator=gen),
        keys=torch.randn(1, 1, length, 8, generator=gen),
        scaling=0.3,
        block_size=128,
        budget_bytes=budget_bytes,
    )
    with torch.no_grad(), _LargestOutput() as probe:
        selections = [m.select(inputs) for m in maskers]
        _, full, _ = build_block_mask(selections, geometry_of(inputs), None)
    return probe.largest, full


def test_no_l_by_l_tensor_at_16k() -> None:
    length = 16 * 1024
    maskers = [SinkPrefill(SinkPrefillConfig(128)), LocalPrefill(LocalPrefillConfig(1000))]
    largest, full = _largest_tensor(length, maskers, 128 * 2**20)
    assert largest <= length * 128, largest  # a row of blocks' tokens at most, not L x L
    assert int(full.sum()) == 127  # the sink column below the diagonal: full blocks


def test_block_top_k_scores_stay_in_the_budget() -> None:
    length = 4096
    masker = BlockTopKPrefill(BlockTopKPrefillConfig(0.1, block_size=64))
    largest, _ = _largest_tensor(length, [masker], 4 * 2**20)
    assert largest * 4 <= 4 * 2**20, largest  # fp32 chunks within the budget: not L x L
