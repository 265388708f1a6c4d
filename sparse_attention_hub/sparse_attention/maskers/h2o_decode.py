"""H2O's decode-time eviction (``h2o`` with ``decode_eviction: true``): the heavy-hitter cache.

Follows the official code's ``H2OKVCache_LayerWise`` (``h2o_hf/utils_real_drop/
modify_llama.py``): every cached key carries its accumulated attention score, each step adds
the attention its queries gave to every cached key, and the cache keeps ``heavy`` heavy
hitters plus the ``recent`` most recent keys, evicting the lowest-scored key outside the
recent window.

Here a key's score starts as the column sum of the context prefill's attention (the scores
the prefill decision used, before the recent window was lifted above them); every later call
adds, per key of the call, the softmax weights the call's queries gave it (causal, over the
keys they may see: the survivors and the call's own keys), summed over the queries and averaged
over the G query heads of its KV head. The cache budget per KV head is the kept context size
``n_kept`` (the compression ratio applied to the context), ``recent = int(n_kept *
recent_ratio)`` of it the most recent keys. At the start of each call, before its attention,
the keys added since the cache last held its budget (the previous call's keys, or the
question's after a query-aware decision) are evicted again, per KV head: as many keys as were
added, the lowest-scored among the kept keys before the last ``recent`` (ties evict the latest
first). That is the official order: a step attends over the cache plus its own keys, then the
cache is cut back to the budget. An evicted key is never attended again.

The state keeps the decision's keep and scores, so a rollback to the decision point (the
context end, where the adapter rolls back) restores them exactly.
"""

from __future__ import annotations

import dataclasses

import torch

from sparse_attention_hub.sparse_attention.attention import attention_scores, guarded_softmax
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.eviction import EvictionState
from sparse_attention_hub.sparse_attention.maskers.snapkv import WINDOW_BLOCK_BYTES
from sparse_attention_hub.sparse_attention.maskers.topk import top_k_earliest


@dataclasses.dataclass(frozen=True)
class H2ODecodeState(EvictionState):
    """An :class:`EvictionState` that keeps evicting while the request decodes.

    Attributes:
        scores: (B, Hkv, n) fp32 accumulated attention of the state's keys (``keep``'s keys).
        recent: the most recent keys every eviction keeps (per KV head).
        evicted_to: absolute position just after the last key the cache held when it last
            held its budget; the keys after it are evicted at the next call.
        decided_at: absolute position just after the keys of the decision (a rollback to it
            restores ``decided_keep`` and ``decided_scores``).
        decided_keep, decided_scores: (B, Hkv, decided_at - first) the decision's state.
    """

    scores: torch.Tensor | None = None
    recent: int = 0
    evicted_to: int = 0
    decided_at: int = 0
    decided_keep: torch.Tensor | None = None
    decided_scores: torch.Tensor | None = None


def call_attention_sums(inputs: AttentionInputs, keep: torch.Tensor) -> torch.Tensor:
    """(B, Hkv, K) fp32: the softmax weights the queries (B, H, Q, D) of ``inputs`` give each
    of its keys, summed over the queries and averaged over the G query heads of each KV head.

    A query sees the keys ``keep`` (B, Hkv, K) allows, at or before its position, that the
    call's attention mask allows. Computed in blocks of query rows (a decode call: one block);
    the same ops at any K, and no host read."""
    b, h, q, _ = inputs.queries.shape
    kv_heads, k = inputs.keys.shape[1], inputs.keys.shape[2]
    assert inputs.query_start is not None  # set in __post_init__
    total = torch.zeros(b, h, k, dtype=torch.float32, device=inputs.queries.device)
    kept = inputs.per_query_head(keep)[:, :, None, :]  # (B, H, 1, K)
    model = inputs.allowed_keys()  # broadcastable to (B, H, Q, K), or None
    key_pos = inputs.key_positions()  # (K,)
    rows = max(1, WINDOW_BLOCK_BYTES // max(1, b * h * k * 4))
    for start in range(0, q, rows):
        block = inputs.queries[:, :, start : start + rows]  # (B, H, r, D)
        q_pos = torch.arange(block.shape[2], device=key_pos.device) + inputs.query_start + start
        allowed = kept & (key_pos[None, :] <= q_pos[:, None])  # (B, H, r, K)
        if model is not None:
            per_row = model.dim() >= 2 and model.shape[-2] == q > 1
            allowed = allowed & (model[..., start : start + rows, :] if per_row else model)
        scores = attention_scores(
            block, inputs.keys, inputs.scaling, allowed, inputs.softcap, inputs.kv_chunk_bytes
        )  # (B, H, r, K)
        total += guarded_softmax(scores, None, in_place=True).sum(dim=2)
    return total.view(b, kv_heads, h // kv_heads, k).mean(2)  # (B, Hkv, K)


def evict_lowest(keep: torch.Tensor, scores: torch.Tensor, recent: int, count: int) -> torch.Tensor:
    """(B, Hkv, n) bool: ``keep`` less, per (B, Hkv) row, the ``count`` lowest ``scores``
    (B, Hkv, n) among its kept keys before the last ``recent``; ties evict the latest first.
    No host read."""
    n = keep.shape[-1]
    count = min(count, n)
    if count <= 0:
        return keep
    position = torch.arange(n, device=keep.device)  # (n,)
    candidates = keep & (position < n - recent)  # (B, Hkv, n)
    lowest = torch.where(candidates, -scores, float("-inf")).flip(-1)  # latest first
    evicted = top_k_earliest(lowest, count).flip(-1)  # (B, Hkv, n)
    return keep & ~evicted


def decode_step(state: H2ODecodeState, inputs: AttentionInputs, new_keys: int) -> H2ODecodeState:
    """``state`` for the call ``inputs``: the keys added since the cache last held its budget
    evicted, the call's ``new_keys`` added (kept), then the call's attention over its keys
    added to their scores."""
    assert state.keep is not None and state.scores is not None
    end = state.first + state.keep.shape[-1]  # the state's keys before this call
    keep = evict_lowest(state.keep, state.scores, state.recent, end - state.evicted_to)
    b, kv_heads = keep.shape[:2]
    device = keep.device
    keep = torch.cat([keep, torch.ones(b, kv_heads, new_keys, dtype=torch.bool, device=device)], 2)
    scores = torch.cat([state.scores, torch.zeros(b, kv_heads, new_keys, device=device)], 2)
    own = inputs.key_offset - state.first  # the state's index of the call's first key
    scores[:, :, own:] += call_attention_sums(inputs, keep[:, :, own:])
    return dataclasses.replace(state, keep=keep, scores=scores, evicted_to=end)


def truncate_decoded(state: H2ODecodeState, start: int, stop: int) -> H2ODecodeState:
    """``state`` cut to its keys ``[start, stop)``, where ``first + stop`` is at or after the
    decision: the decision's keep and scores at the decision point, else the evictions made and
    the scores accumulated so far (a cut inside the decoded keys cannot take back the attention
    of the queries it drops: the adapter only rolls back to the context)."""
    end = state.first + stop
    if end == state.decided_at:
        assert state.decided_keep is not None and state.decided_scores is not None
        keep, scores = state.decided_keep, state.decided_scores
        evicted_to = state.context_end if state.context_end is not None else end
    else:
        assert state.keep is not None and state.scores is not None
        keep, scores, evicted_to = state.keep, state.scores, min(state.evicted_to, end)
    assert state.decided_keep is not None and state.decided_scores is not None
    return dataclasses.replace(
        state,
        keep=keep[:, :, start:stop],
        scores=scores[:, :, start:stop],
        first=state.first + start,
        evicted_to=evicted_to,
        decided_keep=state.decided_keep[:, :, start:],
        decided_scores=state.decided_scores[:, :, start:],
    )


def pad_front(state: H2ODecodeState, n: int) -> H2ODecodeState:
    """``state`` with ``n`` kept keys of score 0 before its first (the keys a sliding window
    dropped from the call that built it), starting ``n`` positions earlier."""
    if n <= 0:
        return state
    assert state.keep is not None and state.scores is not None
    assert state.decided_keep is not None and state.decided_scores is not None
    b, kv_heads, device = state.keep.shape[0], state.keep.shape[1], state.keep.device
    ones = torch.ones(b, kv_heads, n, dtype=torch.bool, device=device)
    zeros = torch.zeros(b, kv_heads, n, device=device)
    return dataclasses.replace(
        state,
        keep=torch.cat([ones, state.keep], 2),
        scores=torch.cat([zeros, state.scores], 2),
        decided_keep=torch.cat([ones, state.decided_keep], 2),
        decided_scores=torch.cat([zeros, state.decided_scores], 2),
        first=state.first - n,
    )
