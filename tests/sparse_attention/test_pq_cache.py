"""PQCache: k-means, PQ scores, the budget per KV head, determinism, ties, state and recall."""

from __future__ import annotations

import math

import pytest
import torch

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    MaskerStates,
    ResearchAttention,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.attention import masked_attention
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    PQCacheConfig,
    SinkMaskerConfig,
    create_masker,
)
from sparse_attention_hub.sparse_attention.maskers import kmeans as kmeans_module
from sparse_attention_hub.sparse_attention.maskers.kmeans import (
    cluster_sums,
    initial_indices,
    kmeans,
    nearest_centroid,
)
from sparse_attention_hub.sparse_attention.maskers.pq_cache import (
    PQCacheState,
    assign_codes,
    pq_scores,
)
from tests.support.captured import oracle_top, question_calls
from tests.support.tensors import random_qkv


def qkv(h: int, h_kv: int, q: int, k: int, d: int = 16, seed: int = 0):
    return random_qkv(h, h_kv, q, k, d, seed)


def pq_mask(config, q, k, v, previous=None, attention_mask=None, query_start=None):
    inputs = AttentionInputs(q, k, v, attention_mask, layer_idx=0, query_start=query_start)
    prev = Mask.create_empty(inputs.mask_shape) if previous is None else previous
    return create_masker(config).add_mask(inputs, prev).to_dense() > 0  # (B, H, Q, K)


def reconstructed_keys(state: PQCacheState) -> torch.Tensor:
    """(B, Hkv, K, D): every key replaced by its centroids, sub-vectors concatenated."""
    assert state.centroids is not None and state.codes is not None
    b, h, m, _, d = state.centroids.shape
    parts = [
        torch.gather(state.centroids[:, :, i], 2, state.codes[:, :, i, :, None].expand(b, h, -1, d))
        for i in range(m)
    ]
    return torch.cat(parts, dim=-1)


# ---------------------------------------------------------------------- k-means


def test_kmeans_recovers_well_separated_clusters_and_codes_are_nearest_centroids():
    g = torch.Generator().manual_seed(1)
    centres = torch.randn(3, 4, 5, generator=g) * 20  # 3 groups, 4 far-apart centres in 5-D
    labels = torch.arange(4).repeat_interleave(25)  # 100 points, 25 per cluster
    # Lloyd from a random init can merge two clusters (as sklearn's can): give the seeded
    # initial points one cluster each, so recovery is a test of the iterations, not of luck.
    labels[initial_indices(100, 4, seed=0, device=torch.device("cpu"))] = torch.arange(4)
    points = centres[:, labels] + 0.1 * torch.randn(3, 100, 5, generator=g)
    centroids, codes = kmeans(points, 4, iterations=20, seed=0)
    assert centroids.shape == (3, 4, 5) and codes.shape == (3, 100)
    for group in range(3):
        # each true cluster is exactly one code, and that code's centroid is its mean
        mapping = {int(label): int(codes[group, labels == label][0]) for label in range(4)}
        assert sorted(mapping.values()) == [0, 1, 2, 3]
        for label, code in mapping.items():
            assert torch.all(codes[group, labels == label] == code)
            mean = points[group, labels == label].mean(0)
            torch.testing.assert_close(centroids[group, code], mean, atol=1e-4, rtol=0)
    # codes are the nearest centroids by brute force
    brute = torch.cdist(points, centroids).argmin(-1)
    assert torch.equal(codes, brute)


def test_kmeans_converges_to_a_fixed_point_and_zero_iterations_keeps_the_seeded_points():
    points = torch.randn(2, 60, 3, generator=torch.Generator().manual_seed(2))
    centroids, codes = kmeans(points, 5, iterations=300, seed=3)
    for group in range(2):
        for c in range(5):
            members = points[group, codes[group] == c]
            if len(members):
                torch.testing.assert_close(centroids[group, c], members.mean(0))
    assert torch.equal(codes, nearest_centroid(points, centroids))
    start, _ = kmeans(points, 5, iterations=0, seed=3)
    chosen = torch.randperm(60, generator=torch.Generator().manual_seed(3))[:5]
    assert torch.equal(start, points[:, chosen])  # the same seeded indices in every group
    with pytest.raises(ValueError, match="count=5"):
        kmeans(points[:, :4], 5, iterations=1, seed=0)


@pytest.mark.parametrize("chunk", [1, 64 * 7, 2**23])
def test_nearest_centroids_in_blocks_of_points_equal_one_block(monkeypatch, chunk):
    g = torch.Generator().manual_seed(2)
    points, centroids = torch.randn(4, 300, 8, generator=g), torch.randn(4, 16, 8, generator=g)
    distance = torch.cdist(points, centroids)  # (N, n, C)
    whole = nearest_centroid(points, centroids)
    monkeypatch.setattr(kmeans_module, "DISTANCE_CHUNK_ENTRIES", chunk)
    assert torch.equal(nearest_centroid(points, centroids), whole)
    near = distance.gather(-1, whole.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(near, distance.amin(-1), atol=1e-5)


@pytest.mark.parametrize("scatter", [True, False])
def test_cluster_sums_by_scatter_and_by_one_hot_matmul_match_a_loop(scatter):
    g = torch.Generator().manual_seed(12)
    points = torch.randn(3, 50, 4, generator=g)
    codes = torch.randint(0, 6, (3, 50), generator=g)
    codes = torch.where(codes == 5, 0, codes)  # cluster 5 is empty
    sums, sizes = cluster_sums(points, codes, 6, scatter=scatter)
    for group in range(3):
        for c in range(6):
            members = points[group, codes[group] == c]
            assert float(sizes[group, c, 0]) == len(members)
            torch.testing.assert_close(sums[group, c], members.sum(0))


# ---------------------------------------------------------------------- scores and budget


def test_pq_scores_are_the_inner_products_with_the_reconstructed_keys():
    q, k, v = qkv(4, 2, 3, 80, seed=4)
    masker = create_masker(PQCacheConfig(8, pq_subvectors=4, pq_bits=3, init_offset=4))
    state = masker.build_state(AttentionInputs(q, k, v))
    assert state.centroids is not None and state.codes is not None
    assert state.centroids.shape == (1, 2, 4, 8, 4) and state.codes.shape == (1, 2, 4, 80)
    k_hat = reconstructed_keys(state).repeat_interleave(2, dim=1)  # (B, H, K, D)
    expected = (q @ k_hat.transpose(-1, -2)).reshape(1, 2, 2, 3, 80)  # (B, Hkv, G, Q, K)
    torch.testing.assert_close(pq_scores(q, state.centroids, state.codes), expected)


@pytest.mark.parametrize("h, h_kv", [(4, 4), (4, 2), (6, 2)])
@pytest.mark.parametrize("heavy", [10, 0.1])
def test_exactly_heavy_size_keys_per_row_one_selection_per_kv_head(h, h_kv, heavy):
    n_q, n_k, offset = 3, 200, 8
    q, k, v = qkv(h, h_kv, n_q, n_k, seed=5)
    inputs = AttentionInputs(q, k, v, layer_idx=0)
    sink_local = ResearchAttention.create_from_config(
        ResearchAttentionConfig([SinkMaskerConfig(offset), LocalMaskerConfig(16)])
    )
    previous = sink_local.build_mask(inputs)
    config = PQCacheConfig(heavy, pq_bits=4, init_offset=offset)
    active = pq_mask(config, q, k, v, previous)
    new = active & ~(previous.to_dense() > 0)
    want = int(heavy * n_k) if isinstance(heavy, float) else heavy
    assert (new.sum(-1) == want).all()
    grouped = new.reshape(1, h_kv, h // h_kv, n_q, n_k)
    assert (grouped == grouped[:, :, :1]).all()  # every head of a group shares the selection
    # the selection is the top of softmax(PQ score / sqrt(D)) over the candidates, group-summed
    state = create_masker(config).build_state(inputs)
    k_hat = reconstructed_keys(state).repeat_interleave(h // h_kv, dim=1)
    logits = (q @ k_hat.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (B, H, Q, K)
    candidates = ~(previous.to_dense() > 0)
    probs = torch.softmax(logits.masked_fill(~candidates, float("-inf")), -1)
    summed = probs.reshape(1, h_kv, h // h_kv, n_q, n_k).sum(2)  # (B, Hkv, Q, K)
    chosen = summed.masked_fill(~grouped[:, :, 0], float("inf")).amin(-1)
    dropped = summed.masked_fill(grouped[:, :, 0] | ~candidates[:, :: h // h_kv], -1).amax(-1)
    assert (chosen >= dropped - 1e-6).all()


@pytest.mark.parametrize("fill", ["bool", float("-inf")])
def test_forbidden_and_leading_keys_are_never_added(fill):
    q, k, v = qkv(4, 2, 4, 120, seed=6)
    allowed = torch.arange(120) <= torch.arange(100, 104).unsqueeze(-1)  # causal, at 100..103
    allowed = allowed & (torch.arange(120) % 3 != 1)  # and holes
    bias = allowed if fill == "bool" else torch.zeros(4, 120).masked_fill(~allowed, fill)
    config = PQCacheConfig(12, pq_bits=3, init_offset=10)
    active = pq_mask(config, q, k, v, attention_mask=bias[None, None], query_start=100)
    assert not (active & ~allowed).any()
    assert not active[..., :10].any()  # before init_offset: left to a sink masker
    assert (active.sum(-1) == 12).all()


@pytest.mark.parametrize("heavy", [150, 1.0])
def test_a_budget_of_at_least_k_is_dense_attention(heavy):
    q, k, v = qkv(4, 2, 3, 150, seed=7)
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([PQCacheConfig(heavy)]))
    out, _ = attn.custom_attention(None, q, k, v, None, layer_idx=0)
    dense, _ = masked_attention(q, k, v, None)
    torch.testing.assert_close(out, dense, atol=1e-5, rtol=0)


def test_too_few_keys_for_the_codebook_give_the_full_mask_for_the_request():
    config = PQCacheConfig(4, pq_bits=3, init_offset=2)  # 8 centroids need 9 fitted keys
    q, k, v = qkv(2, 2, 1, 11, seed=8)  # keys 2..9 precede the query: only 8
    assert pq_mask(config, q, k, v).all()
    q, k, v = qkv(2, 2, 1, 12, seed=8)  # 9 keys: a codebook, and a real selection
    assert (pq_mask(config, q, k, v).sum(-1) == 4).all()
    masker = create_masker(config)
    short = AttentionInputs(q, k[:, :, :11], v[:, :, :11])
    state = masker.build_state(short)
    assert state.centroids is None
    assert masker.extend_state(state, AttentionInputs(q, k, v), 1).centroids is None  # dense


def test_the_same_seed_gives_the_same_mask_and_ties_go_to_the_earlier_key():
    q, k, v = qkv(4, 2, 2, 300, seed=9)
    config = PQCacheConfig(20, pq_bits=4, init_offset=0, seed=5)
    assert torch.equal(pq_mask(config, q, k, v), pq_mask(config, q, k, v))
    masker = create_masker(config)
    other = create_masker(PQCacheConfig(20, pq_bits=4, init_offset=0, seed=6))
    inputs = AttentionInputs(q, k, v)
    assert not torch.equal(masker.build_state(inputs).codes, other.build_state(inputs).codes)
    # keys repeating 4 distinct vectors: whole runs of equal codes tie
    tied = k[:, :, :4].repeat(1, 1, 75, 1)
    active = pq_mask(PQCacheConfig(6, pq_bits=2, init_offset=3), q, tied, v)
    for row in active.reshape(-1, 300):
        picks = row.nonzero().flatten()
        assert len(picks) == 6 and int(picks.min()) >= 3
        codes_of_picks = picks % 4
        # per distinct vector, the earliest copies were taken
        for residue in codes_of_picks.unique():
            mine = picks[codes_of_picks == residue]
            first = 3 + (int(residue) - 3) % 4
            assert torch.equal(mine, first + 4 * torch.arange(len(mine)))


# ---------------------------------------------------------------------- state


def test_new_keys_are_assigned_to_the_existing_centroids_never_refit():
    q, k, v = qkv(2, 2, 1, 90, seed=10)
    masker = create_masker(PQCacheConfig(4, pq_bits=3, init_offset=2))
    state = masker.build_state(AttentionInputs(q, k[:, :, :60], v[:, :, :60]))
    far = k.clone()
    far[:, :, 60:] = far[:, :, 60:] * 100  # new keys far from every centroid
    longer = masker.extend_state(state, AttentionInputs(q.repeat(1, 1, 30, 1), far, v), 30)
    assert longer.centroids is state.centroids
    assert torch.equal(longer.codes[..., :60], state.codes)
    assert torch.equal(longer.codes[..., 60:], assign_codes(far[:, :, 60:], state.centroids))


def test_state_extends_truncates_and_rebuilds_like_the_rule():
    """Extended or truncated, the state holds the first build's centroids and every key's
    nearest code; a rebuild (the window moved before the state) equals a fresh build."""
    masker = create_masker(PQCacheConfig(3, pq_bits=2, init_offset=2))
    keys = torch.randn(1, 2, 60, 16, generator=torch.Generator().manual_seed(11))
    states = MaskerStates()
    fitted: dict[str, torch.Tensor] = {}

    def call(start: int, stop: int, n_q: int = 1) -> PQCacheState:
        inputs = AttentionInputs(
            keys[:, :, stop - n_q : stop].repeat(1, 2, 1, 1),
            keys[:, :, start:stop],
            keys[:, :, start:stop],
            layer_idx=0,
            query_start=stop - n_q,
        )
        state = states.read(masker, inputs)
        if "centroids" not in fitted:
            fitted["centroids"] = masker.build_state(inputs).centroids
        assert torch.equal(state.centroids, fitted["centroids"]), (start, stop)
        assert torch.equal(state.codes, assign_codes(inputs.keys, state.centroids))
        return state

    call(0, 20, n_q=4)  # the codebook: keys 2..15 (before the first query)
    call(0, 21)
    call(0, 30, n_q=9)
    states.truncate(24)  # a rollback
    call(0, 26, n_q=2)
    call(5, 33, n_q=7)  # a sliding window dropped keys 0..4: sliced, same centroids
    states.truncate(28)
    fitted.clear()
    call(1, 40, n_q=5)  # keys before the state's first: rebuilt, fitted on keys 2..34
    fresh = masker.build_state(
        AttentionInputs(
            keys[:, :, 35:40].repeat(1, 2, 1, 1),
            keys[:, :, 1:40],
            keys[:, :, 1:40],
            query_start=35,
            key_start=1,
        )
    )
    entry = states.entry(0, masker)
    assert entry is not None and torch.equal(entry.value.codes, fresh.codes)


def test_a_partial_rollback_fits_a_new_codebook_as_a_fresh_request_would():
    """A later context that shares only a prefix with the fitted one drops the codebook: cut
    below the fitted context's end, or extended by keys the state never saw before the call's
    queries (a dense prefill). The next call's state equals a fresh build on that call."""
    masker = create_masker(PQCacheConfig(3, pq_bits=2, init_offset=2))
    g = torch.Generator().manual_seed(12)
    keys = torch.randn(1, 2, 60, 16, generator=g)
    other = torch.cat([keys[:, :, :20], torch.randn(1, 2, 40, 16, generator=g)], dim=2)
    states = MaskerStates()

    def question(k: torch.Tensor, context: int, n_q: int = 4, first: int = 0) -> AttentionInputs:
        stop = context + n_q
        q, kv = k[:, :, context:stop].repeat(1, 2, 1, 1), k[:, :, first:stop]
        return AttentionInputs(q, kv, kv, layer_idx=0, query_start=context, key_start=first)

    def assert_fresh(inputs: AttentionInputs) -> None:
        state, fresh = states.read(masker, inputs), masker.build_state(inputs)
        assert state.centroids is not None and fresh.centroids is not None
        assert torch.equal(state.centroids, fresh.centroids)
        assert torch.equal(state.codes, fresh.codes)

    assert_fresh(question(keys, 30))  # the codebook: keys 2..29
    states.read(masker, question(keys, 34, 1))  # a decode step
    states.truncate(20)  # the next context shares 20 keys, then its own tail (20..39)
    assert_fresh(question(other, 40))
    states.truncate(30)  # a context that is a prefix of the last one: a cut, no new tail
    assert_fresh(question(other, 30))
    states.truncate(30)  # the context end: kept, but then extended by a dense prefill
    assert_fresh(question(other, 45))
    states.truncate(20)  # the same on a sliding window that dropped keys 0..4
    assert_fresh(question(keys, 40, first=5))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="pq_bits"):
        PQCacheConfig(8, pq_bits=0)
    with pytest.raises(TypeError, match="kmeans_iter"):
        PQCacheConfig(8, kmeans_iter=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heavy_size"):
        PQCacheConfig(-1)
    q, k, v = qkv(2, 2, 1, 80, d=15)
    with pytest.raises(ValueError, match="pq_subvectors=2 must divide the head size D=15"):
        pq_mask(PQCacheConfig(8), q, k, v)


# ---------------------------------------------------------------------- recall


def test_tiny_model_recall_of_the_oracle_top_k_beats_random_selection(tiny_gqa_model_dir):
    """Queries and keys of a real tiny GQA model's attention on a real prompt (question tokens
    over a long context), not i.i.d. noise: PQCache's keys hold more of the oracle top-k than
    the same number of random keys."""
    calls = question_calls(tiny_gqa_model_dir)
    budget, top = 64, 32
    g = torch.Generator().manual_seed(0)
    pq_hits = random_hits = total = 0.0
    for inputs in calls:
        scores = inputs.exact_scores()  # (B, H, Q, K)
        allowed = scores > float("-inf")
        oracle = oracle_top(scores, top)
        masker = create_masker(PQCacheConfig(budget, init_offset=0))
        active = masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape)).to_dense() > 0
        noise = torch.rand(scores.shape, generator=g).masked_fill(~allowed, -1.0)
        rand = torch.zeros_like(allowed).scatter_(-1, noise.topk(budget, -1).indices, True)
        pq_hits += float((active & oracle).sum())
        random_hits += float((rand & allowed & oracle).sum())
        total += float(oracle.sum())
    pq_recall, random_recall = pq_hits / total, random_hits / total
    print(f"pq_cache recall of the oracle top-{top}: {pq_recall:.3f}, random: {random_recall:.3f}")
    assert pq_recall > 1.5 * random_recall and pq_recall > random_recall + 0.15
