"""``AttentionInputs``: everything one attention call hands to the maskers, in one frozen object.

Positions. The queries are the tokens at absolute positions ``query_start ..
query_start + Q - 1``; the keys end at the last query (a causal cache returns its keys up to
and including the newest token). On a full-attention layer the keys are the whole sequence
(``key_offset == 0``); on a sliding-window layer the cache keeps only the last keys, so key
index 0 is not position 0. Q=2 queries at positions 8, 9 over K=5 cached keys::

    position   0 1 2 3 4 5 6 7 8 9
    keys                 0 1 2 3 4      key_offset = 8 + 2 - 5 = 5
    queries                    0 1      query_start = 8

Position-based maskers (sink, local, page boundaries) read :meth:`AttentionInputs.key_positions`
and :meth:`AttentionInputs.query_positions`, so they are right on both kinds of layer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch

from sparse_attention_hub.sparse_attention.attention import (
    KV_CHUNK_BYTES,
    ScoreCache,
    allowed_keys,
    default_scaling,
)


def model_layers(module: Any) -> int | None:
    """The layer count of the model an attention ``module`` belongs to (its config's
    ``num_hidden_layers``), or None."""
    value = getattr(getattr(module, "config", None), "num_hidden_layers", None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclasses.dataclass(frozen=True)
class AttentionInputs:
    """The inputs of one attention call of one layer (read only for maskers).

    Build one directly (``AttentionInputs(queries, keys, values)``);
    ``ResearchAttention.custom_attention`` builds one from the HF attention-interface call.
    """

    queries: torch.Tensor
    """(B, H, Q, D) queries of this call."""
    keys: torch.Tensor
    """(B, Hkv, K, D) keys the queries may attend to; H is a multiple of Hkv (GQA)."""
    values: torch.Tensor
    """(B, Hkv, K, Dv) values, one per key."""
    attention_mask: torch.Tensor | None = None
    """None, bool (True = may attend) or additive float, broadcastable to (B, H, Q, K); a
    longer last dimension is cut to K. See :func:`~.attention.forbidden_entries`."""
    scaling: float | None = None
    """Score scale; None on input becomes 1 / sqrt(D), so it is always a float afterwards."""
    dropout: float = 0.0
    """Attention dropout probability (0 in evaluation; maskers normally ignore it)."""
    layer_idx: int | None = None
    """The layer this call belongs to (None outside a model)."""
    num_layers: int | None = None
    """The model's number of layers (its config's ``num_hidden_layers``; None outside a model
    or where the attention module has no config)."""
    query_start: int | None = None
    """Absolute position of the first query; None on input means K - Q (the queries are the
    last Q keys and the keys start at position 0)."""
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The model's other attention arguments, as given: ``s_aux`` / ``sinks`` (H,) per-head
    sink logits, ``softcap``, ``sliding_window``, ``position_ids`` (B, Q), ..."""
    score_cache: ScoreCache = dataclasses.field(default_factory=ScoreCache)
    """The exact-score cache this call's maskers and its softmax share."""
    state: Any = None
    """This layer's state of the masker being called (stateful maskers only, else None)."""
    key_start: int | None = None
    """Absolute position of key 0; None means the keys end at the last query
    (``query_start + Q - K``, floored at 0). Set for a block of queries (:meth:`query_block`)."""
    kv_chunk_bytes: int = KV_CHUNK_BYTES
    """The most fp32 bytes of bf16/fp16 K or V the exact scores and the softmax upcast at once
    (the research attention gives half its score budget); it never changes a result."""

    def __post_init__(self) -> None:
        if self.queries.dim() != 4 or self.keys.dim() != 4:
            raise ValueError(
                "AttentionInputs: queries and keys must be 4-D (B, H, Q, D) and (B, Hkv, K, D), "
                f"got {tuple(self.queries.shape)} and {tuple(self.keys.shape)}"
            )
        if self.scaling is None:
            object.__setattr__(self, "scaling", default_scaling(self.queries.shape[-1]))
        if self.query_start is None:
            object.__setattr__(self, "query_start", self.keys.shape[2] - self.queries.shape[2])

    # ------------------------------------------------------------------ shapes and positions

    @property
    def mask_shape(self) -> tuple[int, int, int, int]:
        """(B, H, Q, K): the shape of every mask of this call."""
        q, k = self.queries.shape, self.keys.shape
        return (q[0], q[1], q[2], k[2])

    @property
    def group_size(self) -> int:
        """G = H / Hkv: query heads per key/value head."""
        return self.queries.shape[1] // max(1, self.keys.shape[1])

    @property
    def key_offset(self) -> int:
        """Absolute position of key 0 (0 on full-attention layers)."""
        if self.key_start is not None:
            return self.key_start
        assert self.query_start is not None  # set in __post_init__
        return max(0, self.query_start + self.queries.shape[2] - self.keys.shape[2])

    @property
    def sequence_length(self) -> int:
        """Absolute position just after the last key: key_offset + K."""
        return self.key_offset + self.keys.shape[2]

    def key_positions(self) -> torch.Tensor:
        """(K,) int64 absolute positions of the keys."""
        offset = self.key_offset
        return torch.arange(offset, offset + self.keys.shape[2], device=self.keys.device)

    def query_positions(self) -> torch.Tensor:
        """(Q,) int64 absolute positions of the queries."""
        assert self.query_start is not None  # set in __post_init__
        start = self.query_start
        return torch.arange(start, start + self.queries.shape[2], device=self.queries.device)

    def query_block(self, start: int, stop: int) -> AttentionInputs:
        """The inputs of queries ``start:stop`` only (same keys, same key positions), with
        their own score cache: (B, H, stop - start, D) queries, the attention mask and
        ``position_ids`` cut to those rows where they have one row per query."""
        q = self.queries.shape[2]
        mask = self.attention_mask
        if mask is not None and mask.dim() >= 2 and mask.shape[-2] == q:
            mask = mask[..., start:stop, :]
        extras = dict(self.extras)
        positions = extras.get("position_ids")
        if isinstance(positions, torch.Tensor) and positions.dim() and positions.shape[-1] == q:
            extras["position_ids"] = positions[..., start:stop]
        assert self.query_start is not None  # set in __post_init__
        return dataclasses.replace(
            self,
            queries=self.queries[:, :, start:stop],
            attention_mask=mask,
            query_start=self.query_start + start,
            extras=extras,
            score_cache=ScoreCache(),
            state=None,
            key_start=self.key_offset,
        )

    # ------------------------------------------------------------------ derived tensors

    def allowed_keys(self) -> torch.Tensor | None:
        """Bool, broadcastable to (B, H, Q, K): keys the attention mask lets each query see;
        None when all are allowed."""
        return allowed_keys(self.attention_mask, self.keys.shape[2])

    def exact_scores(self) -> torch.Tensor:
        """(B, H, Q, K) fp32 scaled, soft-capped scores plus the attention mask (forbidden = -inf),
        computed once per call and shared. Read only: never write into it."""
        return self.score_cache.get(
            self.queries,
            self.keys,
            self.scaling,
            self.attention_mask,
            self.softcap,
            self.kv_chunk_bytes,
        )

    @property
    def softcap(self) -> float | None:
        """Gemma-2's attention logit cap from :attr:`extras` (None: no cap). The exact scores
        carry it: ``softcap * tanh(scores / softcap)``."""
        cap = self.extras.get("softcap")
        return None if cap is None else float(cap)

    def per_query_head(self, tensor: torch.Tensor) -> torch.Tensor:
        """A (B, Hkv, ...) tensor repeated to (B, H, ...) so head h reads KV head h // G."""
        group = self.group_size
        return tensor if group == 1 else tensor.repeat_interleave(group, dim=1)  # (B, H, ...)

    @property
    def sinks(self) -> torch.Tensor | None:
        """(H,) per-head sink logits (GPT-OSS ``s_aux``) from :attr:`extras`, or None."""
        sinks = self.extras.get("s_aux")
        return self.extras.get("sinks") if sinks is None else sinks
