"""FlexPrefill's block selection against a plain port of the official ``get_active_blocks``
(bytedance/FlexPrefill, ``flex_prefill/ops/flex_prefill_attention.py``)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparse_attention_hub.sparse_attention.prefill.base import PrefillInputs
from sparse_attention_hub.sparse_attention.prefill.flexprefill import (
    FlexPrefill,
    FlexPrefillConfig,
    flexprefill_blocks,
)
from sparse_attention_hub.sparse_attention.prefill.registry import (
    available_prefill_maskers,
    create_prefill_masker,
    prefill_config_from_dict,
)

# ---- the reference: the official selection, ported line by line (torch, no triton) ----


def score_cover_topk(x: torch.Tensor, score: float) -> torch.Tensor:
    cumsum_x = torch.cumsum(torch.sort(x, dim=-1, descending=True).values, dim=-1)
    return torch.sum(cumsum_x <= score, dim=-1) + 1


def score_cover_idx(x: torch.Tensor, score: float) -> torch.Tensor:
    x, idx = torch.sort(x, dim=-1, descending=True)
    idx[torch.cumsum(x, dim=-1) > score] = 0
    return idx


def sum_all_diagonal_matrix(mat: torch.Tensor) -> torch.Tensor:
    b, h, n, m = mat.shape
    padded = torch.nn.functional.pad(mat, (n - 1, 0), value=0).contiguous()
    strided = padded.as_strided((b, h, m, n), (h * n * (n + m - 1), n * (n + m - 1), 1, n + m))
    return torch.sum(strided, -1)


def bhn_sumpool(x: torch.Tensor, size: int) -> torch.Tensor:
    b, h, n = x.shape
    x = torch.nn.functional.pad(x, (0, math.ceil(n / size) * size - n), value=0)
    return x.view(b, h, -1, size).sum(-1)


def bnhd_avgpool(x: torch.Tensor, size: int) -> torch.Tensor:
    n = x.shape[1]
    return torch.stack([x[:, i : i + size].mean(1) for i in range(0, n, size)], dim=1)


def transform_vertical_slash_idx(v_idx, s_idx, num_blocks):  # type: ignore[no-untyped-def]
    batch_size, num_heads, _ = v_idx.shape
    range_blocks = torch.arange(num_blocks)[None, None, :, None]
    v_idx = (range_blocks * num_blocks + v_idx[:, :, None, :]).view(batch_size, num_heads, -1)
    v_idx[v_idx // num_blocks < v_idx % num_blocks] = 0
    s_idx = (range_blocks * num_blocks + range_blocks + s_idx[:, :, None, :] * num_blocks).view(
        batch_size, num_heads, -1
    )
    s_idx[s_idx >= num_blocks * num_blocks] = 0
    vs_idx = torch.cat((s_idx, v_idx), dim=-1)
    return [[torch.unique(vs_idx[b, h]) for h in range(num_heads)] for b in range(batch_size)]


def official_blocks(  # type: ignore[no-untyped-def]
    q, k, bs, gamma, min_budget, max_budget, tau, first_block=0
):
    """q (B, N, H, D), k (B, N, Hkv, D); budgets in blocks. Returns the (B, H, nb, nb) blocks
    of query blocks ``first_block ..`` (the query-aware cover over those rows: the official
    code has first_block = 0) and the query-aware heads. ``// 128`` is ``// bs`` here."""
    batch_size, seq_len, num_heads, head_dim = q.shape
    g = num_heads // k.shape[2]
    num_blocks = math.ceil(seq_len / bs)
    max_budget = min(max_budget, num_blocks)
    last_q = q[:, -bs:, :, :] / math.sqrt(head_dim)
    qk = torch.einsum(
        "bihgd, bjhgd -> bhgij",
        last_q.reshape(batch_size, bs, -1, g, head_dim),
        k.reshape(batch_size, seq_len, -1, 1, head_dim),
    )
    causal = torch.tril(torch.ones(bs, bs, dtype=torch.bool))
    qk[..., -bs:].masked_fill_(~causal, float("-inf"))
    qk = torch.softmax(qk, dim=-1, dtype=torch.float32).reshape(batch_size, num_heads, bs, -1)
    slash = sum_all_diagonal_matrix(qk) / qk.shape[-2]
    vertical = qk.mean(-2)
    num_vertical = score_cover_topk(vertical, gamma) // bs + 1
    num_slash = score_cover_topk(slash, gamma) // bs + 1
    num_vertical = num_vertical.clamp(min=min_budget).clamp(max=max_budget)
    num_slash = num_slash.clamp(min=min_budget).clamp(max=max_budget)
    vertical = bhn_sumpool(vertical, bs)
    slash = bhn_sumpool(slash, bs)
    avg_k = bnhd_avgpool(k, bs).repeat_interleave(g, 2)
    avg_qk = torch.einsum("bihd, bjhd -> bhij", last_q.mean(1, keepdim=True), avg_k).squeeze(2)
    avg_qk = torch.softmax(avg_qk, dim=-1, dtype=torch.float32)
    m = (avg_qk + vertical) / 2
    js = torch.sqrt(
        0.5 * (avg_qk * torch.log(avg_qk / m)).sum(-1)
        + 0.5 * (vertical * torch.log(vertical / m)).sum(-1)
    )
    block_sparse_mask = js < tau
    num_vertical[block_sparse_mask] = min_budget
    num_slash[block_sparse_mask] = min_budget
    vertical[..., :1] = torch.inf
    slash[..., -1:] = torch.inf
    num_slash = num_slash.view(-1)
    slash_topk = (num_blocks - 1) - slash.view(batch_size * num_heads, -1).topk(
        min(int(num_slash.max()), num_blocks), -1
    ).indices
    slash_topk[torch.arange(slash_topk.shape[-1])[None, :] >= num_slash[:, None]] = 0
    num_vertical = num_vertical.view(-1)
    vertical_topk = (
        vertical.view(batch_size * num_heads, -1)
        .topk(min(int(num_vertical.max()), num_blocks), -1)
        .indices
    )
    vertical_topk[torch.arange(vertical_topk.shape[-1])[None, :] >= num_vertical[:, None]] = 0
    block_idx = transform_vertical_slash_idx(
        vertical_topk.view(batch_size, num_heads, -1),
        slash_topk.view(batch_size, num_heads, -1),
        num_blocks,
    )
    tril = torch.tril(torch.ones(num_blocks, num_blocks, dtype=torch.bool))
    rows = num_blocks - first_block
    for b, h in block_sparse_mask.nonzero().tolist():
        pad_q = num_blocks * bs - seq_len
        avg_q = torch.nn.functional.pad(q[b, :, h, :], (0, 0, 0, pad_q)).view(num_blocks, bs, -1)
        avg_q = avg_q.mean(1)
        avg_q[-1, :] = avg_q[-1, :] * bs / (bs - pad_q)
        attn = torch.einsum("id, jd -> ij", avg_q / math.sqrt(head_dim), avg_k[b, :, h, :])
        attn = attn.masked_fill(~tril, float("-inf"))[first_block:]
        attn = torch.softmax(attn, dim=-1, dtype=torch.float32).reshape(-1)
        block_topk = score_cover_idx(attn, gamma * rows) + first_block * num_blocks
        block_idx[b][h] = torch.unique(torch.cat((block_idx[b][h], block_topk)))
    blocks = torch.zeros(batch_size, num_heads, num_blocks * num_blocks, dtype=torch.bool)
    for b in range(batch_size):
        for h in range(num_heads):
            blocks[b, h, block_idx[b][h]] = True
    blocks = blocks.view(batch_size, num_heads, num_blocks, num_blocks) & tril
    return blocks[:, :, first_block:], block_sparse_mask


# ---- helpers ----


def make_qk(
    seed: int, length: int, scales: tuple[float, ...], group: int = 2, batch: int = 1, d: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """queries (B, H, L, D), keys (B, Hkv, L, D); key head i and its query heads scaled by
    ``scales[i]`` (small: near-uniform attention, large: peaked)."""
    gen = torch.Generator().manual_seed(seed)
    hkv = len(scales)
    scale = torch.tensor(scales)[None, :, None, None]
    k = torch.randn(batch, hkv, length, d, generator=gen) * scale
    q = torch.randn(batch, hkv * group, length, d, generator=gen)
    return q * scale.repeat_interleave(group, 1), k


def reference(
    q: torch.Tensor, k: torch.Tensor, config: FlexPrefillConfig, first_block: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    bs = config.block_size
    min_b = math.ceil((config.min_budget or 1) / bs)
    max_b = math.ceil((config.max_budget or 2**31 - 1) / bs)
    return official_blocks(  # type: ignore[no-any-return]
        q.transpose(1, 2),
        k.transpose(1, 2),
        bs,
        config.gamma,
        min_b,
        max_b,
        config.tau,
        first_block,
    )


def run(q: torch.Tensor, k: torch.Tensor, config: FlexPrefillConfig, **kw: Any) -> Any:
    inputs = PrefillInputs(q, k, 1 / math.sqrt(q.shape[-1]), **kw)
    return flexprefill_blocks(inputs, config)


CFG = FlexPrefillConfig(gamma=0.9, tau=0.1, min_budget=16, block_size=16)


# ---- tests ----


@pytest.mark.parametrize(
    ("seed", "length", "scales", "config"),
    [
        (0, 256, (0.05, 4.0), CFG),
        (1, 250, (4.0, 0.05, 1.0), CFG),  # L not a multiple of the block size
        (2, 192, (3.0, 2.0), FlexPrefillConfig(gamma=0.95, tau=0.3, min_budget=40, block_size=16)),
        (
            3,
            320,
            (0.05, 3.0),
            FlexPrefillConfig(gamma=0.5, tau=0.1, min_budget=None, block_size=32),
        ),
    ],
)
def test_selection_equals_the_official_port(seed, length, scales, config) -> None:  # type: ignore[no-untyped-def]
    q, k = make_qk(seed, length, scales, batch=2 if seed == 1 else 1)
    blocks, query_aware = run(q, k, config)
    expected, expected_aware = reference(q, k, config)
    assert torch.equal(query_aware, expected_aware)
    assert torch.equal(blocks, expected)


def test_both_patterns_are_reached_and_query_aware_blocks_are_added() -> None:
    q, k = make_qk(0, 256, (0.05, 4.0))
    blocks, query_aware = run(q, k, CFG)
    assert query_aware.tolist() == [[True, True, False, False]]
    vertical_slash, none_aware = run(q, k, dataclass_replace(CFG, tau=0.0))
    assert not none_aware.any()
    assert torch.equal(blocks[:, 2:], vertical_slash[:, 2:])
    # a query-aware head: its min-budget vertical-slash blocks plus the block-attention cover
    min_budget_only, _ = run(q, k, dataclass_replace(CFG, tau=0.0, gamma=1e-6))
    aware = blocks[:, :2]
    assert torch.equal(aware | min_budget_only[:, :2], aware)
    assert aware.sum() > min_budget_only[:, :2].sum() + 50


def dataclass_replace(config: FlexPrefillConfig, **changes: Any) -> FlexPrefillConfig:
    import dataclasses

    return dataclasses.replace(config, **changes)


def test_min_budget_and_max_budget_bound_the_vertical_and_slash_counts() -> None:
    q, k = make_qk(4, 256, (4.0, 3.0))
    small = FlexPrefillConfig(gamma=0.01, tau=0.0, min_budget=16, block_size=16)
    blocks, _ = run(q, k, small)
    assert (blocks[:, :, -1].sum(-1) == 2).all()  # column 0 and the diagonal
    wide = dataclass_replace(small, min_budget=4 * 16)
    blocks, _ = run(q, k, wide)
    assert torch.equal(blocks, reference(q, k, wide)[0])
    assert (blocks[:, :, -1].sum(-1) >= 4).all()  # >= 4 columns in the last query block
    capped = FlexPrefillConfig(gamma=1.0, tau=0.0, min_budget=16, max_budget=32, block_size=16)
    blocks, _ = run(q, k, capped)
    assert torch.equal(blocks, reference(q, k, capped)[0])
    assert (blocks[:, :, -1].sum(-1) <= 4).all()  # 2 columns and 2 diagonals at most


def test_chunked_prefill_aligned_equals_the_official_rows() -> None:
    q, k = make_qk(5, 250, (0.05, 4.0))
    full, _ = reference(q, k, CFG, first_block=6)
    blocks, _ = run(q[:, :, 96:], k, CFG, query_start=96)
    assert torch.equal(blocks, full)


def test_chunked_prefill_misaligned_is_the_union_of_the_key_grid_rows() -> None:
    q, k = make_qk(6, 250, (4.0, 2.0))
    config = dataclass_replace(CFG, tau=0.0)
    full, _ = reference(q, k, config)
    start = 90  # call rows 0..15 are positions 90..105: key-grid rows 5 and 6
    blocks, _ = run(q[:, :, start:], k, config, query_start=start)
    qb = blocks.shape[2]
    for i in range(qb):
        low, high = (start + 16 * i) // 16, (start + min(16 * (i + 1), 250 - start) - 1) // 16
        assert torch.equal(blocks[:, :, i], full[:, :, low] | full[:, :, high]), i


def test_small_budget_chunks_give_the_same_selection() -> None:
    q, k = make_qk(7, 256, (0.05, 4.0), group=1)
    blocks, aware = run(q, k, CFG)
    chunked, chunked_aware = run(q, k, CFG, budget_bytes=4096)  # key chunks, two-pass softmax
    assert torch.equal(aware, chunked_aware)
    assert torch.equal(blocks, chunked)


def test_short_calls_are_dense_block_causal() -> None:
    q, k = make_qk(8, 40, (4.0,))
    tril = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    sparse, _ = run(q, k, CFG)  # 40 > max(2 * 16, 16) tokens: sparse
    assert not torch.equal(sparse[0, 0], tril)
    blocks, aware = run(q, k, dataclass_replace(CFG, min_budget=48))  # 40 <= 48: dense
    assert torch.equal(blocks[0, 0], tril) and not aware.any()
    blocks, _ = run(q[:, :, -1:], k, CFG, query_start=39)  # one query: dense
    assert blocks[0, 0].tolist() == [[True, True, True]]


def test_registered_and_selection_at_block_size() -> None:
    assert "flexprefill" in available_prefill_maskers()
    config = prefill_config_from_dict("flexprefill", {"block_size": 16, "min_budget": 16})
    masker = create_prefill_masker(config)
    assert isinstance(masker, FlexPrefill)
    q, k = make_qk(0, 256, (0.05, 4.0))
    selection = masker.select(PrefillInputs(q, k, 0.25))
    assert selection.block_size == 16 and selection.mask_mod is None
    assert torch.equal(selection.blocks, reference(q, k, config)[0])  # type: ignore[arg-type]


def test_defaults_follow_the_official_patch_model() -> None:
    config = FlexPrefillConfig()
    assert (config.gamma, config.tau, config.min_budget, config.max_budget) == (
        0.9,
        0.1,
        1024,
        None,
    )
    assert config.block_size == 128


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("gamma", 0.0, ValueError),
        ("gamma", 1.5, ValueError),
        ("tau", -0.1, ValueError),
        ("block_size", 0, ValueError),
        ("block_size", 16.0, TypeError),
        ("min_budget", 0, ValueError),
        ("max_budget", 8, ValueError),  # below min_budget 1024
        ("gamma", True, TypeError),
    ],
)
def test_config_errors_name_the_field(field: str, value: object, error: type) -> None:
    with pytest.raises(error, match=f"FlexPrefillConfig.{field}"):
        FlexPrefillConfig(**{field: value})  # type: ignore[arg-type]


def test_input_errors() -> None:
    masker = FlexPrefill(CFG)
    q, k = make_qk(0, 64, (1.0, 1.0))
    with pytest.raises(ValueError, match="query_start >= key_offset"):
        masker.select(PrefillInputs(q, k, 0.25, query_start=0, key_offset=4))
    with pytest.raises(ValueError, match="multiple of Hkv"):
        masker.select(PrefillInputs(q[:, :3], k, 0.25))


class LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("query_start", [0, 8192])
def test_no_query_by_key_tensor_at_16k(query_start: int) -> None:
    length = 16384
    q, k = make_qk(9, length, (0.05, 4.0), group=1)
    config = FlexPrefillConfig()
    with LargestTensor() as mode:
        blocks, aware = run(q[:, :, query_start:], k, config, query_start=query_start)
    assert aware.tolist() == [[True, False]]  # both patterns ran
    q_len = length - query_start
    assert mode.largest <= q_len * length // 32, mode.largest
    assert blocks.shape == (1, 2, q_len // 128, length // 128)
