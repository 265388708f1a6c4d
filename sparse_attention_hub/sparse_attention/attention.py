"""The masked-attention computation: dense scores, a probability mask, one weighted softmax.

For query i and the active keys j of its row (mask entry p_ij > 0)::

    out_i = sum_j w_ij v_j / (sum_j w_ij + exp(sink_h - max_i)),   w_ij = exp(s_ij - max_i) / p_ij

with s_ij = scaling * q_i . k_j + attention_mask_ij. Writing w_ij = exp(s_ij - log p_ij - max_i)
turns this into a softmax over the logits ``s - log(p)`` (with -inf where p == 0: note the sign,
``-log(0)`` would be +inf). p = 1 everywhere is dense attention; top-k masks have p in {0, 1};
sampled keys with p < 1 get weight 1 / p, which makes numerator and denominator unbiased.

GQA (H = G * Hkv) never repeats K/V: the G query heads that share a KV head are viewed as
G * Q rows against that head, (B, Hkv, G * Q, D) @ (B, Hkv, D, K). Scores and sums are fp32;
bf16/fp16 K and V are upcast in chunks of at most ``chunk_bytes`` fp32 bytes (default
:data:`KV_CHUNK_BYTES`; the research attention gives half its score budget): one chunk, so a
fixed number of ops per call, whenever the fp32 copy fits, and never a whole fp32 copy of a K
or V that does not (at K=128k one is 512 MiB per layer at Llama-3.1-8B's shape).
"""

from __future__ import annotations

import math

import torch

from sparse_attention_hub.sparse_attention.mask import Mask

#: Default fp32 bytes of one chunk of bf16/fp16 K or V: each chunk is upcast on its own, so
#: the extra memory is one (B, Hkv, chunk, D) fp32 chunk instead of a whole fp32 copy.
KV_CHUNK_BYTES = 64 * 2**20


def kv_chunk_keys(tensor: torch.Tensor, chunk_bytes: int) -> int:
    """Keys per fp32 chunk of ``tensor`` (B, Hkv, K, D) within ``chunk_bytes`` (at least 1)."""
    b, heads, _, d = tensor.shape
    return max(1, int(chunk_bytes) // max(1, b * heads * d * 4))


def build_chunk_bytes(keys: torch.Tensor, chunk_bytes: int, share: int = 2) -> int:
    """The fp32 bytes a masker's state build may upcast or project at once over ``keys``
    (B, Hkv, K, D): the call's ``chunk_bytes``, and at most ``1 / share`` of the bytes of
    ``keys`` in their own dtype, so a build's temporaries stay below the size of K at any K
    (a build runs once per prompt; its number of chunks may grow with K)."""
    own = keys.numel() * keys.element_size()
    return max(1, min(int(chunk_bytes), own // max(1, share)))


def _group_size(queries: torch.Tensor, keys: torch.Tensor) -> int:
    """G = H / Hkv for queries (B, H, Q, D) and keys (B, Hkv, K, D); ValueError if not whole."""
    if queries.dim() != 4 or keys.dim() != 4:
        raise ValueError(
            f"queries and keys must be 4-D (B, H, Q, D) and (B, Hkv, K, D), got "
            f"{tuple(queries.shape)} and {tuple(keys.shape)}"
        )
    heads, kv_heads = queries.shape[1], keys.shape[1]
    if kv_heads == 0 or heads % kv_heads:
        raise ValueError(f"query heads H={heads} must be a multiple of key/value heads {kv_heads}")
    return heads // kv_heads


def attention_scores(
    queries: torch.Tensor,
    keys: torch.Tensor,
    scaling: float | None = None,
    attention_mask: torch.Tensor | None = None,
    softcap: float | None = None,
    chunk_bytes: int = KV_CHUNK_BYTES,
) -> torch.Tensor:
    """Scaled (and soft-capped) fp32 scores plus the attention mask.

    Args:
        queries: (B, H, Q, D).
        keys: (B, Hkv, K, D) with H a multiple of Hkv.
        scaling: the score scale; None means 1 / sqrt(D).
        attention_mask: None, bool (True = may attend) or additive float, broadcastable to
            (B, H, Q, K); a longer last dimension is cut to K. Additive values at or below the
            dtype's minimum (``finfo.min``) count as forbidden, like False / -inf.
        softcap: None, or Gemma-2's logit cap c: scores become ``c * tanh(scores / c)``
            before the attention mask is added (as in the model's eager attention).
        chunk_bytes: the most fp32 bytes of K upcast at once (bf16/fp16 keys).

    Returns:
        (B, H, Q, K) float32, a new tensor.
    """
    group = _group_size(queries, keys)
    b, h, q, d = queries.shape
    kv_heads, k = keys.shape[1], keys.shape[2]
    scale = default_scaling(d) if scaling is None else float(scaling)
    # Scale the small query tensor rather than the (B, H, Q, K) scores.
    q32 = queries.to(torch.float32) * scale
    q32 = q32.reshape(b, kv_heads, group * q, d)  # (B, Hkv, G*Q, D)
    step = kv_chunk_keys(keys, chunk_bytes)
    if keys.dtype == torch.float32 or step >= k:  # one op group, whatever K
        scores = torch.matmul(q32, keys.to(torch.float32).transpose(-1, -2))  # (B, Hkv, G*Q, K)
    else:  # read K in its dtype, a chunk at a time: never a whole fp32 copy of K
        scores = torch.empty(b, kv_heads, group * q, k, dtype=torch.float32, device=keys.device)
        for start in range(0, k, step):
            chunk = keys[:, :, start : start + step].to(torch.float32)  # (B, Hkv, C, D)
            scores[..., start : start + step] = torch.matmul(q32, chunk.transpose(-1, -2))
            del chunk  # free before the next chunk is upcast
    scores = scores.view(b, h, q, k)  # (B, H, Q, K)
    if softcap is not None:
        cap = float(softcap)
        scores.div_(cap).tanh_().mul_(cap)
    if attention_mask is not None:
        mask = attention_mask[..., :k] if attention_mask.shape[-1] > k else attention_mask
        if mask.dtype == torch.bool:
            scores.masked_fill_(~mask, float("-inf"))
        else:
            scores.add_(_additive_mask(mask))
    return scores


def default_scaling(head_dim: int) -> float:
    """The score scale when a caller gives none: 1 / sqrt(D)."""
    return 1.0 / math.sqrt(head_dim)


def forbidden_entries(attention_mask: torch.Tensor) -> torch.Tensor:
    """Bool, the shape of ``attention_mask``: the entries it forbids.

    The one rule for every attention mask in the library: in a bool mask False is forbidden;
    in an additive float mask every value at or below the dtype's minimum (HF's ``finfo.min``
    "forbidden" value, and -inf) is, exactly as if it were False.
    """
    if attention_mask.dtype == torch.bool:
        return ~attention_mask
    return attention_mask <= torch.finfo(attention_mask.dtype).min


def allowed_keys(attention_mask: torch.Tensor | None, n_keys: int) -> torch.Tensor | None:
    """Bool, broadcastable to (B, H, Q, K): the keys the attention mask lets each query see
    (None when there is no mask, i.e. all). A longer last dimension is cut to ``n_keys``."""
    if attention_mask is None:
        return None
    mask = attention_mask[..., :n_keys]
    return mask if mask.dtype == torch.bool else ~forbidden_entries(mask)


def _additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """An additive float mask (broadcastable to (B, H, Q, K)) as fp32, with the entries
    :func:`forbidden_entries` names turned into -inf.

    So a key the attention mask forbids is excluded exactly as with a bool mask: top-k never
    picks it, and a row whose active keys are all forbidden gives zeros rather than a uniform
    average of forbidden values.
    """
    return mask.to(torch.float32).masked_fill(forbidden_entries(mask), float("-inf"))


class ScoreCache:
    """Computes :func:`attention_scores` once per attention call and hands the same tensor out.

    Every :class:`~.inputs.AttentionInputs` holds one (``inputs.exact_scores()`` reads it), so
    the maskers of one call and the final softmax share the scores. Consumers must never write into the returned tensor.
    """

    def __init__(self) -> None:
        self._inputs: tuple[object, ...] | None = None
        self._scores: torch.Tensor | None = None

    def get(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        scaling: float | None,
        attention_mask: torch.Tensor | None,
        softcap: float | None = None,
        chunk_bytes: int = KV_CHUNK_BYTES,
    ) -> torch.Tensor:
        """(B, H, Q, K) fp32 scores for these exact tensors (recomputed if they differ);
        ``chunk_bytes`` bounds the fp32 chunk of K (it does not change the scores)."""
        inputs = (queries, keys, scaling, attention_mask, softcap)
        cached = self._inputs
        if (
            cached is None
            or self._scores is None
            or any(a is not b for a, b in zip(cached[:2], inputs[:2], strict=True))
            or cached[2] != scaling
            or cached[3] is not attention_mask
            or cached[4] != softcap
        ):
            self._scores = attention_scores(
                queries, keys, scaling, attention_mask, softcap, chunk_bytes
            )
            self._inputs = inputs
        return self._scores


def _logits(scores: torch.Tensor, mask: Mask | None) -> torch.Tensor:
    """(B, H, Q, K) logits ``s - log p`` (-inf where p == 0); may return ``scores`` itself."""
    if mask is None or mask.is_full_flag:
        return scores
    if mask.shape != tuple(scores.shape):
        raise ValueError(f"mask shape {mask.shape} does not match scores {tuple(scores.shape)}")
    p = mask.dense_view()
    if p is None:  # an empty mask: nothing attended
        return torch.full_like(scores, float("-inf"))
    if p.dtype == torch.bool:  # every active p is 1: log p = 0
        return torch.where(p, scores, float("-inf"))
    # One fp32 (B, H, Q, K) tensor, everything in place (p may be broadcastable: size-1
    # dimensions). -log p + s equals s - log p bit for bit; p == 0 gives -log p = +inf, so
    # +inf (or nan where s = -inf) marks exactly the keys p excludes: -inf there.
    logits = torch.empty_like(scores, dtype=torch.float32).copy_(p)
    logits.log_().neg_().add_(scores)
    return logits.nan_to_num_(nan=float("-inf"), posinf=float("-inf"), neginf=float("-inf"))


def masked_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    mask: Mask | None = None,
    *,
    scaling: float | None = None,
    attention_mask: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
    dropout: float = 0.0,
    return_weights: bool = False,
    scores: torch.Tensor | None = None,
    softcap: float | None = None,
    chunk_bytes: int = KV_CHUNK_BYTES,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attention of ``queries`` over the keys ``mask`` selects, weighted by 1 / p.

    Args:
        queries: (B, H, Q, D).
        keys, values: (B, Hkv, K, D), H a multiple of Hkv (GQA without repeating K/V).
        mask: (B, H, Q, K) probabilities; None means full (dense) attention.
        scaling: score scale; None means 1 / sqrt(D).
        attention_mask: None, bool (True = may attend) or additive float (0 / -inf /
            finfo.min), broadcastable to (B, H, Q, K). Ignored when ``scores`` is given.
        sinks: optional (H,) per-head sink logits (GPT-OSS ``s_aux``): an extra logit per head
            that only enters the denominator.
        dropout: dropout probability on the normalised weights (0 in evaluation).
        return_weights: also return the normalised (B, H, Q, K) weights.
        scores: precomputed :func:`attention_scores` (B, H, Q, K) fp32, read only.
        softcap: Gemma-2's logit cap (see :func:`attention_scores`); ignored when ``scores``
            is given (they already carry it).
        chunk_bytes: the most fp32 bytes of bf16/fp16 K or V upcast at once.

    Returns:
        (output (B, Q, H, D) in the query dtype, weights (B, H, Q, K) in the query dtype or
        None). A row with no active (finite) key gets a zero output by construction; a NaN
        in q, k or v gives NaN, as in torch's attention.
    """
    group = _group_size(queries, keys)
    if values.dim() != 4 or values.shape[:3] != keys.shape[:3]:
        raise ValueError(
            f"values must be (B, Hkv, K, Dv) matching keys {tuple(keys.shape)}, "
            f"got {tuple(values.shape)}"
        )
    if scores is None:
        scores = attention_scores(queries, keys, scaling, attention_mask, softcap, chunk_bytes)
    logits = _logits(scores, mask)
    weights = guarded_softmax(logits, sinks, in_place=logits is not scores)  # (B, H, Q, K)
    del logits
    if dropout > 0.0:
        weights = torch.nn.functional.dropout(weights, p=dropout, training=True)
    out = _weighted_values(weights, values, group, chunk_bytes)  # (B, H, Q, Dv)
    out = out.transpose(1, 2).to(queries.dtype).contiguous()  # (B, Q, H, Dv)
    return out, weights.to(queries.dtype) if return_weights else None


def guarded_softmax(
    logits: torch.Tensor, sinks: torch.Tensor | None, in_place: bool
) -> torch.Tensor:
    """Softmax of (B, H, Q, K) logits, with an optional extra per-head logit (H,) in the
    denominator only (GPT-OSS ``s_aux``).

    A row with no finite logit gets zero weights by construction: its shift is 0, its
    exponentials are 0 and the denominator is guarded, so 0 / tiny = 0. A NaN anywhere in a
    row (NaN in q, k or v) stays NaN, as in torch's attention.
    """
    row_max = logits.amax(dim=-1, keepdim=True)  # (B, H, Q, 1)
    sink = None
    if sinks is not None:
        sink = sinks.to(torch.float32).reshape(1, logits.shape[1], 1, 1)  # (1, H, 1, 1)
        row_max = torch.maximum(row_max, sink)
    row_max = row_max.masked_fill_(row_max == float("-inf"), 0.0)
    # exp in place when logits is our own temporary; never touch the caller's scores.
    shifted = logits.sub_(row_max) if in_place else logits.sub(row_max)
    weights = shifted.exp_()  # (B, H, Q, K), unnormalised
    denom = weights.sum(dim=-1, keepdim=True)  # (B, H, Q, 1)
    if sink is not None:
        denom = denom.add_(torch.exp(sink - row_max))
    return weights.div_(denom.clamp_min_(torch.finfo(torch.float32).tiny))


def _weighted_values(
    weights: torch.Tensor, values: torch.Tensor, group: int, chunk_bytes: int
) -> torch.Tensor:
    """(B, H, Q, K) weights times values (B, Hkv, K, Dv) -> (B, H, Q, Dv) fp32, no K/V repeat;
    bf16/fp16 V is upcast in chunks of at most ``chunk_bytes``."""
    b, h, q, k = weights.shape
    kv_heads, dv = values.shape[1], values.shape[3]
    grouped = weights.reshape(b, kv_heads, group * q, k)  # (B, Hkv, G*Q, K)
    step = kv_chunk_keys(values, chunk_bytes)
    if values.dtype == torch.float32 or step >= k:  # one op group, whatever K
        out = torch.matmul(grouped, values.to(torch.float32))  # (B, Hkv, G*Q, Dv)
    else:  # accumulate in fp32, reading V one chunk at a time in its own dtype
        out = torch.zeros(b, kv_heads, group * q, dv, dtype=torch.float32, device=values.device)
        for start in range(0, k, step):
            chunk = values[:, :, start : start + step].to(torch.float32)  # (B, Hkv, C, Dv)
            out.add_(torch.matmul(grouped[..., start : start + step], chunk))
            del chunk
    return out.view(b, h, q, dv)  # (B, H, Q, Dv)
