"""The sparse prefill's micro metrics, per layer, each computed only when enabled:

- ``prefill_density``: computed causal pairs / causal pairs (in-window pairs on a
  sliding-window layer) of the call, over every batch row and head. Exact: the token mask of
  the BlockMask (full blocks, and the combined ``mask_mod`` on the partial blocks) is evaluated
  on every query row, in row chunks under the budget (O(Q x K) elementwise work, bounded
  memory; no attention).
- ``prefill_output_error``: ||out - dense|| / ||dense|| (relative L2, the definition of the
  decode ``research_attention_output_error``) on a sample of at most
  :data:`ERROR_SAMPLE_ROWS` query rows, evenly spaced, the last row included, against exact
  dense attention of those rows (causal, window, softcap and sinks as the model).
"""

from __future__ import annotations

import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger
from sparse_attention_hub.sparse_attention.attention_arguments import (
    dense_reference_output,
    relative_l2_error,
)
from sparse_attention_hub.sparse_attention.prefill.base import MaskMod
from sparse_attention_hub.sparse_attention.prefill.block_mask import CallGeometry
from sparse_attention_hub.sparse_attention.prefill.scores import row_scores

PREFILL_DENSITY_METRIC = "prefill_density"
PREFILL_OUTPUT_ERROR_METRIC = "prefill_output_error"
MicroMetricLogger.register_metric(PREFILL_DENSITY_METRIC, float)
MicroMetricLogger.register_metric(PREFILL_OUTPUT_ERROR_METRIC, float)

#: Query rows of the output-error sample (each costs one dense row of K scores per head).
ERROR_SAMPLE_ROWS = 64


def computed_pairs(
    geometry: CallGeometry,
    full: torch.Tensor,
    partial: torch.Tensor,
    mask_mod: MaskMod,
    budget_bytes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(computed pairs, causal pairs), 0-dim int64 over (B, H): ``full`` and ``partial``
    (B, H, nq, nk) bool blocks of the BlockMask, ``mask_mod`` its combined token mask."""
    b, h, q_len, k_len, bs = (
        geometry.batch,
        geometry.heads,
        geometry.query_length,
        geometry.key_length,
        geometry.block_size,
    )
    device = full.device
    rows = max(1, budget_bytes // max(1, b * h * k_len * 4))
    kv = torch.arange(k_len, device=device).view(1, 1, 1, k_len)
    bi = torch.arange(b, device=device).view(b, 1, 1, 1)
    hi = torch.arange(h, device=device).view(1, h, 1, 1)
    computed = torch.zeros((), dtype=torch.int64, device=device)
    causal = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, q_len, rows):
        q = torch.arange(start, min(q_len, start + rows), device=device).view(1, 1, -1, 1)
        blocks = (bi, hi, q // bs, kv // bs)
        on = full[blocks] | (partial[blocks] & mask_mod(bi, hi, q, kv))  # (B, H, r, K)
        computed += on.sum()
        causal += geometry.allowed(q, kv).sum() * (b * h)
    return computed, causal


def sample_rows(q_len: int) -> torch.Tensor:
    """(n,) int64: at most :data:`ERROR_SAMPLE_ROWS` evenly spaced rows, the last included."""
    n = min(q_len, ERROR_SAMPLE_ROWS)
    return torch.linspace(q_len - 1, 0, n).round().long().flip(0).unique()


def output_error(
    out: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    geometry: CallGeometry,
    scaling: float,
    softcap: float | None,
    sinks: torch.Tensor | None,
) -> torch.Tensor:
    """Relative L2 error of ``out`` (B, Q, H, Dv) against dense attention on the sampled rows
    (query (B, H, Q, D), key, value (B, Hkv, K, D))."""
    rows = sample_rows(geometry.query_length).to(query.device)
    scores = row_scores(query[:, :, rows], key, scaling, softcap)  # (B, H, n, K)
    kv = torch.arange(geometry.key_length, device=query.device)
    allowed = geometry.allowed(rows[:, None], kv[None, :])  # (n, K)
    scores = scores.masked_fill(~allowed, float("-inf"))
    dense = dense_reference_output(query[:, :, rows], key, value, scores, sinks)  # (B, n, H, Dv)
    return relative_l2_error(out[:, rows], dense)


def log_prefill_metrics(
    layer_idx: int | None,
    density: tuple[torch.Tensor, torch.Tensor] | None,
    error: torch.Tensor | None,
) -> None:
    """Log what was computed (density as computed / causal pairs)."""
    logger = MicroMetricLogger()
    metadata = {"layer_idx": layer_idx}
    if density is not None:
        computed, causal = density
        logger.log(PREFILL_DENSITY_METRIC, computed / causal.clamp_min(1), metadata)
    if error is not None:
        logger.log(PREFILL_OUTPUT_ERROR_METRIC, error, dict(metadata))
