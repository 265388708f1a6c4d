"""MagicPIG's math, apart from the masker: SimHash codes, the inclusion probability u, and the
bounded-memory pieces of a state build and of a call (see ``magicpig`` for the method).

Memory: a state build reads the keys in chunks (the centre summed in float64, the largest
norm, the codes), never an fp32 copy of all keys; a call's temporaries grow with its query
rows times K at a few bytes each (:func:`sampled_probabilities` works over chunks of rows).
"""

from __future__ import annotations

import math

import torch

from sparse_attention_hub.sparse_attention.maskers.device_paths import host_reads_free

#: Elements of one chunk of the collision count (B * Hkv * G * Q * tables * K).
CHUNK_ELEMENTS = 1 << 24
#: Terms of the binomial upper tail used where u is small.
TAIL_TERMS = 40
#: (B, H, rows, K) entries per chunk of :func:`sampled_probabilities` (float64 temporaries);
#: a decode step (one row) is one chunk whatever K.
ROW_ELEMENTS = 1 << 20


def code_dtype(bits: int) -> torch.dtype:
    """The smallest signed integer dtype that holds ``bits`` packed sign bits."""
    return torch.int16 if bits <= 15 else torch.int32 if bits <= 31 else torch.int64


def pack_codes(projected: torch.Tensor, lsh_k: int, lsh_l: int) -> torch.Tensor:
    """Sign bits of ``projected`` (B, Hkv, n, L * K) packed per table: (B, Hkv, L, n).

    One bit at a time, so the temporaries are (B, Hkv, n, L) (not (B, Hkv, n, L, K) int64)."""
    b, h, n, _ = projected.shape
    dtype = code_dtype(lsh_k)
    grouped = projected.view(b, h, n, lsh_l, lsh_k)  # (B, Hkv, n, L, K)
    packed = torch.zeros(b, h, n, lsh_l, dtype=dtype, device=projected.device)
    for bit in range(lsh_k):
        packed |= (grouped[..., bit] > 0).to(dtype) << bit  # (B, Hkv, n, L)
    return packed.transpose(2, 3).contiguous()  # (B, Hkv, L, n)


def key_features(
    keys: torch.Tensor, centre: torch.Tensor, mips_norm: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hashed vectors (B, Hkv, n, D'), norms (B, Hkv, n)) of ``keys`` (B, Hkv, n, D): centred
    by ``centre`` (B, Hkv, D); with ``mips_norm`` (B, Hkv, 1) the MIPS transform (D' = D + 1)."""
    centred = keys.float() - centre.unsqueeze(2)  # (B, Hkv, n, D)
    norms = centred.norm(dim=-1)  # (B, Hkv, n)
    if mips_norm is None:
        return centred, norms
    scaled = centred / mips_norm.unsqueeze(-1)
    last = (1.0 - scaled.square().sum(-1, keepdim=True)).clamp_min(0.0).sqrt()
    return torch.cat([scaled, last], -1), mips_norm.expand_as(norms)


def hash_keys(
    keys: torch.Tensor,
    centre: torch.Tensor,
    planes: torch.Tensor,
    mips_norm: torch.Tensor | None,
    lsh: tuple[int, int],
    step: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes (B, Hkv, L, n), norms (B, Hkv, n)) of ``keys`` (B, Hkv, n, D) under ``planes``
    (Hkv, D', L * K), ``lsh`` = (lsh_k, lsh_l), ``step`` keys at a time, written into the
    outputs (no list of chunks to concatenate)."""
    lsh_k, lsh_l = lsh
    b, h, n, _ = keys.shape
    codes = torch.empty(b, h, lsh_l, n, dtype=code_dtype(lsh_k), device=keys.device)
    norms = torch.empty(b, h, n, device=keys.device)
    for start in range(0, n, step):
        stop = min(n, start + step)
        vectors, norm = key_features(keys[:, :, start:stop], centre, mips_norm)
        projected = vectors @ planes.unsqueeze(0)  # (B, Hkv, c, L * K)
        codes[..., start:stop] = pack_codes(projected, lsh_k, lsh_l)
        norms[..., start:stop] = norm
    return codes, norms


def inclusion_probability(
    cos: torch.Tensor, lsh_k: int, lsh_l: int, min_collisions: int
) -> torch.Tensor:
    """u = P(Binomial(lsh_l, p ** lsh_k) >= min_collisions), p = 1 - arccos(cos) / pi, in
    float64 for a tensor of cosines of any shape (same shape)."""
    p = 1.0 - torch.arccos(cos.double().clamp(-1.0, 1.0)) / math.pi
    big_p = p**lsh_k
    log_p = torch.log(big_p.clamp_min(1e-300))
    log_q = torch.log1p(-big_p.clamp(max=1.0 - 1e-16))
    below = torch.zeros_like(big_p)  # P(fewer than min_collisions)
    for i in range(min_collisions):
        below += math.comb(lsh_l, i) * torch.exp(i * log_p + (lsh_l - i) * log_q)
    above = torch.zeros_like(big_p)  # the upper tail, term by term (accurate when small)
    for i in range(min_collisions, min(lsh_l, min_collisions + TAIL_TERMS) + 1):
        log_c = math.lgamma(lsh_l + 1) - math.lgamma(i + 1) - math.lgamma(lsh_l - i + 1)
        above += torch.exp(log_c + i * log_p + (lsh_l - i) * log_q)
    u = torch.where(below < 1.0 - 1e-4, 1.0 - below, above)
    return torch.where(big_p >= 1.0, torch.ones_like(u), u.clamp(0.0, 1.0))


def collision_counts(query_codes: torch.Tensor, key_codes: torch.Tensor) -> torch.Tensor:
    """Tables in which each query code equals each key code: ``query_codes`` (B, Hkv, R, L),
    ``key_codes`` (B, Hkv, L, n) -> (B, Hkv, R, n) int16, counted over chunks of tables."""
    b, h, rows, tables = query_codes.shape
    n = key_codes.shape[-1]
    counts = torch.zeros(b, h, rows, n, dtype=torch.int16, device=key_codes.device)
    chunk = max(1, CHUNK_ELEMENTS // max(1, b * h * rows * n))
    for start in range(0, tables, chunk):
        stop = min(tables, start + chunk)
        q = query_codes[..., start:stop].unsqueeze(-1)  # (B, Hkv, R, c, 1)
        k = key_codes[:, :, start:stop].unsqueeze(2)  # (B, Hkv, 1, c, n)
        counts += (q == k).sum(3, dtype=torch.int16)  # (B, Hkv, R, n)
    return counts


def mean_keys(keys: torch.Tensor, step: int) -> torch.Tensor:
    """(B, Hkv, D) fp32 mean over n of ``keys`` (B, Hkv, n >= 1, D), summed in float64 over
    chunks of ``step`` keys (the same result for every step, without an fp32 copy of keys)."""
    total = torch.zeros(*keys.shape[:2], keys.shape[3], dtype=torch.float64, device=keys.device)
    for start in range(0, keys.shape[2], step):
        total += keys[:, :, start : start + step].double().sum(2)  # (B, Hkv, D)
    return (total / keys.shape[2]).float()


def largest_norm(keys: torch.Tensor, centre: torch.Tensor, step: int) -> torch.Tensor:
    """(B, Hkv, 1) fp32: the largest |k - centre| over ``keys`` (B, Hkv, n >= 1, D), in chunks
    of ``step`` keys."""
    best = torch.zeros(*keys.shape[:2], 1, device=keys.device)
    for start in range(0, keys.shape[2], step):
        chunk = keys[:, :, start : start + step].float() - centre.unsqueeze(2)  # (B, Hkv, c, D)
        best = torch.maximum(best, chunk.norm(dim=-1).amax(-1, keepdim=True))
    return best


def grouped_dots(queries: torch.Tensor, keys: torch.Tensor, step: int) -> torch.Tensor:
    """(B, H, Q, K) fp32 q . k of ``queries`` (B, H, Q, D) and ``keys`` (B, Hkv, K, D), head
    h against KV head h // G, the keys upcast ``step`` at a time (no (B, H, K, D) copy)."""
    b, h, q_len, d = queries.shape
    h_kv, n = keys.shape[1], keys.shape[2]
    grouped = queries.float().reshape(b, h_kv, (h // h_kv) * q_len, d)  # (B, Hkv, G * Q, D)
    out = torch.empty(b, h_kv, grouped.shape[2], n, device=queries.device)  # (B, Hkv, GQ, K)
    for start in range(0, n, step):
        chunk = keys[:, :, start : start + step].float()  # (B, Hkv, c, D)
        out[..., start : start + step] = grouped @ chunk.transpose(-1, -2)
    return out.view(b, h, q_len, n)  # (B, H, Q, K)


def sampled_probabilities(
    dots: torch.Tensor,
    query_norms: torch.Tensor,
    key_norms: torch.Tensor,
    hit: torch.Tensor,
    lsh: tuple[int, int, int],
    u_offset: float,
    compact: bool | None = None,
) -> torch.Tensor:
    """(B, H, Q, K) fp32 mask values: u + ``u_offset`` (clamped to [1e-30, 1]) where ``hit``,
    0 elsewhere; u of the cosine ``dots / (query_norms * key_norms)`` (B, H, Q, K), (B, H, Q,
    1), (B, H, 1, K), ``lsh`` = (lsh_k, lsh_l, min_collisions). Over chunks of query rows.
    ``compact``: evaluate u at the hits only (None: on a CPU only, as below).

    On an accelerator u is evaluated at every entry and kept where ``hit`` (no host wait; the
    float64 work is cheap there). On a CPU, where reading a size back waits for nothing, u is
    evaluated at the hits only (about 1 in 50 entries; at every entry a CPU decode step would
    take ~50x longer): the number of hits is data-dependent, so this path indexes by ``hit``."""
    b, h, q_len, n = dots.shape
    probs = torch.zeros(b, h, q_len, n, device=dots.device)
    step = max(1, ROW_ELEMENTS // max(1, b * h * n))
    if compact is None:
        compact = host_reads_free(dots)
    for start in range(0, q_len, step):
        rows = slice(start, start + step)
        cos = dots[:, :, rows] / (query_norms[:, :, rows] * key_norms).clamp_min(1e-12)
        if compact:
            u = inclusion_probability(cos[hit[:, :, rows]], *lsh) + u_offset  # (hits,)
            probs[:, :, rows][hit[:, :, rows]] = u.clamp(1e-30, 1.0).float()
        else:
            u = (inclusion_probability(cos, *lsh) + u_offset).clamp(1e-30, 1.0)
            probs[:, :, rows] = torch.where(hit[:, :, rows], u.float(), 0.0)
    return probs


__all__ = [
    "code_dtype",
    "collision_counts",
    "grouped_dots",
    "hash_keys",
    "inclusion_probability",
    "key_features",
    "largest_norm",
    "mean_keys",
    "pack_codes",
    "sampled_probabilities",
]
