"""vertical_slash (MInference): its pairs against a plain full-matrix reference, against ports of
the official index selection, block index and kernel index conversion, per-head pattern files,
errors, and no (Q, K) tensor at L = 16k."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from sparse_attention_hub.sparse_attention.prefill.base import PrefillInputs
from sparse_attention_hub.sparse_attention.prefill.registry import (
    available_prefill_maskers,
    create_prefill_masker,
    prefill_config_from_dict,
    prefill_config_to_dict,
)
from sparse_attention_hub.sparse_attention.prefill.vertical_slash import VerticalSlashConfig
from tests.support.prefill import (
    LargestTensor,
    causal_pairs,
    make_inputs,
    pairs_to_blocks,
    selection_pairs,
)


def _pairs(config: VerticalSlashConfig, inputs: PrefillInputs) -> torch.Tensor:
    selection = create_prefill_masker(config).select(inputs)
    assert selection.block_size == 64
    pairs = selection_pairs(selection, inputs)
    # no selected block is empty: blocks are exactly the blocks of the computed pairs
    assert torch.equal(selection.blocks, pairs_to_blocks(pairs, 64))
    return pairs


def _reference_sets(
    inputs: PrefillInputs, head: int, vertical_size: int, slash_size: int, last_q: int = 64
) -> tuple[list[int], list[int]]:
    """(columns, offsets), written plainly: full scores, softmax of the last rows, column and
    diagonal sums, forced first 30 columns and offsets 0..99 (earlier / smaller first), then the
    top ones."""
    q = inputs.queries[0, head].double()
    k = inputs.keys[0, head // inputs.group_size].double()
    causal = causal_pairs(inputs)
    scores = (q @ k.T * inputs.scaling).masked_fill(~causal, float("-inf"))
    n = min(last_q, inputs.query_length)
    p = torch.softmax(scores[-n:], dim=-1)
    diff = _diff(inputs)
    d_max = int(diff.max())
    col = p.sum(0).tolist()
    diag = [float(p[diff[-n:] == d].sum()) for d in range(d_max + 1)]
    last_pos = inputs.query_start + inputs.query_length - 1
    n_cols = int((torch.arange(inputs.key_length) + inputs.key_offset <= last_pos).sum())
    forced_cols = list(range(min(30, n_cols)))
    rest = sorted(set(range(n_cols)) - set(forced_cols), key=lambda c: -col[c])
    cols = (forced_cols + rest)[: min(n_cols, max(vertical_size, 30))]
    forced_d = list(range(min(100, d_max + 1)))
    rest_d = sorted(set(range(d_max + 1)) - set(forced_d), key=lambda d: -diag[d])
    return cols, (forced_d + rest_d)[: min(d_max + 1, max(slash_size, 50))]


def _diff(inputs: PrefillInputs) -> torch.Tensor:
    """(Q, K): position differences q_pos - k_pos."""
    q_pos = torch.arange(inputs.query_length) + inputs.query_start
    k_pos = torch.arange(inputs.key_length) + inputs.key_offset
    return q_pos[:, None] - k_pos[None, :]


def _exact_pairs(inputs: PrefillInputs, cols: list[int], offsets: list[int]) -> torch.Tensor:
    is_col = torch.isin(torch.arange(inputs.key_length), torch.tensor(cols))[None, :]
    return causal_pairs(inputs) & (is_col | torch.isin(_diff(inputs), torch.tensor(offsets)))


def _range_pairs(inputs: PrefillInputs, cols: list[int], offsets: list[int]) -> torch.Tensor:
    """The kernel's cover without its rounding of merged ranges: per 64-row block ending at E
    (key index), slash d < E covers keys [E - d - 64, E - d), clamped to [0, 64)."""
    pairs = torch.zeros(inputs.query_length, inputs.key_length, dtype=torch.bool)
    for start in range(0, inputs.query_length, 64):
        end = inputs.query_start - inputs.key_offset + start + 64
        for d in offsets:
            if d < end:
                right = max(end - d, 64)
                pairs[start : start + 64, max(0, right - 64) : right] = True
    pairs[:, cols] = True
    return pairs & causal_pairs(inputs)


WINDOWED = {"query_start": 200, "key_offset": 50, "sliding_window": 150}


@pytest.mark.parametrize("cover", ["diagonals", "ranges"])
@pytest.mark.parametrize(
    ("q_len", "k_len", "sizes", "where"),
    [
        (300, 300, (40, 150), {}),
        (300, 300, (35, 60), {}),
        (200, 300, (40, 120), {}),
        (40, 300, (31, 130), {}),
        (100, 250, (40, 110), WINDOWED),
    ],
)
def test_vertical_and_slash_matches_a_full_matrix_reference(
    q_len: int, k_len: int, sizes: tuple[int, int], where: dict[str, int], cover: str
) -> None:
    inputs = make_inputs(q_len, k_len, heads=4, kv_heads=2, **where)
    config = VerticalSlashConfig(vertical_size=sizes[0], slash_size=sizes[1], slash_cover=cover)
    pairs = _pairs(config, inputs)
    build = _exact_pairs if cover == "diagonals" else _range_pairs
    for h in range(4):
        assert torch.equal(pairs[0, h], build(inputs, *_reference_sets(inputs, h, *sizes))), h


def test_batch_rows_are_selected_apart() -> None:
    inputs = make_inputs(150, 150, heads=2, kv_heads=1, batch=2)
    pairs = _pairs(VerticalSlashConfig(vertical_size=35, slash_size=60), inputs)
    for b in range(2):
        one = PrefillInputs(inputs.queries[b : b + 1], inputs.keys[b : b + 1], inputs.scaling)
        assert torch.equal(
            pairs[b : b + 1], _pairs(VerticalSlashConfig(vertical_size=35, slash_size=60), one)
        )


# --- ports of the official code (minference_forward.py, block_sparse_flash_attention.py,
# csrc/vertical_slash_index.cu), on CPU, one head at a time as the official loops heads ---


def _sum_all_diagonal_matrix(mat: torch.Tensor) -> torch.Tensor:
    b, h, n, m = mat.shape
    zero_mat = torch.zeros((b, h, n, n))
    mat_padded = torch.cat((zero_mat, mat, zero_mat), -1)
    mat_strided = mat_padded.as_strided((1, 1, n, n + m), (1, n * (2 * n + m), 2 * n + m + 1, 1))
    return torch.sum(mat_strided, 2)[:, :, 1:]


def _official_vs_indexes(
    q: torch.Tensor, k: torch.Tensor, vertical_size: int, slash_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    q_len, head_dim = q.shape[2], q.shape[3]
    vertical_size, slash_size = min(q_len, max(vertical_size, 30)), min(q_len, max(slash_size, 50))
    last_q = min(64, q_len)
    arange = torch.arange(64)
    last_q_mask = arange[None, None, :, None] >= arange[None, None, None, :]
    qk = torch.einsum("bhmk, bhnk -> bhmn", q[:, :, -last_q:, :], k) / math.sqrt(head_dim)
    qk[:, :, :, -last_q:] = torch.where(
        last_q_mask[..., -last_q:, -last_q:], qk[:, :, :, -last_q:], -torch.inf
    )
    qk = torch.nn.functional.softmax(qk, dim=-1, dtype=torch.float32)
    vertical = qk.sum(-2, keepdim=True)
    vertical[..., :30] = torch.inf
    vertical_topk = torch.topk(vertical, vertical_size, -1).indices
    slash = _sum_all_diagonal_matrix(qk)[..., : -last_q + 1]
    slash[..., -100:] = torch.inf
    slash = (q_len - 1) - torch.topk(slash, slash_size, -1).indices
    return vertical_topk, slash


def _official_kernel_pairs(v_idx: list[int], s_idx: list[int], n_ctx: int) -> torch.Tensor:
    """(L, L) bool: the pairs the vertical-slash kernel computes (convert_vertical_slash_indexes
    ported line by line, then its block ranges and columns, causal)."""
    bm = 64
    vs, ss = sorted(v_idx), sorted(s_idx, reverse=True)
    pairs = torch.zeros(n_ctx, n_ctx, dtype=torch.bool)
    for start_m in range(0, n_ctx, bm):
        end_m = start_m + bm
        cols, ranges = [], []
        v, s = 1, 1
        v_cur, s_cur = vs[0], ss[0]
        while s_cur >= end_m:
            s_cur = ss[s]
            s += 1
        s_cur = max(end_m - s_cur, bm)
        r_start, r_end = s_cur - bm, s_cur
        while True:
            if v_cur < r_end:
                if v_cur < r_start:
                    cols.append(v_cur)
                v_cur, v = (vs[v], v + 1) if v < len(vs) else (end_m + bm, v)
            else:
                if s < len(ss):
                    s_cur = max(end_m - ss[s], bm)
                    s += 1
                else:
                    ranges.append((r_start, r_end))
                    break
                if s_cur > r_end + bm:
                    ranges.append((r_start, r_end))
                    r_start, r_end = s_cur - bm, s_cur
                elif s_cur > r_end:
                    r_end += bm
        rows = slice(start_m, min(end_m, n_ctx))
        for a, b in ranges:
            pairs[rows, a:b] = True
        pairs[rows, cols] = True
    return pairs & torch.ones(n_ctx, n_ctx, dtype=torch.bool).tril()


def test_indexes_match_the_official_selection_and_lie_inside_the_kernel_pairs() -> None:
    inputs = make_inputs(333, 333, heads=2, kv_heads=1, dim=32, seed=3)
    sizes = (45, 140)
    pairs = {
        cover: _pairs(
            VerticalSlashConfig(vertical_size=sizes[0], slash_size=sizes[1], slash_cover=cover),
            inputs,
        )
        for cover in ("diagonals", "ranges")
    }
    for h in range(2):
        q, k = inputs.queries[:, h : h + 1], inputs.keys[:, :1]
        v_top, s_top = _official_vs_indexes(q, k, *sizes)
        cols, offsets = sorted(set(v_top.flatten().tolist())), sorted(set(s_top.flatten().tolist()))
        assert torch.equal(pairs["diagonals"][0, h], _exact_pairs(inputs, cols, offsets))
        assert torch.equal(pairs["ranges"][0, h], _range_pairs(inputs, cols, offsets))
        kernel = _official_kernel_pairs(cols, offsets, 333)
        ranges, exact = pairs["ranges"][0, h], pairs["diagonals"][0, h]
        assert bool((kernel | ~ranges).all())  # every pair here the kernel computes too
        assert bool((ranges | ~exact).all())
        assert int(kernel.sum()) >= int(ranges.sum()) > int(exact.sum())


def _official_block_sparse(q: torch.Tensor, k: torch.Tensor, top_k: int) -> torch.Tensor:
    """(nq, nk) bool: _build_block_index plus the kernel's ``block_count`` per row."""
    context_size, head_dim = q.shape[2], q.shape[3]
    pad = 64 - (q.shape[2] & 63)
    q = torch.nn.functional.pad(q, [0, 0, 0, pad, 0, 0, 0, 0])
    k = torch.nn.functional.pad(k, [0, 0, 0, pad, 0, 0, 0, 0])
    query_pool = q.reshape((1, 1, -1, 64, head_dim)).mean(dim=-2)
    key_pool = k.reshape((1, 1, -1, 64, head_dim)).mean(dim=-2)
    arange_m = torch.arange(query_pool.shape[-2]) * 64
    p_pool = torch.einsum("bhmk, bhnk -> bhmn", query_pool, key_pool)
    p_pool = p_pool.where(
        arange_m[None, None, :, None] >= arange_m[None, None, None, :], -torch.inf
    )
    top_k = min(top_k, context_size // 64)
    index = torch.topk(p_pool, top_k, dim=-1).indices.sort(dim=-1).values[0, 0]
    n = math.ceil(context_size / 64)
    out = torch.zeros(n, n, dtype=torch.bool)
    for m in range(n):
        out[m, index[m, : min(m + 1, top_k)]] = True
    return out


@pytest.mark.parametrize(("length", "top_k"), [(330, 3), (256, 100), (700, 4)])
def test_block_sparse_matches_the_official_block_index(length: int, top_k: int) -> None:
    inputs = make_inputs(length, length, heads=2, kv_heads=2, seed=5)
    selection = create_prefill_masker(
        VerticalSlashConfig(pattern="block_sparse", top_k=top_k)
    ).select(inputs)
    assert selection.mask_mod is None
    for h in range(2):
        q, k = inputs.queries[:, h : h + 1], inputs.keys[:, h : h + 1]
        assert torch.equal(selection.blocks[0, h], _official_block_sparse(q, k, top_k))


def test_a_shape_is_first_tokens_and_a_local_window() -> None:
    inputs = make_inputs(150, 250, heads=2, kv_heads=1)
    pairs = _pairs(VerticalSlashConfig(pattern="a_shape", n_init=10, n_local=70), inputs)
    diff = (torch.arange(150)[:, None] + 100) - torch.arange(250)[None, :]
    expected = causal_pairs(inputs) & ((torch.arange(250)[None, :] < 10) | (diff < 70))
    assert torch.equal(pairs, expected.expand(1, 2, 150, 250))


def test_mask_mod_runs_under_vmap_like_flex_attention() -> None:
    inputs = make_inputs(100, 100, heads=2, kv_heads=1)
    selection = create_prefill_masker(VerticalSlashConfig(vertical_size=35, slash_size=60)).select(
        inputs
    )
    mod = selection.mask_mod
    assert mod is not None
    b, h = torch.tensor(0), torch.tensor(1)
    q_idx, kv_idx = torch.arange(100), torch.arange(100)
    from torch.nn.attention.flex_attention import create_mask

    grid = create_mask(mod, 1, 2, 100, 100, device="cpu")  # vmapped as flex_attention does
    assert torch.equal(grid[0, 1], mod(b, h, q_idx[:, None], kv_idx[None, :]))
    assert bool(mod(b, h, torch.tensor([[140]]), torch.tensor([[130]])).shape == (1, 1))


# --- per-head pattern files ---


def _write(tmp_path: Path, layers: object) -> str:
    path = tmp_path / "best_pattern.json"
    path.write_text(json.dumps(layers))
    return str(path)


def test_pattern_file_gives_each_head_its_pattern(tmp_path: Path) -> None:
    heads = {
        "0": ["vertical_and_slash", 40, 150, 1],
        "1": ["stream_llm", 10, 70, 2],
        "2": ["block_sparse", 1, 1, 3],
        "3": ["vertical_and_slash", 30, 800, 4],
    }
    path = _write(tmp_path, [{str(i): ["stream_llm", 1, 1, 0] for i in range(4)}, heads])
    inputs = make_inputs(300, 300, heads=4, kv_heads=2, layer_idx=1)
    pairs = _pairs(VerticalSlashConfig(pattern_file=path, top_k=2), inputs)
    singles = [
        VerticalSlashConfig(vertical_size=40, slash_size=150),
        VerticalSlashConfig(pattern="a_shape", n_init=10, n_local=70),
        VerticalSlashConfig(pattern="block_sparse", top_k=2),
        VerticalSlashConfig(vertical_size=30, slash_size=800),
    ]
    for h, config in enumerate(singles):
        assert torch.equal(pairs[0, h], _pairs(config, inputs)[0, h]), h


@pytest.mark.parametrize(
    ("content", "layer_idx", "message"),
    [
        ("not json", 0, "is not valid JSON"),
        ({"0": 1}, 0, "non-empty JSON list"),
        ([{"0": ["vertical_and_slash", 1, 1, 0]}], 0, "lacks heads [1]"),
        ([{"0": ["vertical_and_slash", 1, 1, 0], "1": ["dense", 1, 1, 0]}], 0, "head 1: unknown"),
        ([{"0": ["vertical_and_slash", -1, 1, 0]}], 0, "layer 0, head 0: vertical_size"),
        ([{"0": ["stream_llm", 1, 1, 0], "1": ["stream_llm", 1, 1, 0]}], 3, "has 1 layer(s)"),
        ([{"x": ["stream_llm", 1, 1, 0]}], 0, "layer 0: head keys"),
        ([[1]], 0, "layer 0: must be an object"),
    ],
)
def test_pattern_file_errors_name_file_layer_and_head(
    tmp_path: Path, content: object, layer_idx: int, message: str
) -> None:
    path = tmp_path / "p.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    inputs = make_inputs(64, 64, heads=2, kv_heads=1, layer_idx=layer_idx)
    with pytest.raises(ValueError, match=r"p\.json") as info:
        create_prefill_masker(VerticalSlashConfig(pattern_file=str(path))).select(inputs)
    assert message in str(info.value)


def test_pattern_file_missing_or_without_layer_idx(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        create_prefill_masker(VerticalSlashConfig(pattern_file=str(tmp_path / "none.json")))
    path = _write(tmp_path, [{"0": ["stream_llm", 1, 1, 0]}])
    masker = create_prefill_masker(VerticalSlashConfig(pattern_file=path))
    with pytest.raises(ValueError, match="no layer_idx"):
        masker.select(make_inputs(64, 64, heads=1, kv_heads=1))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pattern", "dense"),
        ("vertical_size", -1),
        ("slash_size", 1.5),
        ("last_q", 0),
        ("n_local", 0),
        ("top_k", True),
        ("pattern_file", ""),
        ("slash_cover", "band"),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        VerticalSlashConfig(**{field: value})  # type: ignore[arg-type]


def test_registered_with_its_config_round_trip() -> None:
    assert "vertical_slash" in available_prefill_maskers()
    config = prefill_config_from_dict("vertical_slash", {"vertical_size": 30, "slash_size": 800})
    assert config == VerticalSlashConfig(vertical_size=30, slash_size=800)
    assert prefill_config_to_dict(config)["vertical_slash"]["slash_size"] == 800


def test_no_query_by_key_tensor_at_16k() -> None:
    length = 16384
    inputs = make_inputs(length, length, heads=2, kv_heads=1, dim=16)
    masker = create_prefill_masker(VerticalSlashConfig())
    with LargestTensor() as mode:
        selection = masker.select(inputs)
    assert selection.blocks.shape == (1, 2, 256, 256)
    assert mode.largest <= 4 * 64 * length, (mode.largest, mode.op)  # (Q, K) is 16384x that


def test_block_sparse_keeps_a_block_below_64_keys() -> None:
    inputs = make_inputs(40, 40, heads=2, kv_heads=1)
    pairs = _pairs(VerticalSlashConfig(pattern="block_sparse"), inputs)
    assert torch.equal(pairs, causal_pairs(inputs).expand(1, 2, 40, 40))


def test_mask_mod_builds_a_flex_attention_block_mask_of_the_selected_blocks() -> None:
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    inputs = make_inputs(200, 200, heads=2, kv_heads=1)
    selection = create_prefill_masker(VerticalSlashConfig(vertical_size=35, slash_size=60)).select(
        inputs
    )
    mod = selection.mask_mod
    assert mod is not None

    def causal_mod(
        b: torch.Tensor, h: torch.Tensor, q_idx: torch.Tensor, kv_idx: torch.Tensor
    ) -> torch.Tensor:
        return mod(b, h, q_idx, kv_idx) & (q_idx >= kv_idx)

    block_mask = flex.create_block_mask(causal_mod, 1, 2, 200, 200, device="cpu", BLOCK_SIZE=64)
    dense = block_mask.to_dense().bool()[..., :4, :4]
    assert torch.equal(dense, pairs_to_blocks(selection_pairs(selection, inputs), 64))
