"""Double Sparsity: top-k keys from a few offline-ranked channels of q and k, fake-quantised.

Yang et al., 2024, "Post-Training Sparse Attention with Double Sparsity" (official code
andy-yang-1/DoubleSparse; this follows ``LongBench/modify_llama.py``,
``LlamaAttention_heavy_hitter``, the path the paper's accuracy numbers came from):

- Per layer and head an offline calibration ranks the D channels (a channel file, see
  ``double_sparsity_channels``; ``sah calibrate double-sparsity`` writes one for any model).
  The first r = D / ``group_factor`` channels of each head's list are its label channels.
- q and k restricted to those channels are fake-quantised per vector (``pseudo_quantize``:
  min-max over the r channels to 2**``label_bits`` levels, round, clamp, dequantise; a
  constant vector keeps its value; ``label_bits`` = 16 means no quantisation, as upstream).
- Approximate score s = q~ . k~ / sqrt(r) plus the attention mask; each (query head, query)
  row keeps its ``heavy_size`` highest-scoring keys. No sink or window is forced: stack
  ``sink`` and ``local`` before it (and keep layers 0-1 dense with ``dense_layers``).

Label channels 2 of D = 8, heavy_size 2, one query::

    q~ . k~ / sqrt(r)    0.1  2.3  -0.4  1.9  1.9  0.0
    kept                       #          #              (the tie 1.9/1.9: the earlier key)

Ties: quantised labels tie often. Among keys with equal scores the earlier key (lower
position) is kept first, so the same inputs always give the same mask.

State (``StatefulMasker``): :class:`LabelCache`, the quantised label channels of the keys
(B, Hc, K, r), Hc = H for "q"/"qk" lists and Hkv for "k" lists, stored as their levels (uint8)
and each vector's fp32 low and scale, which rebuild the fp32 labels bit for bit (about 0.38x
the bf16 K at Llama-3.1-8B's shape with the defaults; fp32 labels would be 1.0x; see
``double_sparsity_labels``); a call scores the levels directly, q . level / scale + (sum of
q) * low, over key chunks within its budget (one chunk when they fit on an accelerator, a few
MiB on a CPU). The build encodes the keys in chunks. New keys are labelled
and written after the others (in place, in buffers with room); a rollback or a sliding
window slices them. A key's label depends on that key only, so extending equals a fresh build
exactly.

GQA: the official file holds ``q_proj`` lists per query head and ``k_proj`` lists per KV
head. With "q" (and "qk") every query head h reads its own channels of the keys of its KV
head h // G, so the label cache is per query head; with "k" the G query heads of a group
share their KV head's channels and labels.

Differences from the official code, all written down here:

- Selection is additive, as every top-k masker here: the ``heavy_size`` keys are the best of
  the keys not already active (sink, window), so a row holds exactly sink + window +
  ``heavy_size`` keys. The official code has no sink or window and keeps ``heavy_const`` keys
  over all positions.
- The official code runs dense attention on every multi-token call (prefill); here the
  context prefill is dense (the adapter) and multi-token question calls select per row.
- "k" lists with GQA: the official gather of per-KV-head lists against repeated keys fails
  on shapes; here they are shared within the group (above).
- Defaults: ``group_factor`` 8 (r = 16 of 128 channels) and ``label_bits`` 4, the paper's
  setting. The official LongBench script passes ``--group_factor 2 --q_bits 2``, but its
  ``convert_kvcache_llama_heavy_recent`` drops ``label_bits`` when it recurses into the
  decoder layers, so 4-bit labels are what ran; set ``group_factor: 2`` to match that script.
- A ``heavy_size`` >= K keeps every key (dense attention), as the official top-k does.
- Scores are computed in fp32 (upstream in the model's fp16), from the stored levels as
  (q . level) / scale + (sum of q) * low (``double_sparsity_labels``: the product with the
  fake-quantised labels summed in another order, equal up to fp32 rounding); ranking is
  deterministic (ties above), upstream's unstable sort is not.
- As upstream, channels ranked on pre-RoPE q/k are applied to the post-RoPE q and k the
  attention receives.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch

from sparse_attention_hub.sparse_attention.attention import build_chunk_bytes
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    MaskerConfig,
    Size,
    check_size,
)
from sparse_attention_hub.sparse_attention.maskers.device_paths import chunk_bytes
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
    PROJECTIONS,
    layer_channels,
    read_channel_file,
    rows_per_layer,
)
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_labels import (
    LabelCache,
    encode,
    pseudo_quantize,
)
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker
from sparse_attention_hub.sparse_attention.maskers.topk import (
    TopKMasker,
    budget_or_mask,
    top_k_earliest,
)

if TYPE_CHECKING:
    from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape


@dataclass(frozen=True)
class DoubleSparsityConfig(MaskerConfig):
    """``heavy_size``: int tokens or float fraction of K; ``channel_file``: the JSON channel
    rankings (official layout); ``group_factor``: r = D / group_factor label channels (8);
    ``label_bits``: bits of the fake-quantised labels (4; 16 = none); ``channel_selection``:
    "q" (official default), "k" or "qk" lists of the file."""

    heavy_size: Size
    channel_file: str
    group_factor: int = 8
    label_bits: int = 4
    channel_selection: str = "q"

    artefact_fields: ClassVar[tuple[str, ...]] = ("channel_file",)

    def __post_init__(self) -> None:
        check_size(self, "heavy_size", self.heavy_size, minimum=1)
        for field, low, high in (("group_factor", 1, None), ("label_bits", 1, 16)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"DoubleSparsityConfig.{field} must be an int, got {value!r}")
            if value < low or (high is not None and value > high):
                allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
                raise ValueError(f"DoubleSparsityConfig.{field} must be {allowed}, got {value}")
        if self.channel_selection not in PROJECTIONS:
            raise ValueError(
                "DoubleSparsityConfig.channel_selection must be one of "
                f"{sorted(PROJECTIONS)}, got {self.channel_selection!r}"
            )
        if not isinstance(self.channel_file, str) or not self.channel_file:
            raise TypeError(
                "DoubleSparsityConfig.channel_file must be the path of a channel file, got "
                f"{self.channel_file!r}"
            )

    def artefact_problems(
        self, model: ModelShape | None = None, layers: Collection[int] | None = None
    ) -> list[str]:
        """The file exists and reads as the masker reads it (JSON, permutation rows); with
        ``model``: no layer beyond the model's, and (H, D) / (Hkv, D) rows for every layer
        in ``layers`` (default: all of the model's)."""
        problems = super().artefact_problems(model, layers)
        if problems:
            return [
                f"{problem}; write one with `sah calibrate double-sparsity MODEL --out FILE`"
                for problem in problems
            ]
        try:
            table = read_channel_file(self.channel_file, self.channel_selection)
        except ValueError as exc:
            return [str(exc)]
        return [] if model is None else channel_shape_problems(self, table, model, layers)


def channel_shape_problems(
    config: DoubleSparsityConfig,
    table: Mapping[int, torch.Tensor],
    model: ModelShape,
    layers: Collection[int] | None,
) -> list[str]:
    """Layers of ``table`` beyond ``model``'s, layers of ``layers`` (default: all) it lacks,
    and layers whose rows are not the model's shape; one line each kind."""
    path = config.channel_file
    where = f"double_sparsity channel file {path!r}"
    problems = []
    extra = sorted(i for i in table if i >= model.layers)
    if extra:
        problems.append(
            f"{where} has entries for layer(s) {extra}, but the model has {model.layers} "
            "layers; the file was made for another model"
        )
    wanted = range(model.layers) if layers is None else sorted(layers)
    missing = [i for i in wanted if i not in table]
    if missing:
        problems.append(
            f"{where} has no {PROJECTIONS[config.channel_selection]!r} entry for layer(s) "
            f"{missing} of the model (the file covers layers {sorted(table)}); calibrate this "
            "model with `sah calibrate double-sparsity`"
        )
    rows = rows_per_layer(config.channel_selection, model.heads, model.kv_heads)
    wrong = [i for i in wanted if i in table and tuple(table[i].shape) != (rows, model.head_dim)]
    if wrong:
        try:
            layer_channels(
                table, path, wrong[0], config.channel_selection,
                model.heads, model.kv_heads, model.head_dim,
            )  # fmt: skip
        except ValueError as exc:
            problems.append(f"{exc} (layers {wrong})")
    return problems


def select_channels(x: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
    """Label channels of ``x`` (B, Hx, N, D) for ``channels`` (Hc, r), Hc a multiple of Hx:
    (B, Hc, N, r), where row c reads head c // (Hc / Hx) of ``x`` (queries: Hc = Hx; keys
    with per-query-head lists: G rows per KV head, no (B, H, N, D) copy of the keys)."""
    b, h_x, n, _ = x.shape
    h_c, r = channels.shape
    group = h_c // h_x
    index = channels.reshape(1, h_x, 1, group * r).expand(b, h_x, n, group * r)
    picked = torch.gather(x, -1, index)  # (B, Hx, N, G * r)
    picked = picked.reshape(b, h_x, n, group, r).transpose(2, 3)  # (B, Hx, G, N, r)
    return picked.reshape(b, h_c, n, r)  # (B, Hc, N, r)


#: The fewest keys per chunk of :func:`label_scores`: a product over a few keys takes other
#: BLAS kernels, whose sums can round differently from those of the whole product.
SCORE_CHUNK_MIN_KEYS = 256


def label_scores(q: torch.Tensor, cache: LabelCache, budget: int) -> torch.Tensor:
    """(B, Hc, R, K) fp32 ``q`` (B, Hc, R, r) times the cache's labels
    (:meth:`LabelCache.scores_of`), over chunks of keys whose fp32 levels hold at most
    ``budget`` bytes (``device_paths.chunk_bytes``: one chunk when they fit on an accelerator,
    a few MiB on a CPU; at least ``SCORE_CHUNK_MIN_KEYS`` keys, so the scores are those of one
    product)."""
    b, h_c, rows, r = q.shape
    n = cache.length
    step = max(SCORE_CHUNK_MIN_KEYS, chunk_bytes(q, budget) // max(1, b * h_c * r * 4))
    if step >= n:
        return cache.scores_of(q, 0, n)
    scores = q.new_empty((b, h_c, rows, n))
    for start in range(0, n, step):
        stop = min(n, start + step)
        scores[..., start:stop] = cache.scores_of(q, start, stop)
    return scores


@register_masker(
    "double_sparsity",
    "Yang et al., 2024, 'Post-Training Sparse Attention with Double Sparsity' "
    "(andy-yang-1/DoubleSparse): each query head keeps its heavy_size keys with the highest "
    "q.k over D / group_factor offline-calibrated channels, quantised to label_bits.",
)
class DoubleSparsityMasker(StatefulMasker[LabelCache], TopKMasker):
    """Double Sparsity top-k (see the module for the rule, the ties and every deviation)."""

    config_class = DoubleSparsityConfig
    config: DoubleSparsityConfig

    def __init__(self, config: MaskerConfig) -> None:
        super().__init__(config)
        # The whole file is read and checked here, before any attention call.
        self._layers = read_channel_file(self.config.channel_file, self.config.channel_selection)
        self._checked: dict[tuple[int | None, int, int, int, torch.device], torch.Tensor] = {}

    def size(self) -> Size:
        return self.config.heavy_size

    def channels(self, inputs: AttentionInputs) -> torch.Tensor:
        """(Hc, r) int64 label channels of the call's layer, on the keys' device (checked
        against the call's shape on the first use of a layer)."""
        h, h_kv, d = inputs.queries.shape[1], inputs.keys.shape[1], inputs.keys.shape[3]
        key = (inputs.layer_idx, h, h_kv, d, inputs.keys.device)
        if key not in self._checked:
            ranked = layer_channels(
                self._layers,
                self.config.channel_file,
                inputs.layer_idx,
                self.config.channel_selection,
                h,
                h_kv,
                d,
            )
            r = max(1, d // self.config.group_factor)
            self._checked[key] = ranked[:, :r].contiguous().to(inputs.keys.device)
        return self._checked[key]

    # ------------------------------------------------------------------ state contract

    def _encode(self, inputs: AttentionInputs, keys: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The label cache parts of ``keys`` (B, Hkv, n, D) (``double_sparsity_labels``)."""
        return encode(select_channels(keys, self.channels(inputs)), self.config.label_bits)

    def build_state(self, inputs: AttentionInputs) -> LabelCache:
        """The labels of every key, encoded over chunks of keys whose fp32 labels hold at most
        a sixteenth of the bytes of K (and the call's budget), written into the cache."""
        keys = inputs.keys
        b, n = keys.shape[0], keys.shape[2]
        h_c, r = self.channels(inputs).shape
        step = max(1, build_chunk_bytes(keys, inputs.kv_chunk_bytes, 16) // (b * h_c * r * 4))
        first = self._encode(inputs, keys[:, :, :step])
        cache = LabelCache.of(first, room=n - first[0].shape[2] + max(n // 8, 256))
        for start in range(step, n, step):
            cache = cache.extended(self._encode(inputs, keys[:, :, start : start + step]))
        return cache

    def extend_state(self, state: LabelCache, inputs: AttentionInputs, new_keys: int) -> LabelCache:
        return state.extended(
            self._encode(inputs, inputs.keys[:, :, inputs.keys.shape[2] - new_keys :])
        )

    def truncate_state(self, state: LabelCache, start: int, stop: int) -> LabelCache:
        return state.cut(start, stop)

    # ------------------------------------------------------------------ selection

    def score(self, inputs: AttentionInputs) -> torch.Tensor:
        """(B, H, Q, K) fp32 approximate scores q~ . k~ / sqrt(r); forbidden keys -inf."""
        cache = self.state(inputs)
        channels = self.channels(inputs)  # (Hc, r)
        b, h, n_q, _ = inputs.queries.shape
        h_c, r = channels.shape
        if h_c != h:  # "k" lists: query head h uses its KV head's channels
            channels = channels.repeat_interleave(h // h_c, dim=0)  # (H, r)
        q = pseudo_quantize(
            select_channels(inputs.queries, channels).float(), self.config.label_bits
        )
        q = q.reshape(b, h_c, (h // h_c) * n_q, r)  # (B, Hc, G' * Q, r)
        scores = label_scores(q, cache, inputs.kv_chunk_bytes).reshape(b, h, n_q, -1)
        scores = scores.div_(math.sqrt(r))  # (B, H, Q, K)
        allowed = inputs.allowed_keys()
        if allowed is not None:
            scores = scores.masked_fill_(~allowed, float("-inf"))
        return scores

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus each row's ``heavy_size`` best inactive keys (see module)."""
        k, done = budget_or_mask(self.config.heavy_size, inputs, previous_mask)
        if done is not None:
            return done
        scores = self.score(inputs)  # (B, H, Q, K), this call's own tensor
        active = previous_mask.active()
        if active is not None:
            scores.masked_fill_(active, float("-inf"))
        # No fast path for rows without a tie at the k-th place: telling them apart would
        # read a flag from the device (a host wait on every decode step).
        return previous_mask.with_active(top_k_earliest(scores, k))


__all__ = [
    "DoubleSparsityConfig",
    "DoubleSparsityMasker",
    "LabelCache",
    "label_scores",
    "pseudo_quantize",
    "select_channels",
    "top_k_earliest",
]
