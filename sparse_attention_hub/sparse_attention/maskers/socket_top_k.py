"""SOCKET: top-k keys by soft hash collisions weighted by value norms.

Joshi et al., 2026, "SOCKET: Soft Collision Kernel EsTimator for Sparse Attention" (arXiv
2602.06283); official code: the reference sparse-attention-hub
(``maskers/fixed/implementations/socket_top_k.py`` and ``utils/socket_utils.py``). As there:

- **Planes.** ``lsh_l`` tables of ``lsh_k`` Gaussian hyperplanes (L, P, D), shared by every
  layer and head, drawn as the reference draws them: ``torch.randn((L, P, D))`` in fp32 from a
  generator seeded ``seed + 7777`` (default seed 123456789), then rounded to the keys' dtype.
- **Keys, hard-hashed.** A key's bucket in table l is its ``lsh_k`` sign bits
  ``k . w >= 0``, big-endian: one of R = 2**lsh_k buckets per table.
- **Queries, soft-hashed.** ``h = tanh(q . w) / sqrt(D)`` per plane; bucket r (a corner
  c_r of {-1, +1}^P) gets the logit ``h . c_r`` and the probability
  ``softmax(logits / tau)`` over the R buckets of the table.
- **Score.** The soft collision count ``C(q, j) = sum_l P_l(bucket_l(j) | q)`` times the
  value norm ``||v_j||``; keys the attention mask forbids are never chosen.
- **Selection.** Each (B, H, Q) row adds its ``heavy_size`` best-scoring allowed keys. As in
  the reference, they are chosen among *all* allowed keys, those the maskers before it made
  active included (the other top-k maskers here choose among the inactive ones), so with
  sink + local before it the keys it adds can overlap theirs.

State (``StatefulMasker`` contract): :class:`SocketState`, the key codes (B, Hkv, L, K) int16
(int32 past 15 planes) and value norms (B, Hkv, K) fp32; new keys are hashed and appended, a
rollback or sliding window slices them. Keys and values are hashed in chunks (no whole fp32
copy: a chunk's fp32 products hold at most an eighth of the bytes of K, so the state, codes of
about 0.47x the bf16 K at the default 60 tables, is most of a build's peak); scoring loops
over the tables, so no (Q, K, L) or (Q, L, R) tensor is built and the number of ops per call
does not grow with K; nothing on the decode path waits for the device.

Differences from the reference code, all written down here:

- Projections and the soft hash run in fp32 (the reference runs them in the model's dtype,
  with the planes rounded to it as here): a bf16 model's key bits can differ for keys whose
  projection rounds across 0, and its query probabilities differ by bf16 rounding.
- The planes are drawn on the CPU (the reference draws them on the keys' device: on a GPU its
  planes are another draw from the same seed).
- Value norms are kept in fp32 (the reference rounds them to the model's dtype).
- GQA: keys and values are hashed once per KV head (the reference repeats them to the query
  heads first; the codes and norms are the same).
- Forbidden keys are read from the attention mask as the framework reads it (the reference
  treats a bool mask as True = forbidden and multiplies its final mask, the previous masker's
  entries included, by the allowed keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.attention import build_chunk_bytes
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import MaskerConfig, Size, check_size
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker
from sparse_attention_hub.sparse_attention.maskers.topk import budget_or_mask

#: Elements of one chunk of key projections (B * Hkv * keys * L * P) while hashing keys.
CHUNK_ELEMENTS = 1 << 22
#: The reference's seed offset: its generator is seeded ``seed + 7777``.
SEED_OFFSET = 7777


@dataclass(frozen=True)
class SocketConfig(MaskerConfig):
    """``heavy_size`` int tokens or float fraction of K; ``lsh_k`` hyperplanes per table
    (R = 2**lsh_k buckets; the reference's K), ``lsh_l`` tables (its L), ``tau`` the soft-hash
    temperature, ``seed`` of the planes (the reference's 123456789)."""

    heavy_size: Size
    lsh_k: int = 12
    lsh_l: int = 60
    tau: float = 0.3
    seed: int = 123456789

    def __post_init__(self) -> None:
        check_size(self, "heavy_size", self.heavy_size, minimum=1)
        for field, low, high in (("lsh_k", 1, 16), ("lsh_l", 1, 4096), ("seed", 0, 2**62)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"SocketConfig.{field} must be an int, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"SocketConfig.{field} must be in [{low}, {high}], got {value}")
        tau = self.tau
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not 0 < tau < math.inf:
            raise ValueError(f"SocketConfig.tau must be a finite number > 0, got {tau!r}")


@dataclass(frozen=True)
class SocketState:
    """One layer's keys: ``codes`` (B, Hkv, L, n) bucket ids, ``value_norms`` (B, Hkv, n) fp32."""

    codes: torch.Tensor
    value_norms: torch.Tensor


def socket_planes(seed: int, tables: int, planes: int, dim: int) -> torch.Tensor:
    """(L, P, D) fp32 Gaussian hyperplanes, the reference's draw on the CPU."""
    generator = torch.Generator().manual_seed(seed + SEED_OFFSET)
    return torch.randn((tables, planes, dim), generator=generator, dtype=torch.float32)


def hypercube_corners(planes: int, device: torch.device | None = None) -> torch.Tensor:
    """(P, R) fp32: column r is the corner of {-1, +1}^P of bucket r (big-endian bits)."""
    r = torch.arange(2**planes, device=device)
    shifts = torch.arange(planes - 1, -1, -1, device=device)
    bits = (r.unsqueeze(0) >> shifts.unsqueeze(1)) & 1  # (P, R)
    return bits.float() * 2 - 1


def hash_keys(keys: torch.Tensor, planes: torch.Tensor) -> torch.Tensor:
    """Bucket ids (B, Hkv, L, n) of ``keys`` (B, Hkv, n, D) under ``planes`` (L, P, D) fp32:
    sign bits ``k . w >= 0``, big-endian, hashed in chunks of keys whose fp32 products hold at
    most ``CHUNK_ELEMENTS`` and an eighth of the bytes of ``keys`` (the sign bits are packed in
    the codes' own dtype, so a chunk's temporaries stay about twice its products)."""
    b, h, n, d = keys.shape
    tables, bits = planes.shape[0], planes.shape[1]
    flat = planes.reshape(tables * bits, d).t()  # (D, L * P)
    dtype = torch.int16 if bits <= 15 else torch.int32
    weights = 2 ** torch.arange(bits - 1, -1, -1, device=keys.device, dtype=dtype)
    codes = torch.empty((b, h, tables, n), dtype=dtype, device=keys.device)
    per_key = max(1, b * h * max(d, tables * bits))  # fp32 elements of a key's upcast or products
    step = max(1, build_chunk_bytes(keys, 4 * CHUNK_ELEMENTS, 8) // (4 * per_key))
    for start in range(0, n, step):
        chunk = keys[:, :, start : start + step].float() @ flat  # (B, Hkv, c, L * P)
        signs = (chunk >= 0).reshape(b, h, -1, tables, bits)  # (B, Hkv, c, L, P) bool
        del chunk
        packed = (signs.to(dtype) * weights).sum(-1, dtype=dtype)  # (B, Hkv, c, L)
        codes[:, :, :, start : start + step] = packed.transpose(2, 3)  # (B, Hkv, L, c)
    return codes


def value_norms(values: torch.Tensor) -> torch.Tensor:
    """(B, Hkv, n) fp32 L2 norms of ``values`` (B, Hkv, n, Dv), upcast in chunks of keys (at
    most ``CHUNK_ELEMENTS`` and an eighth of the bytes of ``values``)."""
    b, h, n, d = values.shape
    norms = torch.empty((b, h, n), dtype=torch.float32, device=values.device)
    step = max(1, build_chunk_bytes(values, 4 * CHUNK_ELEMENTS, 8) // (4 * max(1, b * h * d)))
    for start in range(0, n, step):
        norms[:, :, start : start + step] = values[:, :, start : start + step].float().norm(dim=-1)
    return norms


def soft_collision_scores(
    queries: torch.Tensor, planes: torch.Tensor, state: SocketState, tau: float
) -> torch.Tensor:
    """(B, H, Q, K) fp32 ``sum_l P_l(bucket_l(j) | q) * ||v_j||`` of ``queries`` (B, H, Q, D)
    against the keys of ``state`` (codes (B, Hkv, L, K)); one table at a time, so the peak is
    two (B, H, Q, K) and one (B, H, Q, R) fp32 tensors."""
    b, h, q, d = queries.shape
    codes = state.codes
    h_kv, tables, n = codes.shape[1], codes.shape[2], codes.shape[3]
    group = h // h_kv
    corners = hypercube_corners(planes.shape[1], queries.device)  # (P, R)
    projected = queries.float() @ planes.reshape(-1, d).t()  # (B, H, Q, L * P)
    soft = torch.tanh(projected).reshape(b, h_kv, group * q, tables, -1) / math.sqrt(d)
    counts = torch.zeros((b, h_kv, group * q, n), dtype=torch.float32, device=queries.device)
    for table in range(tables):
        probs = torch.softmax((soft[:, :, :, table] @ corners) / tau, dim=-1)  # (B, Hkv, GQ, R)
        index = codes[:, :, table].long().unsqueeze(2).expand(b, h_kv, group * q, n)
        counts += probs.gather(-1, index)  # (B, Hkv, G * Q, K)
    counts *= state.value_norms.unsqueeze(2)
    return counts.reshape(b, h, q, n)  # (B, H, Q, K)


@register_masker(
    "socket",
    "Joshi et al., 2026, 'SOCKET: Soft Collision Kernel EsTimator for Sparse Attention': keys "
    "hard-hashed into lsh_l tables of lsh_k random planes, queries soft-hashed (temperature "
    "tau); each row keeps the heavy_size keys of highest soft collision count x value norm.",
)
class SocketMasker(StatefulMasker[SocketState]):
    """Soft-collision top-k (see the module for the rule and every deviation)."""

    config_class = SocketConfig
    config: SocketConfig

    def __init__(self, config: MaskerConfig) -> None:
        super().__init__(config)
        self._planes: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def planes(self, inputs: AttentionInputs) -> torch.Tensor:
        """(L, P, D) fp32 planes rounded to the keys' dtype, on their device (cached)."""
        keys = inputs.keys
        key = (keys.shape[-1], keys.dtype, keys.device)
        cached = self._planes.get(key)
        if cached is None:
            cfg = self.config
            drawn = socket_planes(cfg.seed, cfg.lsh_l, cfg.lsh_k, keys.shape[-1])
            cached = drawn.to(keys.dtype).float().to(keys.device)
            self._planes[key] = cached
        return cached

    # ------------------------------------------------------------------ state contract

    def _hash(self, inputs: AttentionInputs, start: int) -> SocketState:
        keys, values = inputs.keys[:, :, start:], inputs.values[:, :, start:]
        return SocketState(hash_keys(keys, self.planes(inputs)), value_norms(values))

    def build_state(self, inputs: AttentionInputs) -> SocketState:
        return self._hash(inputs, 0)

    def extend_state(
        self, state: SocketState, inputs: AttentionInputs, new_keys: int
    ) -> SocketState:
        new = self._hash(inputs, inputs.keys.shape[2] - new_keys)
        return SocketState(
            torch.cat([state.codes, new.codes], dim=3),  # (B, Hkv, L, K)
            torch.cat([state.value_norms, new.value_norms], dim=2),  # (B, Hkv, K)
        )

    def truncate_state(self, state: SocketState, start: int, stop: int) -> SocketState:
        return SocketState(state.codes[..., start:stop], state.value_norms[..., start:stop])

    # ------------------------------------------------------------------ selection

    def scores(self, inputs: AttentionInputs) -> torch.Tensor:
        """(B, H, Q, K) fp32 soft collision count x value norm; -inf where forbidden."""
        scores = soft_collision_scores(
            inputs.queries, self.planes(inputs), self.state(inputs), float(self.config.tau)
        )
        allowed = inputs.allowed_keys()
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))  # (B, H, Q, K)
        return scores

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus each row's ``heavy_size`` best allowed keys (active or not)."""
        k, done = budget_or_mask(self.config.heavy_size, inputs, previous_mask)
        if done is not None:
            return done
        top = torch.topk(self.scores(inputs), k, dim=-1, sorted=False)
        return previous_mask.with_active_indices(top.indices, top.values > float("-inf"))


__all__ = [
    "SocketConfig",
    "SocketMasker",
    "SocketState",
    "hash_keys",
    "hypercube_corners",
    "socket_planes",
    "soft_collision_scores",
    "value_norms",
]
