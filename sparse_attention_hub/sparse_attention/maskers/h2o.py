"""H2O (Zhang et al., 2023, arXiv:2306.14048): heavy hitters by accumulated attention + recent keys.

A context key's score is the attention it received, summed over every observed prefill query
(the causal softmax of the whole context, computed in blocks of query rows: never an (L, L)
tensor), averaged over the G query heads of each KV head. Of the ``n_kept`` keys of a KV head,
the last ``int(recent_ratio * n_kept)`` context keys are kept (H2O's recent window; the paper's
default splits the budget evenly) and the heavy hitters fill the rest.

Deviations from the paper's code:

- the decision is made once, at the end of the context (or of the question when
  ``query_aware``), as kvpress does; H2O's decode-time form (one eviction per generated token)
  is not supported: keys after the context are kept;
- scores are plain sums (kvpress's ``ObservedAttentionPress`` divides each key's sum by the
  number of queries that see it; the paper does not);
- ``query_aware`` keeps every context query of the layer until the question runs (the
  observation is the whole context + question), so it holds (B, H, L, D) per layer meanwhile;
- ties keep the earliest keys.
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.eviction import EvictionConfig, EvictionMasker
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.snapkv import window_attention_mean


@dataclasses.dataclass(frozen=True)
class H2OConfig(EvictionConfig):
    """``recent_ratio``: the share of the kept keys that are the most recent context keys
    (H2O's recent window; 0.5 = the paper's even split of heavy and recent)."""

    recent_ratio: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        ratio = self.recent_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise ValueError(
                f"H2OConfig.recent_ratio is the share of the kept keys given to the most recent "
                f"context keys and must lie in [0, 1], got {ratio!r}"
            )


@register_masker(
    "h2o",
    "H2O eviction: heavy hitters by the attention summed over every context query, plus the "
    "most recent keys (recent_ratio of the budget); compression_ratio of the context removed.",
)
class H2OMasker(EvictionMasker):
    """Scores context keys by accumulated attention; the recent window scores highest."""

    config_class = H2OConfig
    config: H2OConfig

    def observed_queries(self) -> int:
        """Every context query (a query-aware state keeps them all)."""
        return sys.maxsize

    def context_scores(
        self, inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_context: int
    ) -> torch.Tensor:
        """(B, Hkv, n_context): accumulated attention; the recent window above every key."""
        b, kv_heads = inputs.keys.shape[:2]
        mean = window_attention_mean(inputs, queries, query_start, n_context)  # (B, H, n)
        scores = mean.view(b, kv_heads, inputs.group_size, n_context).mean(2)  # (B, Hkv, n)
        recent = int(self.kept_keys(n_context, inputs.layer_idx) * self.config.recent_ratio)
        if recent:
            scores[:, :, n_context - recent :] = scores.amax() + 1
        return scores
