"""PQCache: top-k keys by product-quantised scores, one selection per KV head.

Zhang et al., 2024, "PQCache: Product Quantization-based KVCache for Long Context LLM
Inference" (SIGMOD 2025; official code HugoZHL/PQCache, ``vq_method/retrieval_based/
pq_search.py``, the ``euc`` metric and GQA path of ``run_llama.sh``):

- Once per layer per context (see State below), every KV head's keys after the first
  ``init_offset`` (32) positions are cut into ``pq_subvectors`` (2) sub-vectors of D / M
  channels, and each (KV head, sub-vector) gets its own k-means codebook of ``2**pq_bits``
  (64) centroids, ``kmeans_iter`` Lloyd iterations, seeded (``maskers/kmeans.py``, one
  batched computation).
- A key's code is its nearest centroid per sub-vector. New keys are assigned, never re-fitted.
- A query head's PQ score of key j is sum_m q_m . c_m[code_m(j)] (one table of q . centroid
  per sub-vector, gathered by the codes). Each query head's scores go through a softmax with
  scale 1 / sqrt(D) over the candidate keys; the probabilities are summed over the query heads
  of a GQA group, and the top ``heavy_size`` of the sum are kept: **one top-k per KV head**,
  shared by all query heads of the group.
- Too few keys to fit the codebook (no more than ``2**pq_bits`` keys after ``init_offset``
  precede the call's queries, the official ``n_xb > cent_cnt`` test) gives the **full mask**
  (dense attention) until the state is built again (a new request or a partial rollback),
  as the official code stays dense for a request whose prefill was too short.

Budget. The official budget is split half top-k, half recent window (``recent_ratio`` 0.5),
after ``sink_size`` = 32 sink tokens. The recipe writes that as sink + local + pq_cache
(``examples/pq_cache.yaml``): keys already active in ``previous_mask`` (the sink and the
window) are not candidates, exactly as the official candidates are the keys between the sink
and the recent window. Keys before ``init_offset`` have no code in the official code and are
never candidates here either: a sink masker of ``init_offset`` tokens keeps them.

Four keys per KV head, heavy_size 2, M = 2 sub-vectors, codes drawn as centroid ids::

    codes (m=0)   3 1 1 0     table q.c (m=0)  c0 .2  c1 .9  c2 .1  c3 .5
    codes (m=1)   2 0 2 2     table q.c (m=1)  c0 .7  c1 .1  c2 .0  c3 .3
    PQ score      .5 1.6 .9 .2  -> softmax per head, summed over the group -> keys 1, 2

Differences from the official code, all written down here:

- Codebook keys. The official prefill (context and question, densely) fits on every prefill
  key after the sink. Here the context is prefilled densely and the question tokens go through
  the sparse path, so the codebook is fitted on the keys that precede the first query of the
  call that builds the state (the context), and the call's own keys are assigned. This keeps
  the rollback law: every question of a request sees the same codebook.
- Iterations. ``kmeans_iter`` is fixed (10, the official needle-in-a-haystack setting,
  ``test_nah.py``); the official LongBench runs (``max_iter`` 0) pick 3 to 300 iterations from
  a timing model of the hardware so that k-means hides under the prefill, which no fixed seed
  reproduces. Lloyd stops early once no assignment changes (sklearn also stops on a centre
  shift below ``tol`` 1e-4). Initial centroids are the keys at the same seeded indices in every
  group, as the official workers draw them, but from ``torch.randperm`` rather than numpy.
  A cluster that loses every key keeps its centroid (sklearn moves it to a far point).
- Arithmetic in fp32 (the official code scores in fp16); the scale is 1 / sqrt(D) as in the
  official code, not the model's ``scaling``; a soft cap and sink logits are not applied.
- The official code decodes one token at a time; a multi-token call (question tokens)
  selects per query row. Batches of any size are supported (the official code needs B = 1).
- ``heavy_size`` as a float is a fraction of each call's K; the official top-k size is fixed at
  prefill from the prefill length.
- Candidates: a key active in ``previous_mask`` for any query head of the group, or forbidden
  by the attention mask for any of them, is not a candidate, so every row gains exactly
  ``heavy_size`` keys (fewer only when fewer candidates exist) and never a forbidden key.
- A budget >= K keeps every key (dense attention).
- Sliding-window layers (not in the official models) fit on the keys the call holds.

Ties: equal summed scores (keys with the same codes tie) are broken by position, the earlier
key first, so the same inputs always give the same mask.

State (through the ``StatefulMasker`` contract): :class:`PQCacheState`, the centroids and one
code per key of the call (keys before ``init_offset`` are coded too but never scored). New
keys are assigned and appended; a sliding window slices the codes and keeps the centroids, and
so does a rollback to the end of the context the codebook was fitted on (the next question on
the same context). A **partial rollback** (a later context that shares only a prefix with that
one: the cache is cut below the end of the fitted context, or a dense prefill adds context keys
the state never saw before the next call's queries) drops the codebook: the next call fits a
new one on the keys before its own queries, exactly as a fresh request would, at the cost of
another k-means. A state built again later (a new request, or a window that moved before the
state's first key) also fits on the keys that precede that call's queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    MaskerConfig,
    Size,
    check_size,
)
from sparse_attention_hub.sparse_attention.maskers.kmeans import kmeans, nearest_centroid
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker
from sparse_attention_hub.sparse_attention.maskers.topk import budget_or_mask, top_k_earliest


@dataclass(frozen=True)
class PQCacheConfig(MaskerConfig):
    """``heavy_size``: int tokens or float fraction of K (the top-k half of the official
    budget); ``pq_subvectors``: sub-vectors per key (2); ``pq_bits``: log2 of the centroids per
    codebook (6 = 64); ``kmeans_iter``: Lloyd iterations (10); ``init_offset``: leading
    positions never coded nor selected (32, the official sink); ``seed``: k-means init."""

    heavy_size: Size
    pq_subvectors: int = 2
    pq_bits: int = 6
    kmeans_iter: int = 10
    init_offset: int = 32
    seed: int = 0
    # 1: a partial rollback (contexts sharing a prefix) fits a new codebook
    revision: ClassVar[int] = 1

    def __post_init__(self) -> None:
        check_size(self, "heavy_size", self.heavy_size, minimum=1)
        for field, low, high in (
            ("pq_subvectors", 1, None),
            ("pq_bits", 1, 16),
            ("kmeans_iter", 0, None),
            ("init_offset", 0, None),
            ("seed", 0, None),
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"PQCacheConfig.{field} must be an int, got {value!r}")
            if value < low or (high is not None and value > high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"PQCacheConfig.{field} must be {allowed}, got {value}")


@dataclass(frozen=True)
class PQCacheState:
    """``centroids`` (B, Hkv, M, C, D / M) fp32 and ``codes`` (B, Hkv, M, K) int64, one code
    per key of the call; both None when too few keys were there to fit the codebook.
    ``context_end``: the absolute position of the first query of the call that built the
    state (the codebook was fitted on the keys before it); [``start``, ``end``): the absolute
    positions of the keys the state covers."""

    centroids: torch.Tensor | None
    codes: torch.Tensor | None
    context_end: int
    start: int
    end: int


def split_subvectors(keys: torch.Tensor, m: int) -> torch.Tensor:
    """Keys (B, Hkv, n, D) as (B * Hkv * M, n, D / M) sub-vectors, groups ordered (B, Hkv, M)."""
    b, h, n, d = keys.shape
    sub = keys.reshape(b, h, n, m, d // m).permute(0, 1, 3, 2, 4)  # (B, Hkv, M, n, D / M)
    return sub.reshape(b * h * m, n, d // m)


def subvector_view(keys: torch.Tensor, m: int) -> torch.Tensor:
    """Keys (B, Hkv, n, D) as a (B, Hkv, M, n, D / M) view of sub-vectors (no copy): the
    k-means reads it in fp32 blocks of keys (``maskers/kmeans.py``)."""
    d = keys.shape[-1]
    return keys.unflatten(-1, (m, d // m)).permute(0, 1, 3, 2, 4)  # (B, Hkv, M, n, D / M)


def assign_codes(keys: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Nearest-centroid codes (B, Hkv, M, n) int64 of keys (B, Hkv, n, D) for centroids
    (B, Hkv, M, C, D / M)."""
    b, h, m, c, sub_d = centroids.shape
    codes = nearest_centroid(
        subvector_view(keys, m), centroids.reshape(b * h * m, c, sub_d)
    )  # (B * Hkv * M, n)
    return codes.reshape(b, h, m, keys.shape[2])


def pq_scores(
    queries: torch.Tensor, centroids: torch.Tensor, codes: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    """PQ inner products times ``scale``: (B, Hkv, G, Q, K) fp32 for queries (B, H, Q, D),
    centroids (B, Hkv, M, C, D / M) and codes (B, Hkv, M, K); query head h reads KV head
    h // G. One (G * Q, C) table of q . centroid per sub-vector, gathered by the codes."""
    b, h, n_q, _ = queries.shape
    _, h_kv, m, _, sub_d = centroids.shape
    group = h // h_kv
    q = (queries.float() * scale).reshape(b, h_kv, group * n_q, m, sub_d).transpose(2, 3)
    table = q @ centroids.transpose(-1, -2)  # (B, Hkv, M, G * Q, C)
    n_k = codes.shape[-1]
    scores = table[:, :, 0].gather(
        -1, codes[:, :, 0].unsqueeze(2).expand(b, h_kv, group * n_q, n_k)
    )
    for i in range(1, m):  # (B, Hkv, G * Q, K), summed one sub-vector at a time
        index = codes[:, :, i].unsqueeze(2).expand(b, h_kv, group * n_q, n_k)
        scores += table[:, :, i].gather(-1, index)
    return scores.reshape(b, h_kv, group, n_q, n_k)


def group_probabilities(logits: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """softmax(logits) over each query head's candidate keys, summed over the group:
    (B, Hkv, Q, K) for logits (B, Hkv, G, Q, K) and candidates (B, Hkv, Q, K) bool; -inf at
    every non-candidate key. ``logits`` is overwritten (no third (B, H, Q, K) tensor)."""
    # The lowest finite value, not -inf: a row with no candidate stays finite (and is
    # discarded below), a row with one gets exactly 0 at the others.
    low = torch.finfo(logits.dtype).min
    probs = torch.softmax(logits.masked_fill_(~candidates.unsqueeze(2), low), dim=-1)
    return probs.sum(2).masked_fill_(~candidates, float("-inf"))  # (B, Hkv, Q, K)


@register_masker(
    "pq_cache",
    "Zhang et al., 2024, 'PQCache: Product Quantization-based KVCache for Long Context LLM "
    "Inference' (HugoZHL/PQCache): per KV head, the heavy_size keys with the highest "
    "softmax of product-quantised q.k summed over the GQA group (k-means once per request).",
)
class PQCacheMasker(StatefulMasker[PQCacheState]):
    """Product-quantised top-k per KV head (see the module for the rule and every deviation)."""

    config_class = PQCacheConfig
    config: PQCacheConfig

    # ------------------------------------------------------------------ state contract

    def build_state(self, inputs: AttentionInputs) -> PQCacheState:
        """Fit the codebooks on the keys after ``init_offset`` that precede the first query;
        code every key of the call."""
        cfg, keys = self.config, inputs.keys
        head_dim = keys.shape[-1]
        if head_dim % cfg.pq_subvectors:
            raise ValueError(
                f"PQCacheConfig.pq_subvectors={cfg.pq_subvectors} must divide the head size "
                f"D={head_dim}"
            )
        assert inputs.query_start is not None  # set in AttentionInputs.__post_init__
        offset, n_keys = inputs.key_offset, keys.shape[2]
        first = min(n_keys, max(0, cfg.init_offset - offset))
        stop = min(n_keys, max(0, inputs.query_start - offset))
        count = 2**cfg.pq_bits
        span = (inputs.query_start, offset, inputs.sequence_length)
        if stop - first <= count:
            return PQCacheState(None, None, *span)
        b, h_kv, _, _ = keys.shape
        fit = subvector_view(keys[:, :, first:stop], cfg.pq_subvectors)  # (B,Hkv,M,n,D/M)
        centroids, _ = kmeans(fit, count, cfg.kmeans_iter, cfg.seed)
        centroids = centroids.reshape(b, h_kv, cfg.pq_subvectors, count, -1)  # (B,Hkv,M,C,D/M)
        return PQCacheState(centroids, assign_codes(keys, centroids), *span)

    def extend_state(
        self, state: PQCacheState, inputs: AttentionInputs, new_keys: int
    ) -> PQCacheState:
        """Assign the new keys to the existing centroids (never re-fit), unless the context
        the codebook was fitted on changed: a rollback cut into it, or keys the state never
        saw precede the call's queries (a dense prefill extended the context). Then the state
        is built again from this call, as a fresh request's (codes padded at the front to the
        keys the caller expects; those keys are cut right after)."""
        assert inputs.query_start is not None  # set in AttentionInputs.__post_init__
        if state.end < state.context_end or inputs.query_start > state.end:
            return self._rebuilt(state, inputs)
        end = inputs.sequence_length
        if state.centroids is None or state.codes is None:
            return replace(state, end=end)
        new = assign_codes(inputs.keys[:, :, inputs.keys.shape[2] - new_keys :], state.centroids)
        return replace(state, codes=torch.cat([state.codes, new], dim=-1), end=end)

    def _rebuilt(self, state: PQCacheState, inputs: AttentionInputs) -> PQCacheState:
        """A fresh state of ``inputs``, covering the keys from ``state.start`` on."""
        fresh = self.build_state(inputs)
        missing = fresh.start - state.start
        if missing <= 0:
            return fresh
        if fresh.codes is None:
            return replace(fresh, start=state.start)
        pad = fresh.codes.new_zeros((*fresh.codes.shape[:3], missing))  # never scored
        return replace(fresh, codes=torch.cat([pad, fresh.codes], dim=-1), start=state.start)

    def truncate_state(self, state: PQCacheState, start: int, stop: int) -> PQCacheState:
        """Keep the codes of keys [start, stop) and the centroids (the next extension builds
        the state again when the cut went below ``context_end``)."""
        codes = None if state.codes is None else state.codes[..., start:stop]
        return replace(state, codes=codes, start=state.start + start, end=state.start + stop)

    # ------------------------------------------------------------------ selection

    def candidates(self, inputs: AttentionInputs, previous_mask: Mask) -> torch.Tensor:
        """(B, Hkv, Q, K) bool: keys at positions >= ``init_offset`` that every query head of
        the group may attend to and that none of them has active yet."""
        shape = inputs.mask_shape
        b, h, n_q, n_k = shape
        h_kv = inputs.keys.shape[1]
        blocked = inputs.key_positions() < self.config.init_offset  # (K,)
        allowed = inputs.allowed_keys()
        if allowed is not None:
            blocked = blocked | ~allowed  # (B|1, H|1, Q|1, K)
        active = previous_mask.active()
        if active is not None:
            blocked = blocked | active
        blocked = blocked.expand(shape).reshape(b, h_kv, h // h_kv, n_q, n_k)  # (B,Hkv,G,Q,K)
        return ~blocked.any(2)  # (B, Hkv, Q, K)

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus each KV head's top ``heavy_size`` candidates, given to every
        query head of its group."""
        shape, device = inputs.mask_shape, inputs.keys.device
        k, done = budget_or_mask(self.config.heavy_size, inputs, previous_mask)
        if done is not None:
            return done
        state = self.state(inputs)
        if state.centroids is None or state.codes is None:  # too few keys for a codebook
            return previous_mask.merge(Mask.create_full(shape, device=device))
        b, h, n_q, n_k = shape
        scale = 1.0 / math.sqrt(inputs.queries.shape[-1])
        logits = pq_scores(inputs.queries, state.centroids, state.codes, scale)  # (B,Hkv,G,Q,K)
        summed = group_probabilities(logits, self.candidates(inputs, previous_mask))
        selected = top_k_earliest(summed, k)  # (B, Hkv, Q, K)
        h_kv = selected.shape[1]
        active = selected.unsqueeze(2).expand(b, h_kv, h // h_kv, n_q, n_k)
        return previous_mask.with_active(active.reshape(b, h, n_q, n_k))


__all__ = [
    "PQCacheConfig",
    "PQCacheMasker",
    "PQCacheState",
    "assign_codes",
    "group_probabilities",
    "pq_scores",
    "split_subvectors",
    "subvector_view",
    "top_k_earliest",
]
