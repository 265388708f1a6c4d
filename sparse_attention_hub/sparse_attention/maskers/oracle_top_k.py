"""Oracle top-k: the ``heavy_size`` keys with the highest exact attention scores.

An upper bound for approximate top-k methods (HashAttention, Quest, ...): it reads every key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.base import MaskerConfig, Size, check_size
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.topk import TopKMasker


@dataclass(frozen=True)
class OracleTopKConfig(MaskerConfig):
    """``heavy_size``: int tokens or float fraction of K."""

    heavy_size: Size

    def __post_init__(self) -> None:
        check_size(self, "heavy_size", self.heavy_size, minimum=1)


@register_masker("oracle_top_k", "The heavy_size inactive keys with the highest exact scores.")
class OracleTopK(TopKMasker):
    """Top-k by the exact scaled scores (attention mask included)."""

    config_class = OracleTopKConfig
    config: OracleTopKConfig

    def size(self) -> Size:
        return self.config.heavy_size

    def score(self, inputs: AttentionInputs) -> torch.Tensor:
        """(B, H, Q, K) exact fp32 scores (shared with the final softmax)."""
        return inputs.exact_scores()
