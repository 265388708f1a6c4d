"""The sparse prefill's micro metrics, per layer, each computed only when enabled:

- ``prefill_density``: computed causal pairs / causal pairs (in-window pairs on a
  sliding-window layer) of the call, over every batch row and head. Exact: a full block of
  the BlockMask counts all its pairs, the combined ``mask_mod`` is evaluated on the partial
  blocks only, in chunks under the budget (O(partial blocks x bs^2) elementwise work, bounded
  memory; no attention), the causal pairs in closed form.
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
    (B, H, nq, nk) bool blocks of the BlockMask, ``mask_mod`` its combined token mask.

    A full block counts all its pairs (its rows x its columns, the last blocks ragged); only
    the partial blocks are evaluated token by token, ``chunk`` blocks at a time under the
    budget; the causal pairs are counted per row in closed form. Cost: O(partial blocks x
    bs^2 + Q), never Q x K."""
    bs, q_len, k_len = geometry.block_size, geometry.query_length, geometry.key_length
    device = full.device
    nq, nk = geometry.num_blocks
    rows = torch.clamp(q_len - torch.arange(nq, device=device) * bs, max=bs)  # (nq,)
    cols = torch.clamp(k_len - torch.arange(nk, device=device) * bs, max=bs)  # (nk,)
    computed = (full.to(torch.int64) * (rows[:, None] * cols[None, :])).sum()
    where = partial.nonzero()  # (n, 4): b, h, i, j
    chunk = max(1, budget_bytes // (bs * bs * 8))
    offsets = torch.arange(bs, device=device)
    for start in range(0, int(where.shape[0]), chunk):
        b, h, i, j = where[start : start + chunk].unbind(-1)
        q = (i * bs)[:, None, None] + offsets[None, :, None]  # (n, bs, 1)
        kv = (j * bs)[:, None, None] + offsets[None, None, :]  # (n, 1, bs)
        inside = (q < q_len) & (kv < k_len)
        on = mask_mod(b[:, None, None], h[:, None, None], q, kv) & inside
        computed += on.sum()
    return computed, causal_pairs(geometry, device) * (geometry.batch * geometry.heads)


def causal_pairs(geometry: CallGeometry, device: torch.device) -> torch.Tensor:
    """0-dim int64: the causal, in-window (query, key) pairs of one head of the call."""
    absolute = torch.arange(geometry.query_length, device=device) + geometry.query_start
    last = torch.clamp(absolute - geometry.key_offset, max=geometry.key_length - 1)  # (Q,)
    first = torch.clamp(absolute - geometry.key_offset - geometry.window + 1, min=0)
    return torch.clamp(last - first + 1, min=0).sum()


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
