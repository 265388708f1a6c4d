"""MagicPIG: keys sampled by SimHash collisions, weighted by their inclusion probability.

Chen et al., 2024, "MagicPIG: LSH Sampling for Efficient LLM Generation" (official code
Infini-AI-Lab/MagicPIG v0.2, ``evaluations/RULER/pred/cache_ref.py`` and ``llama_ref.py``,
the accuracy path). As there:

- **Prompt.** The official code prefills the whole prompt (context, question and answer
  prefix) densely and then splits its keys once (``select_kv_cache``). Here the prompt is the
  keys present at a layer's first call: the adapter prefills the context densely and runs the
  question through the research attention, so that call's keys are the whole prompt and its
  queries the question. ``prompt_end`` = P, its absolute end, is kept in the state.
- **Split.** Attended densely (p = 1) by this masker: the first ``sink_size`` keys, the last
  ``window_size`` keys of the prompt, [P - window_size, P), and (``attend_generated``) every
  key after the prompt (official: 4 and 64; generated tokens go to the always-attended cache).
  The window stays fixed at the end of the prompt: it does not slide with the query. Only the
  middle keys [sink_size, P - window_size) are sampled.
- **Centre.** Every key is centred by the mean of the prompt's middle keys, the sampled range
  (official ``unselect_k_cache.mean``). Queries are not centred. The centre is computed once per
  layer per prompt and kept in the state.
- **SimHash.** ``lsh_l`` tables of ``lsh_k`` random Gaussian hyperplanes, drawn per KV head
  (official ``hash_matrix`` of shape (Hkv, D, K * L)); a key's ``lsh_k`` sign bits per table
  are packed into one integer. The query (not centred) is hashed with the same hyperplanes.
- **Retrieval.** A key is sampled for a query head when their codes agree in at least
  ``min_collisions`` tables (official: 2).
- **Weight.** With p = 1 - theta / pi, theta the angle between q and the centred key, and
  P = p ** lsh_k, the inclusion probability is u = P(Binomial(lsh_l, P) >= min_collisions);
  for two collisions u = 1 - (1 - P)^L - L P (1 - P)^(L - 1), the official formula. The mask
  entry is u, so the softmax weighs the key by 1 / u.

The ``magicpig`` recipe is this masker alone. Keys another masker before it made active are
never sampled again.

Differences from the official code, all written down here:

- The question rows run sparse (the framework's rule: the question and every generated token
  go through the research attention), under the same split as a decode step: a question row
  attends densely the sink and the window keys up to its own position, samples the middle keys,
  and its keys are centred by the prompt's centre. The official code prefills them densely.
- The hyperplanes are drawn from a generator seeded with ``seed`` and the layer index, so a
  run is reproducible; the official code draws them unseeded and shares one draw between
  blocks of 16 layers.
- The official code weighs by 1 / (u + 1e-4) (``torch.log(weight + 1e-4)``), a small bias
  towards lower weights; ``u_offset=1e-4`` reproduces it, the default 0 keeps the estimate
  unbiased. u is computed in float64 (through the upper tail of the binomial when it is small,
  where the official difference of ones cancels).
- Dense layers (official: 0, 16, 32 and 48 where the model has them) are the research
  config's ``dense_layers``, not this masker's; the ``magicpig`` recipe sets 0 and 16 (all of
  them on a 32-layer model such as Llama-3-8B; a deeper model needs 32 and 48 added).
- GQA: every query head of a KV head is hashed with that KV head's hyperplanes.
- Every cached key is hashed (the official code hashes only the middle keys); keys attended
  densely are never sampled, so the mask is the same.
- Variants of the reference framework, off by default: ``mips_transform`` (keys become
  [k / M, sqrt(1 - |k|^2 / M^2)] and queries [q / |q|, 0], M the largest centred prompt-key
  norm, fixed at the state build; a later key past M gets a last coordinate of 0) and
  retrieval on one collision (``min_collisions=1``).

Memory and time: no (B, H, Q, K, L) tensor is built; each table's keys are kept sorted by code
(``lsh_index``: bucket offsets over the key order), so a query reads its colliding keys as one
bucket and collisions are counted over the matches only, into uint8 counts, without waiting
for the device. A state build reads the keys in chunks (``build_chunk_bytes``; the centre is
summed in float64, so the chunking never changes it); under a soft cap q . k is computed over
key chunks, not on an fp32 copy of the keys. u is evaluated at every entry on an accelerator
(no host wait) and at the hits only on a CPU (``magicpig_hashing.sampled_probabilities``), over
chunks of query rows.

State (``StatefulMasker`` contract): :class:`MagicPigState`, the centre, hyperplanes, the key
codes as a hash index per table (``lsh_index.CodeIndex``: the keys sorted by code, 16 bits each
at any length, and where each bucket starts, 2**lsh_k + 1 int32 per table and block of 65536
keys; the codes themselves are not kept) and the norms used for theta. It is larger than K by
the method: the official code stores ``lsh_l`` int16 codes per key and KV head
(``key_hashcode``), 2 L bytes against the bf16 key's 2 D (1.17x K at L = 150, D = 128); the
index's key order takes the same 2 L bytes, plus the offsets. Measured at the defaults
(Hkv = 8, D = 128): the index is 1.25x K at 32k keys and 1.21x at 128k, the whole state (with
the hyperplanes and norms) 1.35x and 1.25x. A build writes the key order over its own codes
(int16 codes, ``lsh_k`` <= 15), so its peak is the state plus one chunk of fp32 projections
(``build_chunk_bytes``) and one chunk of tables' sort (``lsh_index.SORT_ELEMENTS``): 1.82x K
at 32k keys and 1.35x at 128k (``bench/attention_memory.py``, peak RSS). New keys are hashed
and appended, a rollback or sliding window cuts the codes. A rollback into the prompt (the
adapter's rollback to the context before each question) drops the centre, and a prompt
extended past the state's (a dense prefill of keys the state never saw before the call's
queries) rebuilds it: the next call, the next question, builds the state on its own prompt as
a fresh one would.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import MaskerConfig
from sparse_attention_hub.sparse_attention.maskers.lsh_index import (
    MAX_BITS,
    CodeIndex,
    all_codes,
    append_codes,
    count_collisions,
    cut_codes,
    index_codes,
)
from sparse_attention_hub.sparse_attention.maskers.magicpig_hashing import (
    collision_counts,
    grouped_dots,
    hash_keys,
    inclusion_probability,
    largest_norm,
    mean_keys,
    pack_codes,
    sampled_probabilities,
)
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker

#: Default bytes of one key chunk's fp32 projections (B, Hkv, chunk, L * K) in a state build
#: (and of the fp32 keys of one chunk of q . k under a soft cap).
BUILD_CHUNK_BYTES = 16 << 20


@dataclass(frozen=True)
class MagicPigConfig(MaskerConfig):
    """``lsh_k`` bits per table, ``lsh_l`` tables (paper: 10, 150), ``min_collisions`` tables
    a key must share with the query (official 2), ``seed`` of the hyperplanes (per layer),
    ``sink_size`` / ``window_size`` the first keys and the last keys of the prompt, attended
    densely and left out of the centre (official 4, 64), ``attend_generated`` every key after
    the prompt densely, ``mips_transform`` and ``u_offset`` (see the module).

    ``lsh_k`` is at most 16: the index keeps 2**lsh_k + 1 int32 bucket offsets per table and
    KV head (``lsh_index.CodeIndex``), 256 KiB each at 16 bits (the paper uses 8 to 11)."""

    # 1: the official dense split (a window fixed at the end of the prompt)
    revision: ClassVar[int] = 1

    lsh_k: int = 10
    lsh_l: int = 150
    min_collisions: int = 2
    seed: int = 0
    sink_size: int = 4
    window_size: int = 64
    attend_generated: bool = True
    mips_transform: bool = False
    u_offset: float = 0.0

    def __post_init__(self) -> None:
        for field, low, high in (
            ("lsh_k", 1, MAX_BITS),
            ("lsh_l", 1, None),
            ("min_collisions", 1, None),
            ("seed", 0, None),
            ("sink_size", 0, None),
            ("window_size", 0, None),
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"MagicPigConfig.{field} must be an int, got {value!r}")
            if value < low or (high is not None and value > high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"MagicPigConfig.{field} must be {allowed}, got {value}")
        if self.min_collisions > self.lsh_l:
            raise ValueError(
                f"MagicPigConfig.min_collisions must be <= lsh_l = {self.lsh_l}, "
                f"got {self.min_collisions}"
            )
        for field in ("attend_generated", "mips_transform"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(
                    f"MagicPigConfig.{field} must be a bool, got {getattr(self, field)!r}"
                )
        offset = self.u_offset
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not 0 <= offset < 1:
            raise ValueError(f"MagicPigConfig.u_offset must be a number in [0, 1), got {offset!r}")


@dataclass(frozen=True)
class MagicPigState:
    """One layer's hashing state: ``centre`` (B, Hkv, D) fp32 or None (dropped by a rollback
    into the context), ``planes`` (Hkv, D', L * K) fp32, ``index`` the key codes
    (``lsh_index.CodeIndex``: bucket offsets over a 16-bit key order), ``norms`` (B, Hkv, n)
    fp32 (|k - centre|, or M with the MIPS transform), ``mips_norm`` (B, Hkv, 1) fp32 or
    None, ``prompt_end`` the absolute end of the prompt (the keys of the state's build) and
    ``end`` that of the last key."""

    centre: torch.Tensor | None
    planes: torch.Tensor
    index: CodeIndex
    norms: torch.Tensor
    mips_norm: torch.Tensor | None
    prompt_end: int
    end: int


@register_masker(
    "magicpig",
    "Chen et al., 2024, 'MagicPIG: LSH Sampling for Efficient LLM Generation': the sink, the "
    "last window_size keys of the prompt and every later key dense; the others sampled when "
    "their SimHash codes collide with the query's in >= min_collisions of lsh_l tables, "
    "weighted by 1/u (u their collision probability), centred by their mean.",
)
class MagicPigMasker(StatefulMasker[MagicPigState]):
    """SimHash sampling with inclusion-probability weights (see the module)."""

    config_class = MagicPigConfig
    config: MagicPigConfig
    is_sampling = True
    #: Bytes of one key chunk's fp32 temporaries in a state build (see ``BUILD_CHUNK_BYTES``).
    build_chunk_bytes: int = BUILD_CHUNK_BYTES

    def key_chunk(self, row_elements: int) -> int:
        """Keys per chunk of a build whose fp32 temporaries hold ``row_elements`` per key."""
        return max(1, self.build_chunk_bytes // max(1, 4 * row_elements))

    # ------------------------------------------------------------------ hashing

    def planes(self, layer_idx: int | None, kv_heads: int, dim: int) -> torch.Tensor:
        """(Hkv, D, L * K) fp32 Gaussian hyperplanes seeded by ``seed`` and the layer."""
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + (layer_idx or 0))
        return torch.randn(kv_heads, dim, cfg.lsh_l * cfg.lsh_k, generator=generator)

    def _hash_keys(
        self,
        keys: torch.Tensor,
        centre: torch.Tensor,
        planes: torch.Tensor,
        mips_norm: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes (B, Hkv, L, n), norms (B, Hkv, n)) of ``keys`` (B, Hkv, n, D), in chunks
        within the build budget (``magicpig_hashing.hash_keys``)."""
        cfg = self.config
        step = self.key_chunk(keys.shape[0] * keys.shape[1] * planes.shape[-1])
        return hash_keys(keys, centre, planes, mips_norm, (cfg.lsh_k, cfg.lsh_l), step)

    # ------------------------------------------------------------------ state contract

    def build_state(self, inputs: AttentionInputs) -> MagicPigState:
        """Centre from the prompt's middle keys, hyperplanes, and the codes of every key; the
        prompt is the keys of this call (a layer's first call: the context and the question)."""
        cfg, keys, offset = self.config, inputs.keys, inputs.key_offset
        prompt_end = inputs.sequence_length
        low = max(cfg.sink_size, offset) - offset
        high = prompt_end - cfg.window_size - offset
        if high <= low:  # a short prompt: the mean of all its keys
            low, high = 0, keys.shape[2]
        b, h, _, d = keys.shape
        step = self.key_chunk(b * h * d)
        centre = (
            mean_keys(keys[:, :, low:high], step)
            if high > low
            else keys.new_zeros((b, h, d), dtype=torch.float32)
        )  # (B, Hkv, D)
        mips_norm = None
        if cfg.mips_transform:
            context = keys[:, :, : max(1, high)]  # (B, Hkv, n, D)
            mips_norm = largest_norm(context, centre, step).clamp_min(1e-6)  # (B, Hkv, 1)
        planes = self.planes(inputs.layer_idx, h, d + int(cfg.mips_transform)).to(keys.device)
        codes, norms = self._hash_keys(keys, centre, planes, mips_norm)
        return MagicPigState(
            centre,
            planes,
            index_codes(codes, cfg.lsh_k, in_place=True),  # codes: this build's own
            norms,
            mips_norm,
            prompt_end,
            prompt_end,
        )

    def extend_state(
        self, state: MagicPigState, inputs: AttentionInputs, new_keys: int
    ) -> MagicPigState:
        """Hash the new keys and append them; a state without centre, or one whose context was
        extended (keys it never saw precede the call's queries: a dense prefill), is rebuilt
        (padded at the front to the length the caller expects, those keys are cut right after)."""
        assert inputs.query_start is not None
        if state.centre is None or inputs.query_start > state.end:
            fresh = self.build_state(inputs)
            missing = state.index.size + new_keys - fresh.index.size
            if missing <= 0:
                return fresh
            codes = all_codes(fresh.index)  # (B, Hkv, L, n)
            pad = codes.new_zeros((*codes.shape[:3], missing))
            norms = fresh.norms.new_ones((*fresh.norms.shape[:2], missing))
            return replace(
                fresh,
                index=index_codes(
                    torch.cat([pad, codes], -1), self.config.lsh_k, in_place=True
                ),  # (B, Hkv, L, missing + n)
                norms=torch.cat([norms, fresh.norms], -1),  # (B, Hkv, missing + n)
            )
        keys = inputs.keys[:, :, inputs.keys.shape[2] - new_keys :]  # (B, Hkv, new, D)
        codes, norms = self._hash_keys(keys, state.centre, state.planes, state.mips_norm)
        return replace(
            state,
            end=inputs.sequence_length,
            index=append_codes(state.index, codes),
            norms=torch.cat([state.norms, norms], -1),  # (B, Hkv, n + new)
        )

    def truncate_state(self, state: MagicPigState, start: int, stop: int) -> MagicPigState:
        """Keep the codes of keys [start, stop); a cut into the prompt drops the centre."""
        new_end = state.end - state.index.size + stop
        kept = replace(
            state,
            index=cut_codes(state.index, start, stop),
            norms=state.norms[..., start:stop],
            end=new_end,
        )
        return replace(kept, centre=None) if new_end < state.prompt_end else kept

    # ------------------------------------------------------------------ sampling

    def _query_codes(self, inputs: AttentionInputs, state: MagicPigState) -> torch.Tensor:
        """(B, Hkv, G * Q, L) packed codes of the queries (normalised, not centred)."""
        queries = inputs.queries.float()
        b, h, q_len, _ = queries.shape
        h_kv = inputs.keys.shape[1]
        if self.config.mips_transform:
            unit = queries / queries.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            queries = torch.cat([unit, unit.new_zeros((b, h, q_len, 1))], -1)  # (B, H, Q, D + 1)
        grouped = queries.reshape(b, h_kv, (h // h_kv) * q_len, -1)  # (B, Hkv, G * Q, D')
        projected = grouped @ state.planes.to(queries.device).unsqueeze(0)  # (B, Hkv, GQ, L*K)
        return pack_codes(projected, self.config.lsh_k, self.config.lsh_l).transpose(2, 3)

    def _centred_dots(self, inputs: AttentionInputs, state: MagicPigState) -> torch.Tensor:
        """(B, H, Q, K) fp32 q . (k - c), a new tensor; q . k is read from the shared exact
        scores when no soft cap hides it, else computed over key chunks."""
        assert state.centre is not None
        queries = inputs.queries.float()
        if inputs.softcap is None:
            dots = inputs.exact_scores() / float(inputs.scaling or 1.0)  # (B, H, Q, K)
        else:
            step = self.key_chunk(inputs.keys.shape[0] * inputs.keys.shape[1] * queries.shape[3])
            dots = grouped_dots(queries, inputs.keys, step)  # (B, H, Q, K)
        centre = inputs.per_query_head(state.centre)  # (B, H, D)
        return dots.sub_((queries * centre.unsqueeze(2)).sum(-1, keepdim=True))

    def always_attended(self, inputs: AttentionInputs, state: MagicPigState) -> torch.Tensor:
        """(K,) bool: the keys of the dense split, at positions [0, sink_size), [P - window_size,
        P) and (``attend_generated``) [P, ...), P = ``state.prompt_end``."""
        cfg, end = self.config, state.prompt_end
        positions = inputs.key_positions()  # (K,)
        dense = (positions < cfg.sink_size) | (positions >= end - cfg.window_size)
        return dense if cfg.attend_generated else dense & (positions < end)

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus the dense split (:meth:`always_attended`, causal: up to each
        query's own position) at p = 1 and the colliding middle keys not active yet at p = u."""
        shape, device, cfg = inputs.mask_shape, inputs.keys.device, self.config
        if previous_mask.is_full_flag or shape[3] == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=device))
        state = self.state(inputs)
        counts = count_collisions(state.index, self._query_codes(inputs, state))  # uint8
        hit = (counts >= cfg.min_collisions).reshape(shape)  # (B, H, Q, K)
        del counts
        allowed = inputs.allowed_keys()
        if allowed is not None:
            hit &= allowed
        active = previous_mask.active()
        if active is not None:
            hit &= ~active
        fixed = self.always_attended(inputs, state)  # (K,)
        hit &= ~fixed
        query_norms = inputs.queries.float().norm(dim=-1, keepdim=True)  # (B, H, Q, 1)
        key_norms = inputs.per_query_head(state.norms).unsqueeze(2)  # (B, H, 1, K)
        lsh = (cfg.lsh_k, cfg.lsh_l, cfg.min_collisions)
        dots = self._centred_dots(inputs, state)  # (B, H, Q, K)
        probs = sampled_probabilities(dots, query_norms, key_norms, hit, lsh, cfg.u_offset)
        del dots, hit
        mask = previous_mask.merge(Mask.from_dense(probs, copy=False))
        causal = inputs.key_positions() <= inputs.query_positions().unsqueeze(-1)  # (Q, K)
        dense = fixed & causal
        return mask.with_active(dense if allowed is None else allowed & dense)


__all__ = [
    "MagicPigConfig",
    "MagicPigMasker",
    "MagicPigState",
    "collision_counts",
    "inclusion_probability",
    "pack_codes",
]
