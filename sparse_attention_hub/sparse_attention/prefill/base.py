"""The contract of a prefill masker: :class:`PrefillInputs` in, :class:`PrefillSelection` out.

A prefill call has queries (B, H, Q, D) at absolute positions ``query_start .. query_start +
Q - 1`` and keys (B, Hkv, K, D) at positions ``key_offset .. key_offset + K - 1`` (GQA: the
keys are not repeated; head h reads key head ``h // (H // Hkv)``). A pair (q, k) of call
indices is causal when ``query_start + q >= key_offset + k`` (and, on a sliding-window layer,
``query_start + q - key_offset - k < sliding_window``).

A selection says which pairs the prefill computes:

- ``blocks`` (B, H, ceil(Q / block_size), ceil(K / block_size)) bool: the (query block, key
  block) pairs of the call, block ``i`` holding call rows ``[i * block_size, (i + 1) *
  block_size)``; ``block_size`` is the selection's own (a method's block size need not be the
  engine's ``BlockMask`` block size: the engine converts);
- ``mask_mod`` (optional): a token-level restriction inside the selected blocks, a function
  ``(b, h, q_idx, kv_idx) -> bool tensor`` of call indices written with tensor indexing and
  elementwise ops only (no Python branching on values, no ``.item()``), so that it runs under
  FlexAttention's vmap and on broadcast index grids alike (e.g. ``q_idx`` (Q, 1), ``kv_idx``
  (1, K)). It closes over small tensors only: (B, H, K) columns, (B, H, Q + K) diagonals, never
  (Q, K).

The computed pairs of one masker are ``blocks[b, h, q // bs, k // bs] & mask_mod(b, h, q, k)``;
a config's maskers are united (any masker's pair is computed) and the engine intersects the
union with the causal pairs. Selections never hold an L x L tensor.

Example (Q = K = 8, block_size = 4, one head): sink block + diagonal blocks::

    blocks      pairs computed (causal cut)
    1 0         #.......
    1 1         ##......
                ###.....
                ####....
                ####....  <- rows 4..7 see key block 0 (sink) and 1 (diagonal)
                #####...
                ######..
                #######.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch

#: ``(b, h, q_idx, kv_idx) -> bool tensor``: a token-level restriction (see the module doc).
MaskMod = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class PrefillInputs:
    """One layer's prefill call as a prefill masker sees it.

    Attributes:
        queries: (B, H, Q, D), in the model's dtype.
        keys: (B, Hkv, K, D), not repeated for GQA.
        scaling: the softmax scale (1 / sqrt(D) unless the model says otherwise).
        query_start: absolute position of query row 0.
        key_offset: absolute position of key 0 (0 unless a sliding-window cache dropped keys).
        layer_idx: the layer, or None.
        sliding_window: the layer's window in tokens, or None (full attention).
        budget_bytes: the memory a method's temporaries may take at once (its scores are
            computed in query chunks that fit it: at 128k, Q x K scores never exist whole).
        padded_lengths: (Q', K') >= (Q, K), the lengths the compiled kernel sees when the
            engine pads the call to a shape bucket (None: not padded). A ``mask_mod`` whose
            closure holds tensors sized by Q or K sizes them to these (padded with entries
            that select nothing) and holds lengths and offsets as 0-dim tensors, never Python
            ints, so that one compiled kernel serves every length of a bucket.
        block_size: the engine's ``BlockMask`` block size (a selection at this size without a
            ``mask_mod`` becomes whole blocks, the cheapest form).
        softcap: Gemma-2's logit cap (scores are ``softcap * tanh(s / softcap)``), or None.
    """

    queries: torch.Tensor
    keys: torch.Tensor
    scaling: float
    query_start: int = 0
    key_offset: int = 0
    layer_idx: int | None = None
    sliding_window: int | None = None
    budget_bytes: int = 128 * 2**20
    block_size: int = 128
    softcap: float | None = None
    padded_lengths: tuple[int, int] | None = None

    @property
    def num_heads(self) -> int:
        """H, the query heads."""
        return int(self.queries.shape[1])

    @property
    def group_size(self) -> int:
        """H // Hkv: query heads per key head."""
        return int(self.queries.shape[1] // self.keys.shape[1])

    @property
    def query_length(self) -> int:
        """Q."""
        return int(self.queries.shape[2])

    @property
    def key_length(self) -> int:
        """K."""
        return int(self.keys.shape[2])

    def table_length(self, n: int, axis: str) -> int:
        """The length of a ``mask_mod`` table of ``n`` entries along ``axis`` ("q", "k" or
        "q+k") once padded to the kernel's lengths (``n`` itself without padding)."""
        if self.padded_lengths is None:
            return n
        q_pad, k_pad = self.padded_lengths
        real = {"q": self.query_length, "k": self.key_length}
        real["q+k"] = real["q"] + real["k"]
        padded = {"q": q_pad, "k": k_pad, "q+k": q_pad + k_pad}
        return n + padded[axis] - real[axis]

    def keys_per_head(self) -> torch.Tensor:
        """(B, H, K, D): the keys repeated to the query heads (a view, no copy)."""
        b, hkv, k, d = self.keys.shape
        g = self.group_size
        return self.keys[:, :, None].expand(b, hkv, g, k, d).reshape(b, hkv * g, k, d)

    def num_blocks(self, block_size: int) -> tuple[int, int]:
        """(query blocks, key blocks) at ``block_size``: ceil(Q / bs), ceil(K / bs)."""
        return math.ceil(self.query_length / block_size), math.ceil(self.key_length / block_size)


@dataclasses.dataclass(frozen=True)
class PrefillSelection:
    """What one prefill masker computes (see the module doc).

    Attributes:
        blocks: (B, H, ceil(Q / block_size), ceil(K / block_size)) bool.
        block_size: the block size of ``blocks`` in tokens.
        mask_mod: optional token-level restriction inside the selected blocks.
    """

    blocks: torch.Tensor
    block_size: int
    mask_mod: MaskMod | None = None

    def __post_init__(self) -> None:
        if self.blocks.dtype != torch.bool or self.blocks.dim() != 4:
            raise ValueError(
                "PrefillSelection.blocks must be a (B, H, query blocks, key blocks) bool "
                f"tensor, got {self.blocks.dtype} of shape {tuple(self.blocks.shape)}"
            )
        if self.block_size < 1:
            raise ValueError(f"PrefillSelection.block_size must be >= 1, got {self.block_size}")


@dataclasses.dataclass(frozen=True)
class PrefillMaskerConfig:
    """Base of every prefill masker's frozen, self-validating config dataclass."""


class PrefillMasker(ABC):
    """A sparse-prefill method: one layer's call in, the pairs to compute out.

    Subclasses set ``config_class`` and are registered with ``@register_prefill_masker(name,
    description)`` (``prefill/registry.py``), which sets ``name`` and ``description``.
    A prefill masker holds no state between calls.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_class: ClassVar[type[PrefillMaskerConfig]] = PrefillMaskerConfig

    def __init__(self, config: PrefillMaskerConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config

    @abstractmethod
    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        """The pairs of ``inputs``' call this method computes."""
