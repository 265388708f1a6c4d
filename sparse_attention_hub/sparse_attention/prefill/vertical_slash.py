"""``vertical_slash``: MInference's prefill patterns (Jiang et al., 2024), official code
``minference/modules/minference_forward.py`` (``vertical_and_slash_kernel``,
``block_sparse_kernel``, ``streaming_forward``) and ``csrc/vertical_slash_index.cu``.

Per head, one of three patterns (``pattern`` for every head, or per head from ``pattern_file``,
MInference's best_pattern JSON, see ``vs_patterns.py``):

- ``vertical_and_slash``: the last ``last_q`` (64) queries' attention (fp32 softmax, causal)
  is summed per key column and per diagonal; the top ``max(vertical_size, 30)`` columns (the
  first 30 keys forced in) and the top ``max(slash_size, 50)`` diagonals (offsets 0 .. 99
  forced in) are computed, each count capped by the candidates (official: by the length).
- ``a_shape`` (the file's ``stream_llm``): the first ``n_init`` keys and the ``n_local`` most
  recent positions (``0 <= q_pos - k_pos < n_local``), at token level.
- ``block_sparse``: per 64-row query block, the ``min(top_k, K // 64)`` causal key blocks of
  highest mean-pooled ``q . k`` (pooled over the zero-padded block of 64, as the official), at
  least one (official: none when K < 64, an empty softmax).

The selection has ``block_size`` 64 (the kernel's); ``mask_mod`` is ``full[b, h] |
verticals[b, h, kv] | diagonals[b, h, q - kv + K - 1] | ranges(q // 64, kv)`` over (B, H),
(B, H, K) and (B, H, Q + K) tables (``full`` marks block-sparse heads; ``diagonals`` holds the
A-shape's local window and, with ``slash_cover: diagonals``, the slashes).

``slash_cover`` says which pairs a slash computes. ``ranges`` (the default) follows the kernel
(``convert_vertical_slash_indexes``): in the 64-row block ending at key index ``E``, slash ``d``
computes the keys ``[E - d - 64, E - d)`` (``[0, 64)`` when ``E - d < 64``), i.e. a 64-wide
band along the diagonal, read in the mask_mod from a prefix sum of the (B, H, Q + K) slash
table. ``diagonals`` computes the exact diagonals the paper draws (much sparser: on random
inputs at L = 2048 with 400 slashes, 0.29 of the causal pairs against the kernel's 1.0).

Deviations from the official code:

- ``slash_cover: ranges`` does not reproduce the kernel's rounding of merged ranges: when a
  slash's range ends less than 64 keys past the current merged range, the kernel extends that
  range by a whole 64 keys (up to 63 keys past the slash's range are computed too); emulating
  it needs a sequential merge per (row block, slash). The pairs here are a
  subset of the kernel's (tested against a line-by-line port of the index conversion; e.g.
  0.57 against 0.66 of the causal pairs on a structured input at L = 2048).
- Ties: among forced entries (``inf`` in the official code, where ``torch.topk``'s order is
  unspecified) earlier keys and smaller offsets are kept first; otherwise a stable sort.
- Calls with Q < K (``query_start > 0``): offsets are position differences, the estimate reads
  the call's last queries, counts are capped by the causal candidates, the ranges' row blocks
  are the call's 64-row blocks (official: Q = K only).
  On a sliding-window layer the estimate also hides the pairs outside the window, and blocks
  wholly outside it are dropped.
- Heads a pattern file lacks are an error here (official: the default ``vertical_and_slash``
  1000 / 6096); ``minference_ratio`` is not read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from sparse_attention_hub.sparse_attention.prefill.base import (
    MaskMod,
    PrefillInputs,
    PrefillMasker,
    PrefillMaskerConfig,
    PrefillSelection,
)
from sparse_attention_hub.sparse_attention.prefill.registry import register_prefill_masker
from sparse_attention_hub.sparse_attention.prefill.vs_patterns import (
    HeadPattern,
    layer_patterns,
    load_pattern_file,
)
from sparse_attention_hub.sparse_attention.prefill.vs_select import (
    MIN_SLASHES,
    MIN_VERTICALS,
    VS_BLOCK,
    causal_any_blocks,
    diagonal_prefix,
    forced_slash_scores,
    forced_vertical_scores,
    keep_top,
    last_q_vertical_slash_scores,
    pooled_block_scores,
    range_blocks,
    range_cover,
    vertical_slash_blocks,
)

PATTERNS = ("vertical_and_slash", "a_shape", "block_sparse")
SLASH_COVERS = ("ranges", "diagonals")


@dataclasses.dataclass(frozen=True)
class VerticalSlashConfig(PrefillMaskerConfig):
    """MInference's patterns. Defaults: the official default head pattern (``vertical_and_slash``
    with 1000 verticals and 6096 slashes, used for heads without a searched pattern), 64 estimate
    queries, the A-shape's ``n_init = 128``, ``n_local = 3968`` and the block-sparse kernel's
    ``top_k = 100`` blocks of 64; ``slash_cover`` ``ranges`` (the kernel's 64-key ranges per
    slash) or ``diagonals`` (exact diagonals)."""

    pattern: str = "vertical_and_slash"
    vertical_size: int = 1000
    slash_size: int = 6096
    last_q: int = 64
    n_init: int = 128
    n_local: int = 3968
    top_k: int = 100
    pattern_file: str | None = None
    slash_cover: str = "ranges"

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {list(PATTERNS)}, got {self.pattern!r}")
        if self.slash_cover not in SLASH_COVERS:
            raise ValueError(
                f"slash_cover must be one of {list(SLASH_COVERS)}, got {self.slash_cover!r}"
            )
        minimum = {"vertical_size": 0, "slash_size": 0, "last_q": 1, "n_init": 0}
        minimum.update({"n_local": 1, "top_k": 1})
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.pattern_file is not None and (
            not isinstance(self.pattern_file, str) or not self.pattern_file
        ):
            raise ValueError(
                f"pattern_file must be a path (a non-empty str) or None, got {self.pattern_file!r}"
            )


def _block_sparse_blocks(inputs: PrefillInputs, heads: list[int], top_k: int) -> torch.Tensor:
    """(B, h', nq, nk) bool: per query block, the ``max(1, min(top_k, K // 64))`` causal key
    blocks of highest pooled score (all causal blocks when fewer)."""
    idx = torch.tensor(heads, device=inputs.queries.device)
    scores = pooled_block_scores(
        inputs.queries[:, idx], inputs.keys_per_head()[:, idx], VS_BLOCK
    )  # (B, h', nq, nk)
    causal = causal_any_blocks(
        inputs.query_length,
        inputs.key_length,
        inputs.query_start,
        inputs.key_offset,
        VS_BLOCK,
        scores.device,
    )
    k = max(1, min(top_k, inputs.key_length // VS_BLOCK))
    sizes = torch.full((scores.shape[1] * scores.shape[2],), k, dtype=torch.int64)
    b, h, nq, nk = scores.shape
    flat = scores.masked_fill(~causal, float("-inf")).reshape(b, h * nq, nk)
    kept = keep_top(flat, sizes, torch.ones(nk, dtype=torch.bool, device=scores.device))
    return kept.reshape(b, h, nq, nk) & causal


def _vs_tables(
    inputs: PrefillInputs, heads: list[int], sizes: list[tuple[int, int]], last_q: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, h', K) verticals and (B, h', Q + K) diagonals of the ``vertical_and_slash`` heads."""
    q_len, k_len = inputs.query_length, inputs.key_length
    shift = inputs.query_start - inputs.key_offset - (k_len - 1)  # d = t + shift
    vertical, slash = last_q_vertical_slash_scores(
        inputs.queries,
        inputs.keys_per_head(),
        heads,
        inputs.scaling,
        inputs.query_start,
        inputs.key_offset,
        last_q,
        inputs.sliding_window,
        inputs.budget_bytes,
    )
    device = vertical.device
    t = torch.arange(q_len + k_len, device=device)
    slash_ok = (t + shift >= 0) & (t <= q_len + k_len - 2)
    last_pos = inputs.query_start + q_len - 1
    vert_ok = torch.arange(k_len, device=device) + inputs.key_offset <= last_pos
    n_v = min(k_len, max(0, last_pos - inputs.key_offset + 1))  # = vert_ok.sum()
    n_s = q_len + k_len - 1 - min(q_len + k_len - 1, max(0, -shift))  # = slash_ok.sum()
    v_sizes = torch.tensor([min(n_v, max(v, MIN_VERTICALS)) for v, _ in sizes])
    s_sizes = torch.tensor([min(n_s, max(s, MIN_SLASHES)) for _, s in sizes])
    verticals = keep_top(forced_vertical_scores(vertical), v_sizes, vert_ok)
    diagonals = keep_top(forced_slash_scores(slash, shift), s_sizes, slash_ok)
    return verticals, diagonals


def vertical_slash_selection(
    inputs: PrefillInputs,
    patterns: Sequence[HeadPattern],
    last_q: int,
    top_k: int,
    slash_cover: str = "ranges",
) -> PrefillSelection:
    """The selection of per-head ``patterns`` (one per query head) on ``inputs``' call.

    Returns blocks (B, H, ceil(Q / 64), ceil(K / 64)) and a mask_mod over (B, H) / (B, H, K) /
    (B, H, Q + K) tables (see the module doc). ``slash_cover`` says how the vertical-and-slash
    heads' slashes are computed: ``ranges`` (the kernel's per-row-block key ranges) or
    ``diagonals`` (exact).
    """
    b, h = inputs.queries.shape[:2]
    q_len, k_len = inputs.query_length, inputs.key_length
    device = inputs.queries.device
    verticals = torch.zeros(b, h, k_len, dtype=torch.bool, device=device)
    exact = torch.zeros(b, h, q_len + k_len, dtype=torch.bool, device=device)
    ranged = torch.zeros(b, h, q_len + k_len, dtype=torch.bool, device=device)
    full = torch.zeros(b, h, dtype=torch.bool, device=device)
    nq, nk = inputs.num_blocks(VS_BLOCK)
    blocks = torch.zeros(b, h, nq, nk, dtype=torch.bool, device=device)
    vs = [i for i, p in enumerate(patterns) if p.pattern == "vertical_and_slash"]
    if vs:
        sizes = [(patterns[i].first, patterns[i].second) for i in vs]
        slashes = ranged if slash_cover == "ranges" else exact
        verticals[:, vs], slashes[:, vs] = _vs_tables(inputs, vs, sizes, last_q)
    shift = inputs.query_start - inputs.key_offset - (k_len - 1)  # d = t + shift
    d = torch.arange(q_len + k_len, device=device) + shift
    for i, p in enumerate(patterns):
        if p.pattern == "a_shape":
            verticals[:, i, : p.first] = True
            exact[:, i] = (d >= 0) & (d < p.second) & (d - shift <= q_len + k_len - 2)
    sparse = [i for i, p in enumerate(patterns) if p.pattern == "block_sparse"]
    if sparse:
        blocks[:, sparse] = _block_sparse_blocks(inputs, sparse, top_k)
        full[:, sparse] = True
    ends_offset = inputs.query_start - inputs.key_offset
    blocks |= vertical_slash_blocks(verticals, exact, q_len, VS_BLOCK, inputs.budget_bytes)
    use_ranges = bool(vs) and slash_cover == "ranges"
    if use_ranges:
        blocks |= range_blocks(ranged, q_len, ends_offset, shift, inputs.budget_bytes)
    blocks &= causal_any_blocks(
        q_len, k_len, inputs.query_start, inputs.key_offset, VS_BLOCK, device, inputs.sliding_window
    )
    if len(sparse) == h:
        return PrefillSelection(blocks=blocks, block_size=VS_BLOCK)
    prefix = diagonal_prefix(ranged) if use_ranges else None
    # the kernel's tables: padded to the engine's bucket lengths (selecting nothing more), so
    # that one compiled kernel serves every length of a bucket
    pad = torch.nn.functional.pad
    verticals = pad(verticals, (0, inputs.table_length(k_len, "k") - k_len))
    exact = pad(exact, (0, inputs.table_length(q_len + k_len, "q+k") - q_len - k_len))
    if prefix is not None:  # a prefix sum: padded with its last value
        extra = inputs.table_length(q_len + k_len, "q+k") - q_len - k_len
        prefix = torch.cat([prefix, prefix[..., -1:].expand(*prefix.shape[:-1], extra)], -1)
    scalars = (k_len, ends_offset, shift)
    mask_mod = _table_mask_mod(full, verticals, exact, prefix, *_as_tensors(scalars, device))
    return PrefillSelection(blocks=blocks, block_size=VS_BLOCK, mask_mod=mask_mod)


def _as_tensors(values: Sequence[int], device: torch.device) -> list[torch.Tensor]:
    """0-dim int64 tensors: a compiled kernel reads them instead of specialising on them."""
    return [torch.tensor(v, device=device) for v in values]


def _table_mask_mod(
    full: torch.Tensor,
    verticals: torch.Tensor,
    diagonals: torch.Tensor,
    prefix: torch.Tensor | None,
    k_len: torch.Tensor,
    ends_offset: torch.Tensor,
    shift: torch.Tensor,
) -> MaskMod:
    """``full[b, h] | verticals[b, h, kv] | diagonals[b, h, q - kv + K - 1]``, or'ed with the
    kernel's slash ranges of row block ``q // 64`` read from ``prefix`` (B, H, Q + K + 1) when
    given (:func:`range_cover`). Indices are clamped into the tables, so padded indices of a
    partial block read a valid entry."""
    t_max = diagonals.shape[-1] - 1  # the tables may be longer than the call (padding)

    def mask_mod(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        kv = torch.minimum(kv_idx, k_len - 1).clamp(min=0)
        t = (q_idx - kv_idx + (k_len - 1)).clamp(0, t_max)
        out = full[b, h] | verticals[b, h, kv] | diagonals[b, h, t]
        if prefix is not None:
            ends = ends_offset + (q_idx // VS_BLOCK + 1) * VS_BLOCK
            out = out | range_cover(prefix, b, h, ends, kv, kv, shift)
        return out

    return mask_mod


@register_prefill_masker(
    "vertical_slash",
    "MInference: per head, top vertical columns and slash diagonals from the last 64 queries "
    "(or A-shape / block-sparse heads, or a per-head best_pattern file)",
)
class VerticalSlash(PrefillMasker):
    """MInference's vertical-slash prefill (see the module doc for patterns and deviations)."""

    config_class = VerticalSlashConfig

    def __init__(self, config: PrefillMaskerConfig) -> None:
        super().__init__(config)
        cfg = self.config
        assert isinstance(cfg, VerticalSlashConfig)
        self._layers = None if cfg.pattern_file is None else load_pattern_file(cfg.pattern_file)

    def head_patterns(self, inputs: PrefillInputs) -> list[HeadPattern]:
        """The pattern of each query head of ``inputs``' layer."""
        cfg = self.config
        assert isinstance(cfg, VerticalSlashConfig)
        if self._layers is not None and cfg.pattern_file is not None:
            return layer_patterns(
                cfg.pattern_file, self._layers, inputs.layer_idx, inputs.num_heads
            )
        sizes = {
            "vertical_and_slash": (cfg.vertical_size, cfg.slash_size),
            "a_shape": (cfg.n_init, cfg.n_local),
            "block_sparse": (0, 0),
        }[cfg.pattern]
        return [HeadPattern(cfg.pattern, *sizes)] * inputs.num_heads

    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        """The pairs MInference computes for ``inputs``' call."""
        cfg = self.config
        assert isinstance(cfg, VerticalSlashConfig)
        patterns = self.head_patterns(inputs)
        return vertical_slash_selection(inputs, patterns, cfg.last_q, cfg.top_k, cfg.slash_cover)
