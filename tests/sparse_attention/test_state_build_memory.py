"""State builds stay below the size of K: no op of a build outputs a float tensor (an fp32 copy
or projection of the keys) larger than a share of the bytes of the bf16 keys, and a state
stored in a smaller dtype selects exactly what the fp32 one did."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from sparse_attention_hub.sparse_attention import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import MaskerConfig, create_masker
from sparse_attention_hub.sparse_attention.maskers.h2o import H2OConfig
from sparse_attention_hub.sparse_attention.maskers.knorm import KNormConfig
from sparse_attention_hub.sparse_attention.maskers.pyramidkv import PyramidKVConfig
from sparse_attention_hub.sparse_attention.maskers.snapkv import SnapKVConfig
from sparse_attention_hub.sparse_attention.maskers.socket_top_k import SocketConfig
from sparse_attention_hub.sparse_attention.maskers.tova import TOVAConfig

H, HKV, D, K = 4, 2, 64, 1024


class LargestNew(TorchDispatchMode):
    """Records the bytes of the largest tensor an op outputs that is not a view of one of its
    inputs, among those ``keep`` accepts."""

    def __init__(self, keep: Callable[[torch.Tensor], bool]) -> None:
        super().__init__()
        self.keep = keep
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        given = {
            t.untyped_storage().data_ptr()
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for leaf in tree_leaves(out):
            if not isinstance(leaf, torch.Tensor) or not self.keep(leaf):
                continue
            if leaf.untyped_storage().data_ptr() not in given:
                self.largest = max(self.largest, leaf.numel() * leaf.element_size())
        return out


def LargestFloat() -> LargestNew:
    """The largest new floating-point tensor (an fp32 copy or projection of the keys)."""
    return LargestNew(lambda t: t.is_floating_point())


def LargestInt64() -> LargestNew:
    """The largest new int64 tensor (a sort's indices)."""
    return LargestNew(lambda t: t.dtype == torch.int64)


def largest_float(fn: Callable[[], Any]) -> int:
    with LargestFloat() as mode:
        fn()
    return mode.largest


def bf16_inputs(q_len: int = 1, seed: int = 0) -> AttentionInputs:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, H, q_len, D, generator=g).bfloat16()
    k = torch.randn(1, HKV, K, D, generator=g).bfloat16()
    v = torch.randn(1, HKV, K, D, generator=g).bfloat16()
    return AttentionInputs(q, k, v, None, layer_idx=0)


EVICTION = [
    KNormConfig(0.5),
    SnapKVConfig(0.5),
    TOVAConfig(0.5),
    H2OConfig(0.5),
    PyramidKVConfig(0.5, num_layers=1),
]


@pytest.mark.parametrize("config", EVICTION, ids=lambda c: type(c).__name__)
def test_an_eviction_build_never_upcasts_more_than_half_of_k(config: MaskerConfig) -> None:
    inputs = bf16_inputs()
    masker = create_masker(config)
    k_bytes = inputs.keys.numel() * inputs.keys.element_size()
    assert largest_float(lambda: masker.build_state(inputs)) <= k_bytes // 2


def test_a_socket_build_projects_at_most_an_eighth_of_k_at_once() -> None:
    inputs = bf16_inputs()
    masker = create_masker(SocketConfig(heavy_size=16, lsh_k=3, lsh_l=4))
    k_bytes = inputs.keys.numel() * inputs.keys.element_size()
    largest = largest_float(lambda: masker.build_state(inputs))
    state = masker.build_state(inputs)
    # the (B, Hkv, K) fp32 value norms are the state's; every temporary is below K / 8
    assert largest <= max(k_bytes // 8, state.value_norms.numel() * 4)


def test_a_magicpig_build_sorts_and_measures_runs_over_chunks_of_tables() -> None:
    from sparse_attention_hub.sparse_attention.maskers import lsh_index
    from sparse_attention_hub.sparse_attention.maskers.magicpig import MagicPigConfig

    g = torch.Generator().manual_seed(0)
    keys = torch.randn(1, HKV, 8192, 16, generator=g)
    inputs = AttentionInputs(torch.randn(1, H, 1, 16, generator=g), keys, keys, layer_idx=0)
    masker = create_masker(MagicPigConfig())  # 150 tables: 2.4M codes
    masker.build_chunk_bytes = 1 << 20  # type: ignore[attr-defined]
    largest = LargestInt64()
    with largest:
        state = masker.build_state(inputs)
    assert state.index.order.dtype == torch.int16  # the state is int16 (8192 keys)
    # the sort's int64 indices of one chunk of tables bound every int64 temporary
    assert largest.largest <= lsh_index.SORT_ELEMENTS * 8 < HKV * 150 * 8192 * 8


def ds_masker(tmp_path, bits: int):  # type: ignore[no-untyped-def]
    from sparse_attention_hub.sparse_attention.maskers.double_sparsity import (
        DoubleSparsityConfig,
    )
    from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
        random_channel_table,
        write_channel_file,
    )

    path = write_channel_file(tmp_path / "ch.json", random_channel_table(1, H, HKV, D))
    return create_masker(DoubleSparsityConfig(16, str(path), label_bits=bits))


@pytest.mark.parametrize("bits", [4, 16])
def test_the_double_sparsity_state_is_compact_and_built_in_chunks(tmp_path, bits):
    """The state is the labels' levels with each vector's fp32 low and scale (bits < 16) or
    the label channels in the keys' dtype (16), with room to decode, under 0.375x the bf16 K
    here (fp32 labels: 0.5x plus room), and the build's temporaries are chunks of at most an
    eighth of K."""
    inputs = bf16_inputs()
    masker = ds_masker(tmp_path, bits)
    k_bytes = inputs.keys.numel() * inputs.keys.element_size()
    largest = largest_float(lambda: masker.build_state(inputs))
    state = masker.build_state(inputs)
    h_c, r = masker.channels(inputs).shape
    dtypes = [part.dtype for part in state.parts]
    assert dtypes == (
        [torch.uint8, torch.float32, torch.float32] if bits < 16 else [torch.bfloat16]
    )
    assert state.buffer.shape[1:2] + state.buffer.shape[3:] == (h_c, r)
    assert state.buffer.shape[2] <= inputs.keys.shape[2] * 9 // 8 + 256  # room for decoding
    stored = sum(part.numel() * part.element_size() for part in state.parts)
    assert stored <= 0.375 * k_bytes
    widest = max(part.numel() * part.element_size() for part in state.parts)
    assert largest <= max(k_bytes // 8, widest)  # the state's own buffers, or a chunk


@pytest.mark.parametrize("bits", [4, 16])
@pytest.mark.parametrize("chunk_bytes", [64 << 20, 256 * H * 8 * 4])  # 1 or 4 chunks
def test_double_sparsity_scores_are_those_of_the_fp32_labels(tmp_path, bits, chunk_bytes):
    import dataclasses
    import math

    from sparse_attention_hub.sparse_attention.maskers.double_sparsity import (
        pseudo_quantize,
        select_channels,
    )

    inputs = dataclasses.replace(bf16_inputs(q_len=3), kv_chunk_bytes=chunk_bytes)
    masker = ds_masker(tmp_path, bits)
    channels = masker.channels(inputs)  # (H, r)
    labels = pseudo_quantize(select_channels(inputs.keys, channels).float(), bits)
    q = pseudo_quantize(select_channels(inputs.queries, channels).float(), bits)
    expected = (q @ labels.transpose(-1, -2)).div_(math.sqrt(channels.shape[1]))
    scores = masker.score(inputs)
    if bits == 16:  # the labels themselves, upcast: the same product
        assert torch.equal(scores, expected)
    else:  # (q . level) / scale + (sum of q) * low: the same sum in another order
        torch.testing.assert_close(scores, expected, rtol=1e-6, atol=1e-6)
    whole = masker.score(dataclasses.replace(inputs, kv_chunk_bytes=64 << 20))
    assert torch.equal(scores, whole)  # chunks of >= 256 keys: the scores of one product


@pytest.mark.parametrize("bits", [1, 4, 8, 12])
def test_stored_levels_rebuild_the_official_fake_quantised_labels_bit_for_bit(bits: int) -> None:
    from sparse_attention_hub.sparse_attention.maskers.double_sparsity_labels import (
        dequantize,
        quantize,
    )

    x = torch.randn(2, 4, 300, 16, generator=torch.Generator().manual_seed(bits)) * 3
    x[0, 0, 0] = 1.5  # a constant vector
    levels = 2**bits - 1
    low, high = torch.aminmax(x, dim=-1, keepdim=True)
    span = high - low
    scale = levels / torch.where(span == 0, torch.ones_like(span), span)
    official = (x - low).mul_(scale).round_().clamp_(0, levels).div_(scale).add_(low)
    assert torch.equal(dequantize(*quantize(x, bits)), official)
