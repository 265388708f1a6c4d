"""Simulated sparse attention: probability masks, masked attention, maskers, ResearchAttention.

- :class:`Mask`: (B, H, Q, K) inclusion probabilities (0 = skip, p = attend with weight 1/p).
- :func:`masked_attention`: attention under a mask, GQA-aware, fp32 sums, optional sink logits.
- :mod:`.maskers`: sink, local, oracle top-k / top-p, random sampling, and the registry.
- :class:`ResearchAttention` / :class:`ResearchAttentionConfig`: a masker chain plus the
  attention call with the HF attention-interface signature (``custom_attention``).
"""

from sparse_attention_hub.sparse_attention.attention import (
    ScoreCache,
    attention_scores,
    masked_attention,
)
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.research_attention import (
    DENSITY_METRIC,
    OUTPUT_ERROR_METRIC,
    ResearchAttention,
    ResearchAttentionConfig,
)

__all__ = [
    "DENSITY_METRIC",
    "OUTPUT_ERROR_METRIC",
    "Mask",
    "ResearchAttention",
    "ResearchAttentionConfig",
    "ScoreCache",
    "attention_scores",
    "masked_attention",
]
