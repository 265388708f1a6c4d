"""Simulated sparse attention: probability masks, masked attention, maskers, ResearchAttention.

- :class:`Mask`: (B, H, Q, K) inclusion probabilities (0 = skip, p = attend with weight 1/p).
- :func:`masked_attention`: attention under a mask, GQA-aware, fp32 sums, optional sink logits.
- :mod:`.maskers`: sink, local, oracle top-k / top-p, random sampling, and the registry.
- :class:`AttentionInputs`: what one attention call gives every masker (tensors, positions,
  shared exact scores, the masker's state).
- :class:`ResearchAttention` / :class:`ResearchAttentionConfig`: a masker chain plus the
  attention call with the HF attention-interface signature (``custom_attention``), and the
  per-layer masker states of the current request (:class:`MaskerStates`).
"""

from sparse_attention_hub.sparse_attention.attention import (
    ScoreCache,
    attention_scores,
    masked_attention,
)
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.masker_state import MaskerStates
from sparse_attention_hub.sparse_attention.research_attention import (
    DENSITY_METRIC,
    OUTPUT_ERROR_METRIC,
    ResearchAttention,
)
from sparse_attention_hub.sparse_attention.research_config import ResearchAttentionConfig

__all__ = [
    "DENSITY_METRIC",
    "OUTPUT_ERROR_METRIC",
    "AttentionInputs",
    "Mask",
    "MaskerStates",
    "ResearchAttention",
    "ResearchAttentionConfig",
    "ScoreCache",
    "attention_scores",
    "masked_attention",
]
