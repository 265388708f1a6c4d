"""xattention (XAttention): its blocks against a plain full-matrix reference and a port of the
official estimate (``xattn_estimate``'s torch path + ``find_blocks_chunked``), chunking within
the memory budget, errors, and no (Q, K) tensor at L = 16k."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sparse_attention_hub.sparse_attention.prefill.base import PrefillInputs
from sparse_attention_hub.sparse_attention.prefill.registry import (
    available_prefill_maskers,
    create_prefill_masker,
    prefill_config_from_dict,
)
from sparse_attention_hub.sparse_attention.prefill.xattention import XAttentionConfig
from tests.support.prefill import (
    LargestTensor,
    causal_pairs,
    make_inputs,
    pairs_to_blocks,
    with_heavy_keys,
)


def _select(inputs: PrefillInputs, **params: object) -> torch.Tensor:
    selection = create_prefill_masker(XAttentionConfig(**params)).select(inputs)  # type: ignore[arg-type]
    assert selection.mask_mod is None
    assert selection.block_size == XAttentionConfig(**params).block_size  # type: ignore[arg-type]
    return selection.blocks


def _reference(
    inputs: PrefillInputs, head: int, stride: int, block: int, threshold: float
) -> torch.Tensor:
    """(nq, nk) bool, written plainly from the full (Q, K) score matrix."""
    q = inputs.queries[0, head].double()
    k = inputs.keys[0, head // inputs.group_size].double()
    q_len, k_len = q.shape[0], k.shape[0]
    nq, nk = math.ceil(q_len / block), math.ceil(k_len / block)
    qp = torch.zeros(nq * block, q.shape[1], dtype=torch.float64)
    kp = torch.zeros(nk * block, k.shape[1], dtype=torch.float64)
    qp[:q_len], kp[:k_len] = q, k
    full = qp @ kp.T
    score = sum(full[stride - 1 - t :: stride, t::stride] for t in range(stride))
    score = score * inputs.scaling / stride  # (Qr, Kr)
    qs, ko = inputs.query_start, inputs.key_offset
    probs = torch.zeros_like(score)
    for i in range(score.shape[0]):
        seen = [
            j
            for j in range(score.shape[1])
            if ko + j * stride <= qs + i * stride + stride - 1
            and j * stride < k_len
            and i * stride < q_len
        ]
        if seen:
            probs[i, seen] = torch.softmax(score[i, seen], dim=0)
    per = block // stride
    out = torch.zeros(nq, nk, dtype=torch.bool)
    for r in range(nq):
        sums = [
            float(probs[r * per : (r + 1) * per, c * per : (c + 1) * per].sum()) for c in range(nk)
        ]
        last = qs + min((r + 1) * block, q_len) - 1
        causal = [c for c in range(nk) if ko + c * block <= last]
        forced = {0, (last - ko) // block} & set(causal)
        kept = sum(sums[c] for c in forced)
        chosen = set(forced)
        for c in sorted(set(causal) - forced, key=lambda c: -sums[c]):
            if kept < threshold * sum(sums):
                chosen.add(c)
                kept += sums[c]
        out[r, sorted(chosen)] = True
    return out


@pytest.mark.parametrize(
    ("q_len", "k_len", "params"),
    [
        (600, 600, {"stride": 8, "block_size": 128, "threshold": 0.9}),
        (300, 300, {"stride": 4, "block_size": 32, "threshold": 0.6}),
        (250, 600, {"stride": 8, "block_size": 64, "threshold": 0.8}),
        (100, 333, {"stride": 16, "block_size": 64, "threshold": 0.95}),
        (100, 250, {"stride": 8, "block_size": 64, "threshold": 0.9, "key_offset": 30}),
        (200, 400, {"stride": 8, "block_size": 64, "threshold": 0.9, "sliding_window": 150}),
    ],
)
def test_blocks_match_a_full_matrix_reference(
    q_len: int, k_len: int, params: dict[str, float]
) -> None:
    params = dict(params)
    window = params.pop("sliding_window", None)
    where = {"key_offset": int(params.pop("key_offset", 0))}
    where["query_start"] = k_len - q_len + where["key_offset"] - 7  # not block-aligned
    inputs = make_inputs(q_len, k_len, heads=4, kv_heads=2, seed=1, **where)
    inputs = dataclasses.replace(inputs, sliding_window=None if window is None else int(window))
    inputs = with_heavy_keys(inputs, 0.03)
    blocks = _select(inputs, **params)
    stride, block, thr = int(params["stride"]), int(params["block_size"]), params["threshold"]
    windowed = pairs_to_blocks(causal_pairs(inputs)[None, None], block)[0, 0]
    for h in range(4):
        expected = _reference(inputs, h, stride, block, thr) & windowed
        assert torch.equal(blocks[0, h], expected), h
    causal = torch.stack([_reference(inputs, h, stride, block, 1.0) for h in range(4)])
    assert 0 < int(blocks.sum()) < int(causal.sum())  # the threshold dropped causal blocks


# --- port of the official estimate (xattn/src/Xattention.py torch path, select_mode
# "inverse", kdb = 1, causal; xattn/src/utils.py find_blocks_chunked), on CPU ---


def _official_find_blocks_chunked(
    input_tensor: torch.Tensor, current_index: int, threshold: float
) -> torch.Tensor:
    batch_size, head_num, chunk_num, block_num = input_tensor.shape
    input_tensor = input_tensor.to(float)
    total_sum = input_tensor.sum(dim=-1, keepdim=True)
    required_sum = total_sum * threshold
    mask = torch.zeros_like(input_tensor, dtype=torch.bool)
    mask[:, :, :, 0] = 1
    mask[:, :, :, current_index : current_index + chunk_num] = (
        torch.eye(chunk_num).unsqueeze(0).unsqueeze(0).expand(1, head_num, chunk_num, chunk_num)
    )
    other_values = input_tensor.masked_fill(mask, 0)
    sorted_values, _ = torch.sort(other_values, dim=-1, descending=True)
    sorted_values = torch.cat(
        [
            torch.zeros((batch_size, head_num, chunk_num, 1)),
            torch.where(mask, input_tensor, 0).sum(dim=-1, keepdim=True),
            sorted_values[:, :, :, :-2],
        ],
        dim=-1,
    )
    _, index = torch.sort(
        torch.where(mask, 100000 * (1 + input_tensor), input_tensor), dim=-1, descending=True
    )
    cumulative_sum_without_self = torch.cat(
        [torch.zeros((batch_size, head_num, chunk_num, 1)), sorted_values[:, :, :, 0:-1]],
        dim=-1,
    ).cumsum(dim=-1)
    index_mask = cumulative_sum_without_self < required_sum
    index = torch.where(index_mask, index, 0)
    mask = mask.view(batch_size, head_num * chunk_num, block_num)
    index = index.view(batch_size, head_num * chunk_num, block_num)
    mask[:, torch.arange(mask.shape[1]).unsqueeze(dim=-1), index] = True
    mask = mask.view(batch_size, head_num, chunk_num, block_num)
    mask[:, :, :, current_index + chunk_num :] = False
    return mask


def _official_xattn_estimate(
    query_states: torch.Tensor,
    key_states: torch.Tensor,
    block_size: int,
    stride: int,
    threshold: float,
    chunk_size: int,
) -> torch.Tensor:
    batch_size, num_kv_head, k_len, head_dim = key_states.shape
    _, num_q_head, q_len, _ = query_states.shape
    k_num_to_pad = ((k_len + chunk_size - 1) // chunk_size) * chunk_size - k_len
    q_num_to_pad = ((q_len + chunk_size - 1) // chunk_size) * chunk_size - q_len
    k_chunk_num = (k_len + k_num_to_pad) // chunk_size
    k_block_num = (k_len + k_num_to_pad) // block_size
    q_chunk_num = (q_len + q_num_to_pad) // chunk_size
    q_block_num = (q_len + q_num_to_pad) // block_size
    offset_token_chunk_num = k_chunk_num - q_chunk_num
    pad_key_states = torch.nn.functional.pad(key_states, (0, 0, 0, k_num_to_pad), value=0)
    pad_query_states = torch.nn.functional.pad(query_states, (0, 0, 0, q_num_to_pad), value=0)
    reshaped_chunk_size = chunk_size // stride
    reshaped_block_size = block_size // stride
    k_reshaped_num_to_pad = k_num_to_pad // stride
    q_reshaped_num_to_pad = q_num_to_pad // stride
    num_blocks_per_chunk = reshaped_chunk_size // reshaped_block_size
    reshaped_key = torch.cat([(pad_key_states[:, :, k::stride, :]) for k in range(stride)], dim=-1)
    reshaped_query = torch.cat(
        [(pad_query_states[:, :, (stride - 1 - q) :: stride, :]) for q in range(stride)], dim=-1
    )
    simple_mask_list = []
    for chunk_idx in range(q_chunk_num):
        chunked_query = reshaped_query[
            :,
            :,
            chunk_idx * reshaped_chunk_size : chunk_idx * reshaped_chunk_size + reshaped_chunk_size,
            :,
        ]
        attn_weights_slice = torch.matmul(chunked_query, reshaped_key.transpose(2, 3))
        attn_weights_slice = attn_weights_slice / math.sqrt(head_dim) / stride
        causal_mask = torch.zeros(
            (batch_size, num_q_head, reshaped_chunk_size, reshaped_chunk_size * k_chunk_num)
        )
        causal_mask[:, :, :, (-k_reshaped_num_to_pad):] = float("-inf")
        chunk_start = (chunk_idx + offset_token_chunk_num) * reshaped_chunk_size
        chunk_end = chunk_start + reshaped_chunk_size
        causal_mask[:, :, :, chunk_start:chunk_end] = torch.triu(
            torch.ones(1, num_q_head, reshaped_chunk_size, reshaped_chunk_size) * float("-inf"),
            diagonal=1,
        )
        if chunk_idx == q_chunk_num - 1 and q_reshaped_num_to_pad != 0:
            causal_mask[:, :, (-q_reshaped_num_to_pad):, :] = float("-inf")
        causal_mask[:, :, :, chunk_end:] = float("-inf")
        attn_weights_slice = attn_weights_slice + causal_mask
        attn_weights_slice = torch.nn.functional.softmax(
            attn_weights_slice, dim=-1, dtype=torch.float32
        )
        if chunk_idx == q_chunk_num - 1 and q_reshaped_num_to_pad != 0:
            attn_weights_slice[:, :, (-q_reshaped_num_to_pad):, :] = 0
        attn_sum = (
            attn_weights_slice.view(
                batch_size,
                num_kv_head,
                num_blocks_per_chunk,
                reshaped_block_size,
                -1,
                reshaped_block_size,
            )
            .sum(dim=-1)
            .sum(dim=-2)
        )
        simple_mask_list.append(
            _official_find_blocks_chunked(
                attn_sum,
                k_block_num - q_block_num + chunk_idx * num_blocks_per_chunk,
                threshold,
            )
        )
    simple_masks = torch.cat(simple_mask_list, dim=-2)
    simple_masks[:, :, -q_block_num:, -q_block_num:] = torch.where(
        torch.tril(torch.ones(q_block_num, q_block_num, dtype=bool), diagonal=0),
        simple_masks[:, :, -q_block_num:, -q_block_num:],
        False,
    )
    return simple_masks


@pytest.mark.parametrize(
    ("q_len", "k_len", "stride", "threshold"),
    [(1000, 1000, 8, 0.9), (1000, 1000, 16, 0.9), (488, 1000, 8, 0.8), (700, 700, 8, 0.5)],
)
@pytest.mark.parametrize("heavy", [0.0, 0.03])
def test_blocks_match_the_official_estimate(
    q_len: int, k_len: int, stride: int, threshold: float, heavy: float
) -> None:
    # the official requires H = Hkv; Q < K only end-aligned in whole chunks (K - Q = 2 x 256)
    inputs = make_inputs(q_len, k_len, heads=2, kv_heads=2, dim=32, seed=7)
    inputs = with_heavy_keys(inputs, heavy) if heavy else inputs
    blocks = _select(inputs, stride=stride, block_size=128, threshold=threshold)
    official = _official_xattn_estimate(
        inputs.queries, inputs.keys, 128, stride, threshold, chunk_size=256
    )
    nq, nk = blocks.shape[2:]
    assert torch.equal(blocks, official[:, :, :nq, :nk])
    assert not bool(official[:, :, :nq, nk:].any())
    causal = _select(inputs, stride=stride, block_size=128, threshold=1.0)
    if heavy:
        assert int(blocks.sum()) < int(causal.sum())  # the threshold dropped causal blocks


def test_chunked_estimate_equals_one_chunk() -> None:
    inputs = with_heavy_keys(make_inputs(700, 700, heads=2, kv_heads=1, seed=2), 0.03)
    small = dataclasses.replace(inputs, budget_bytes=1)  # one query block at a time
    assert torch.equal(_select(inputs, block_size=64), _select(small, block_size=64))


def test_threshold_one_keeps_every_causal_block_and_low_keeps_first_and_diagonal() -> None:
    inputs = make_inputs(512, 512, heads=1, kv_heads=1, seed=4)
    all_blocks = _select(inputs, block_size=64, threshold=1.0)[0, 0]
    assert torch.equal(all_blocks, torch.ones(8, 8, dtype=torch.bool).tril())
    few = _select(inputs, block_size=64, threshold=1e-9)[0, 0]
    expected = torch.eye(8, dtype=torch.bool)
    expected[:, 0] = True
    assert torch.equal(few, expected)


@pytest.mark.parametrize(
    ("field", "value"),
    [("stride", 0), ("block_size", 100), ("threshold", 0.0), ("threshold", 1.5), ("stride", 2.0)],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        XAttentionConfig(**{field: value})  # type: ignore[arg-type]


def test_registered() -> None:
    assert "xattention" in available_prefill_maskers()
    assert prefill_config_from_dict("xattention", {"stride": 16}) == XAttentionConfig(stride=16)


def test_no_query_by_key_tensor_at_16k() -> None:
    length = 16384
    inputs = make_inputs(length, length, heads=2, kv_heads=1, dim=16)
    inputs = dataclasses.replace(inputs, budget_bytes=16 * 2**20)
    with LargestTensor() as mode:
        blocks = create_prefill_masker(XAttentionConfig()).select(inputs).blocks
    assert blocks.shape == (1, 2, 128, 128)
    assert mode.largest <= length * length // 64, (mode.largest, mode.op)
