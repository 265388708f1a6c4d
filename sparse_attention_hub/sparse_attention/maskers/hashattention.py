"""HashAttention: top-k keys by the Hamming similarity of learned bit signatures.

Desai et al., 2025, "HashAttention: Semantic Sparsity for Faster Inference" (official code
xAlg-ai/HashAttention-1.0, ``hashattention/hashattention_llama.py``). Per layer and query head,
two learned MLPs (query and key; 3 linear layers D -> 128 -> 128 -> ``hat_bits`` = 32, SiLU
between) map a query and a key to ``hat_bits`` sign bits. The score of a key for a query is
the dot product of their +-1 signatures, ``bits - 2 * Hamming distance``; each (B, H, Q) row
keeps the ``heavy_size`` best-scoring keys among those not yet active in ``previous_mask``
(the paper's stack is sink 128 + local 128 + HashAttention, so "not yet active" means
neither sink nor local, as the official ``causal_heavy_recent_mask``).

Scores for one query over K = 8 keys (hat_bits = 4), sink and local already active::

    previous   #.....##
    scores     . 2 4 0 4 -2 . .       top-2 of the rest: keys 2 and 4 (tied at 4)
    result     #.#.#.##

Ties: the scores are integers and tie often. Among equal scores the key with the lower index
(the earlier position) wins; the rule is exact (one composite integer per key, Hamming
distance * K + index, is ranked smallest first), so the same inputs always give the same mask.

Weights come from a file (``weights_file``): safetensors by default, the published pickles only
with ``allow_pickle=True`` (see ``hashattention_weights`` for the tensor names and
``sah convert hashattention`` / ``sah train hashattention`` to produce a file).

GQA: as in the official code (which repeats K/V to the query heads before hashing) and the
reference framework, the key MLPs are per *query* head: query head h hashes the keys of its
KV head h // G with its own key MLP. The state therefore holds H (not Hkv) signatures per key.

State (through the ``StatefulMasker`` contract): the packed key signatures, word-major
(B, H, words, K) int32, 16 bits per word: 8 bytes per key and head for 32 bits (2x the paper's
32 bits), so that a popcount is one lookup in a 2**16-entry table, the fastest form found on a
CPU. New keys are hashed and appended; a rollback or a sliding window slices them. The official
code also caches the key signatures (``past_key_signatures``).

Differences from the official code, all written down here:

- A sign bit is ``logit > 0``; ``torch.sign`` in the official code gives 0 for a logit of
  exactly 0 (a measure-zero event), which would contribute 0 instead of -1 to the score.
- ``heavy_size`` >= K keeps every key (dense attention); the official code still ranks.
- Forbidden keys stay forbidden: a key the attention mask forbids is never selected, and a
  row with fewer allowed inactive keys than ``heavy_size`` gets all of them.
- The signatures are computed in fp32 (the official code runs them in the model's dtype).
- A call outside a model (``layer_idx`` None) reads the weights of layer 0.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    MaskerConfig,
    Size,
    check_size,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_mlp import (
    WORD_BITS,
    hamming_distance,
    key_logits,
    mlp_logits,
    pack_signs,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    HatLayer,
    HatWeights,
    check_layer,
    load_hat_weights,
)
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker
from sparse_attention_hub.sparse_attention.maskers.topk import budget_or_mask

if TYPE_CHECKING:
    from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape

#: Default bytes of one key chunk's fp32 activations (B, H, chunk, hidden) in a state build:
#: 512 keys at 32 heads and hidden 128; the build's peak is a few of these, not the keys'
#: fp32 activations (about 2 GiB at 128k keys).
BUILD_CHUNK_BYTES = 8 << 20


def key_chunk(row_elements: int, budget_bytes: int) -> int:
    """Keys per chunk of a build whose fp32 temporaries hold ``row_elements`` per key."""
    return max(1, budget_bytes // max(1, 4 * row_elements))


@dataclass(frozen=True)
class HashAttentionConfig(MaskerConfig):
    """``heavy_size``: int tokens or float fraction of K; ``weights_file``: the MLPs
    (safetensors; see ``hashattention_weights``); ``hat_bits``: signature bits (32);
    ``allow_pickle``: accept a pickle (the published format; it runs code from the file)."""

    heavy_size: Size
    weights_file: str
    hat_bits: int = 32
    allow_pickle: bool = False

    artefact_fields: ClassVar[tuple[str, ...]] = ("weights_file",)

    def __post_init__(self) -> None:
        check_size(self, "heavy_size", self.heavy_size, minimum=1)
        if not isinstance(self.weights_file, str) or not self.weights_file:
            raise TypeError(
                "HashAttentionConfig.weights_file must be a non-empty path string, got "
                f"{self.weights_file!r} (make one with `sah train hashattention`)"
            )
        if isinstance(self.hat_bits, bool) or not isinstance(self.hat_bits, int):
            raise TypeError(f"HashAttentionConfig.hat_bits must be an int, got {self.hat_bits!r}")
        if self.hat_bits < 1:
            raise ValueError(f"HashAttentionConfig.hat_bits must be >= 1, got {self.hat_bits}")
        if not isinstance(self.allow_pickle, bool):
            raise TypeError(
                f"HashAttentionConfig.allow_pickle must be a bool, got {self.allow_pickle!r}"
            )

    def artefact_problems(
        self, model: ModelShape | None = None, layers: Collection[int] | None = None
    ) -> list[str]:
        """The file exists and loads as the masker loads it (metadata, floating and finite
        tensors, chained shapes ending in ``hat_bits``); with ``model``: no layer beyond the
        model's, weights for every layer in ``layers`` (default: all), and MLPs for the
        model's query heads and head size."""
        problems = super().artefact_problems(model, layers)
        if problems:
            return problems
        source = self.weights_file
        try:
            weights = load_hat_weights(
                source, self.allow_pickle, None if model is None else model.layers
            )
            for layer_idx, layer in weights.items():
                check_layer(layer, source, layer_idx, self.hat_bits)
        except (OSError, ValueError) as exc:
            return [str(exc)]
        return [] if model is None else weights_shape_problems(weights, source, model, layers)


def weights_shape_problems(
    weights: HatWeights, source: str, model: ModelShape, layers: Collection[int] | None
) -> list[str]:
    """Layers of ``layers`` (default: all of ``model``'s) that ``weights`` lacks, and layers
    whose MLPs are not for ``model``'s query heads and head size; one line each kind."""
    wanted = range(model.layers) if layers is None else sorted(layers)
    problems = []
    missing = [i for i in wanted if i not in weights]
    if missing:
        problems.append(
            f"{source}: no HashAttention weights for layer(s) {missing} of the model (the file "
            f"has layers {sorted(weights)}); train them with `sah train hashattention`"
        )
    expected = (model.heads, model.head_dim)
    wrong = [
        i for i in wanted if i in weights and (weights[i].heads, weights[i].head_dim) != expected
    ]
    if wrong:
        first = weights[wrong[0]].query[0][0]
        problems.append(
            f"{source}: layers.{wrong[0]}.query.0.weight has shape {tuple(first.shape)}, "
            f"expected ({model.heads}, {model.head_dim}, out) for the model's {model.heads} "
            f"query heads of size {model.head_dim} (layers {wrong}); the file was made for "
            "another model"
        )
    return problems


def hamming_scores(query_signs: torch.Tensor, key_signs: torch.Tensor, bits: int) -> torch.Tensor:
    """``bits - 2 * Hamming distance`` (the dot product of the +-1 signatures) of packed
    signatures: queries (B, H, Q, W), keys word-major (B, H, W, K) -> (B, H, Q, K) int32."""
    return bits - 2 * hamming_distance(query_signs, key_signs).int()


def nearest_by_distance_then_position(
    distance: torch.Tensor, ineligible: torch.Tensor | None, k: int, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` eligible keys of smallest integer ``distance`` (B, H, Q, K) in [0, bits] per
    row, ties to the lower key index: (indices (B, H, Q, k), keep (B, H, Q, k) bool, False
    where a row had fewer than k eligible keys). ``ineligible``: bool broadcastable to
    (B, H, Q, K), or None.

    One composite integer per key, distance * K + index, ranks both at once (smallest
    first); ineligible keys get distance bits + 1, above every eligible one."""
    n_k = distance.shape[-1]
    dtype = torch.int32 if (bits + 2) * n_k < 2**31 else torch.int64
    composite = distance.to(dtype, copy=True)  # (B, H, Q, K), filled in place below
    if ineligible is not None:
        composite.masked_fill_(ineligible, bits + 1)
    composite.mul_(n_k).add_(torch.arange(n_k, device=distance.device, dtype=dtype))
    top = torch.topk(composite, k, dim=-1, largest=False, sorted=False)
    return top.indices, top.values < (bits + 1) * n_k


@register_masker(
    "hashattention",
    "Desai et al., 2025, 'HashAttention: Semantic Sparsity for Faster Inference' "
    "(xAlg-ai/HashAttention-1.0): learned per-head MLPs hash queries and keys to hat_bits sign "
    "bits; each row keeps the heavy_size keys of best Hamming similarity (weights_file from "
    "`sah train hashattention`).",
)
class HashAttentionMasker(StatefulMasker[torch.Tensor]):
    """Learned-hash top-k (see the module for the rule, the tie rule and every deviation)."""

    config_class = HashAttentionConfig
    config: HashAttentionConfig
    #: Bytes of one key chunk's fp32 MLP activations (B, H, chunk, hidden) in a state build.
    build_chunk_bytes: int = BUILD_CHUNK_BYTES

    def __init__(self, config: MaskerConfig) -> None:
        super().__init__(config)
        self.weights: HatWeights = load_hat_weights(
            self.config.weights_file, self.config.allow_pickle
        )
        for layer_idx, layer in self.weights.items():
            check_layer(layer, self.config.weights_file, layer_idx, self.config.hat_bits)
        self._on_device: dict[tuple[int, torch.device], HatLayer] = {}

    def layer_weights(self, inputs: AttentionInputs) -> HatLayer:
        """This call's layer of MLPs on the keys' device, checked against the call's shapes."""
        layer_idx = 0 if inputs.layer_idx is None else inputs.layer_idx
        device = inputs.keys.device
        cached = self._on_device.get((layer_idx, device))
        if cached is not None:
            return cached
        source = self.config.weights_file
        if layer_idx not in self.weights:
            raise ValueError(
                f"{source}: no HashAttention weights for layer {layer_idx} (the file has layers "
                f"{sorted(self.weights)}); train them for this model with `sah train hashattention`"
            )
        layer = self.weights[layer_idx]
        heads, dim = inputs.queries.shape[1], inputs.queries.shape[3]
        if (layer.heads, layer.head_dim) != (heads, dim):
            raise ValueError(
                f"{source}: layer {layer_idx}: the MLPs are for {layer.heads} query heads of size "
                f"{layer.head_dim} (layers.{layer_idx}.query.0.weight "
                f"{tuple(layer.query[0][0].shape)}), but the model has {heads} heads of size "
                f"{dim}: expected shape ({heads}, {dim}, out)"
            )
        moved = layer.to(device)
        self._on_device[(layer_idx, device)] = moved
        return moved

    # ------------------------------------------------------------------ state contract

    def key_signatures(self, inputs: AttentionInputs, keys: torch.Tensor) -> torch.Tensor:
        """Packed signatures, word-major (B, H, words, N) int32, of ``keys`` (B, Hkv, N, D),
        hashed in chunks of :func:`key_chunk` keys (the fp32 MLP activations of all N keys
        would be many times the size of the keys)."""
        mlp = self.layer_weights(inputs).key
        b, _, n, _ = keys.shape
        heads = mlp[0][0].shape[0]
        words = -(-mlp[-1][0].shape[-1] // WORD_BITS)
        out = torch.empty(b, heads, words, n, dtype=torch.int32, device=keys.device)
        step = key_chunk(b * heads * max(w.shape[-1] for w, _ in mlp), self.build_chunk_bytes)
        for start in range(0, n, step):
            chunk = keys[:, :, start : start + step]  # (B, Hkv, c, D)
            signs = pack_signs(key_logits(chunk, mlp))  # (B, H, c, W)
            out[..., start : start + step] = signs.transpose(-1, -2)  # (B, H, W, c)
        return out

    def build_state(self, inputs: AttentionInputs) -> torch.Tensor:
        return self.key_signatures(inputs, inputs.keys)

    def extend_state(
        self, state: torch.Tensor, inputs: AttentionInputs, new_keys: int
    ) -> torch.Tensor:
        new = self.key_signatures(inputs, inputs.keys[:, :, inputs.keys.shape[2] - new_keys :])
        return torch.cat([state, new], dim=3)  # (B, H, words, K)

    def truncate_state(self, state: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return state[..., start:stop]

    # ------------------------------------------------------------------ selection

    def distances(self, inputs: AttentionInputs) -> torch.Tensor:
        """(B, H, Q, K) Hamming distances (uint8 up to 255 bits) of every query and key."""
        query_signs = pack_signs(mlp_logits(inputs.queries, self.layer_weights(inputs).query))
        return hamming_distance(query_signs, self.state(inputs))

    def scores(self, inputs: AttentionInputs) -> torch.Tensor:
        """(B, H, Q, K) int32 ``hat_bits - 2 * Hamming distance`` (higher = keep)."""
        return self.config.hat_bits - 2 * self.distances(inputs).int()

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus each row's ``heavy_size`` best inactive allowed keys."""
        k, done = budget_or_mask(self.config.heavy_size, inputs, previous_mask)
        if done is not None:
            return done
        ineligible = previous_mask.active()
        allowed = inputs.allowed_keys()
        if allowed is not None:
            ineligible = ~allowed if ineligible is None else ineligible | ~allowed
        indices, keep = nearest_by_distance_then_position(
            self.distances(inputs), ineligible, k, self.config.hat_bits
        )
        return previous_mask.with_active_indices(indices, keep)


__all__ = [
    "HashAttentionConfig",
    "HashAttentionMasker",
    "hamming_scores",
    "key_chunk",
    "nearest_by_distance_then_position",
    "weights_shape_problems",
]
