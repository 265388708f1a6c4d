"""k-means in fp32 blocks of points (issue 24): the same centroids and codes as one fp32 copy
of all points, bit for bit on the CPU, for PQCache's bf16 sub-vector view of the keys."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import PQCacheConfig, create_masker
from sparse_attention_hub.sparse_attention.maskers import kmeans as kmeans_module
from sparse_attention_hub.sparse_attention.maskers.kmeans import (
    blocked_cluster_sums,
    cluster_sums,
    kmeans,
)
from sparse_attention_hub.sparse_attention.maskers.pq_cache import (
    split_subvectors,
    subvector_view,
)


def _keys(n: int = 300, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 2, n, 16, generator=g).to(torch.bfloat16)  # (B, Hkv, n, D)


@pytest.mark.parametrize("chunk", [1, 8 * 37, 2**22])
def test_blocked_cluster_sums_equal_one_scatter_add(monkeypatch, chunk):
    keys = _keys()
    points = split_subvectors(keys, 2).float()  # (N, n, d) fp32, one copy
    codes = torch.randint(0, 8, points.shape[:2], generator=torch.Generator().manual_seed(1))
    whole = cluster_sums(points, codes, 8)
    monkeypatch.setattr(kmeans_module, "POINT_CHUNK_ENTRIES", chunk)
    blocked = blocked_cluster_sums(subvector_view(keys, 2), codes, 8)
    assert torch.equal(blocked[0], whole[0]) and torch.equal(blocked[1], whole[1])


@pytest.mark.parametrize("chunk", [1, 8 * 37, 2**22])
def test_kmeans_on_a_bf16_view_in_blocks_equals_kmeans_on_an_fp32_copy(monkeypatch, chunk):
    keys = _keys()
    reference = kmeans(split_subvectors(keys, 2).float(), 8, iterations=10, seed=0)
    monkeypatch.setattr(kmeans_module, "POINT_CHUNK_ENTRIES", chunk)
    monkeypatch.setattr(kmeans_module, "DISTANCE_CHUNK_ENTRIES", max(1, chunk))
    centroids, codes = kmeans(subvector_view(keys, 2), 8, iterations=10, seed=0)
    assert torch.equal(centroids, reference[0]) and torch.equal(codes, reference[1])


def test_pq_cache_state_is_the_same_in_small_blocks(monkeypatch):
    keys = _keys(n=400, seed=3)
    query = torch.randn(1, 4, 1, 16, generator=torch.Generator().manual_seed(4))
    inputs = AttentionInputs(query.to(torch.bfloat16), keys, keys, layer_idx=0)
    masker = create_masker(PQCacheConfig(heavy_size=0.1, pq_bits=3, init_offset=4))
    whole = masker.build_state(inputs)
    monkeypatch.setattr(kmeans_module, "POINT_CHUNK_ENTRIES", 50)
    monkeypatch.setattr(kmeans_module, "DISTANCE_CHUNK_ENTRIES", 50)
    blocked = masker.build_state(inputs)
    assert whole.centroids is not None and blocked.centroids is not None
    assert torch.equal(blocked.centroids, whole.centroids)
    assert torch.equal(blocked.codes, whole.codes)
