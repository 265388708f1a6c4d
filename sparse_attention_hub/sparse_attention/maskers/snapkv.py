"""SnapKV (Li et al., 2024, arXiv:2404.14469): keep the context keys the last queries attend to.

Follows kvpress's ``SnapKVPress``: the last ``window_size`` observed queries attend (causal
softmax over every key of the call); their weights on the keys before the window are averaged
over the window, smoothed by an average pool of ``kernel_size`` (zero padding counted, as
``avg_pool1d``), averaged over the G query heads of each KV head, and the keys inside the
window score above every other, so they are kept (when the budget allows).

Deviations from kvpress:

- the window's attention is computed in blocks of window rows (no (W, K) tensor beyond a
  block) from the queries the prefill already computed, with RoPE as the model applied it,
  and the keys are upcast to fp32 in chunks of at most half the size of K;
- a context shorter than the window is allowed (kvpress asserts it is longer): the window is
  the observed queries there are, and ties keep the earliest keys;
- query-aware: the window is the end of context + question; only the context's keys are
  evicted (kvpress compresses the question's keys too), the question's keys are kept;
- the observation uses causal attention over every key the call holds (a sliding-window
  layer's own window is not applied to the observation).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from sparse_attention_hub.sparse_attention.attention import attention_scores, build_chunk_bytes
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.eviction import EvictionConfig, EvictionMasker
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker

#: fp32 bytes one block of window rows may hold for its (B, H, rows, K) scores.
WINDOW_BLOCK_BYTES = 32 * 2**20


@dataclasses.dataclass(frozen=True)
class SnapKVConfig(EvictionConfig):
    """``window_size``: observed queries (default 64); ``kernel_size``: pooling width (5)."""

    window_size: int = 64
    kernel_size: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        for field, value in (("window_size", self.window_size), ("kernel_size", self.kernel_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"SnapKVConfig.{field} must be an int >= 1 (tokens), got {value!r}"
                )
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"SnapKVConfig.kernel_size must be odd (a centred pool keeps the key count), "
                f"got {self.kernel_size}"
            )


def window_attention_mean(
    inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_keys: int
) -> torch.Tensor:
    """(B, H, n_keys) fp32: the causal softmax weights of ``queries`` (B, H, W, D), at
    absolute positions ``query_start ..``, over every key of ``inputs``, averaged over the W
    rows, for the first ``n_keys`` keys. Computed in blocks of rows (never a (W, K) tensor
    beyond :data:`WINDOW_BLOCK_BYTES`); the keys are upcast in fp32 chunks within the call's
    budget and at most half the size of K (``build_chunk_bytes``)."""
    b, h, w, _ = queries.shape
    k = inputs.keys.shape[2]
    total = torch.zeros(b, h, n_keys, dtype=torch.float32, device=queries.device)
    rows = max(1, WINDOW_BLOCK_BYTES // max(1, b * h * k * 4))
    key_pos = inputs.key_positions()  # (K,)
    chunk_bytes = build_chunk_bytes(inputs.keys, inputs.kv_chunk_bytes)
    for start in range(0, w, rows):
        block = queries[:, :, start : start + rows]  # (B, H, r, D)
        q_pos = torch.arange(block.shape[2], device=queries.device) + query_start + start
        causal = key_pos[None, :] <= q_pos[:, None]  # (r, K)
        scores = attention_scores(
            block, inputs.keys, inputs.scaling, causal, inputs.softcap, chunk_bytes
        )  # (B, H, r, K)
        weights = torch.softmax(scores, dim=-1)  # (B, H, r, K)
        total += weights[..., :n_keys].sum(dim=2)
    return total / max(1, w)


@register_masker(
    "snapkv",
    "SnapKV eviction: context keys kept by the pooled attention of the last window_size "
    "queries (kvpress's SnapKVPress); compression_ratio of the context removed.",
)
class SnapKVMasker(EvictionMasker):
    """SnapKV's context scores (see module)."""

    config_class = SnapKVConfig
    config: SnapKVConfig

    def observed_queries(self) -> int:
        """SnapKV's window: ``window_size`` queries."""
        return self.config.window_size

    def context_scores(
        self, inputs: AttentionInputs, queries: torch.Tensor, query_start: int, n_context: int
    ) -> torch.Tensor:
        """(B, Hkv, n_context): pooled window attention; the window's own keys score highest."""
        queries = queries[:, :, -self.config.window_size :]  # (B, H, W, D)
        # keys at positions inside the window (the window's own keys) are kept
        scored = max(0, min(n_context, query_start - inputs.key_offset))
        b, kv_heads = inputs.keys.shape[:2]
        out = torch.empty(b, kv_heads, n_context, dtype=torch.float32, device=queries.device)
        if scored:
            mean = window_attention_mean(inputs, queries, query_start, scored)  # (B, H, n)
            kernel = self.config.kernel_size
            pooled = F.avg_pool1d(mean, kernel, stride=1, padding=kernel // 2)  # (B, H, n)
            grouped = pooled.view(b, kv_heads, inputs.group_size, scored).mean(2)  # (B,Hkv,n)
            out[:, :, :scored] = grouped
            out[:, :, scored:] = grouped.amax() + 1
        else:
            out.fill_(1.0)
        return out
