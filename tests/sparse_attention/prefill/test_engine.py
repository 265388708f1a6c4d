"""The sparse-prefill engine: one BlockMask from the selections, flex_attention on it, equal to
dense masked attention on the brute-force mask of the same selections."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention.prefill import engine
from sparse_attention_hub.sparse_attention.prefill.base import PrefillSelection
from sparse_attention_hub.sparse_attention.prefill.block_mask import (
    CallGeometry,
    build_block_mask,
    regrid,
)
from sparse_attention_hub.sparse_attention.prefill.engine import flex_prefill

from .reference import allowed_pairs, dense_masked, union_pairs


@pytest.fixture(autouse=True)
def _eager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(engine.EAGER_ENV, "1")


def _random_selections(
    b: int, h: int, q_len: int, k_len: int, gen: torch.Generator, table_len: int | None = None
):
    """A block-level selection at the engine size, one at another size, one with a mask_mod
    (its (B, H, K) table ``table_len`` long: the padded length of a bucketed call)."""

    def blocks(size: int, p: float) -> torch.Tensor:
        nq, nk = -(-q_len // size), -(-k_len // size)
        return torch.rand(b, h, nq, nk, generator=gen) < p

    columns = torch.rand(b, h, k_len, generator=gen) < 0.3  # (B, H, K): a vertical pattern
    columns = torch.nn.functional.pad(columns, (0, (table_len or k_len) - k_len))

    def vertical(bi, hi, q_idx, kv_idx):
        return columns[bi, hi, kv_idx]

    return [
        PrefillSelection(blocks(8, 0.3), 8),
        PrefillSelection(blocks(5, 0.3), 5),
        PrefillSelection(blocks(8, 0.8), 8, vertical),
    ]


CASES = {
    # (Q, K, query_start, window, H, Hkv, engine block)
    "square": (37, 37, 0, None, 4, 4, 8),
    "chunk_q_lt_k_gqa": (13, 45, 32, None, 4, 2, 8),
    "sliding": (40, 40, 0, 11, 4, 2, 8),
    "sliding_cache_cut": (9, 20, 30, 20, 2, 1, 8),
    # the last query block is one row and sees the ragged last key block whole: a full block
    # whose padding keys must not run unmasked when the call is padded
    "ragged_last_row": (33, 33, 0, None, 2, 1, 8),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("extras", ["plain", "softcap_sinks", "padded"])
def test_engine_equals_dense_masked_attention(case: str, extras: str) -> None:
    """``padded``: the kernel sees Q, K, V padded to longer lengths (the shape buckets of a
    compiled call), with more blocks than the call has."""
    q_len, k_len, start, window, h, hkv, bs = CASES[case]
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, h, q_len, 16, generator=gen)
    k = torch.randn(1, hkv, k_len, 16, generator=gen)
    v = torch.randn(1, hkv, k_len, 8, generator=gen)
    offset = max(0, start + q_len - k_len)
    geometry = CallGeometry(1, h, q_len, k_len, start, offset, window, bs)
    selections = _random_selections(1, h, q_len, k_len, gen)
    if case == "ragged_last_row":  # every block at the engine size: the last one is full
        nq, nk = -(-q_len // bs), -(-k_len // bs)
        selections.append(PrefillSelection(torch.ones(1, h, nq, nk, dtype=torch.bool), bs))
    padded = (q_len + 2 * bs - q_len % bs, k_len + 3 * bs - k_len % bs)
    padded = padded if extras == "padded" else None
    block_mask, full, partial = build_block_mask(selections, geometry, q.device, padded)
    assert bool(partial.any()) and (window is not None or bool(full.any()))  # both kinds
    if case == "ragged_last_row":
        assert bool(full[..., -1, -1].any())  # the block the padding must demote
    with_extras = extras == "softcap_sinks"
    softcap, sinks = (3.0, torch.randn(h, generator=gen)) if with_extras else (None, None)
    ours = flex_prefill(q, k, v, block_mask, 0.3, softcap, sinks)
    mask = union_pairs(selections, 1, h, allowed_pairs(q_len, k_len, start, offset, window))
    expected = dense_masked(q, k, v, mask, 0.3, softcap, sinks)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_the_compiled_path_runs_on_a_tiny_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled, padded to the shape bucket: two calls of different lengths in one bucket
    compile one kernel, and both equal dense masked attention."""
    from torch._dynamo.utils import counters

    monkeypatch.delenv(engine.EAGER_ENV)
    gen = torch.Generator().manual_seed(0)
    graphs = []
    for length in (40, 44):  # one bucket (48) at block size 16
        q, k, v = (torch.randn(1, 2, length, 16, generator=gen) for _ in range(3))
        k, v = k[:, :1], v[:, :1]
        geometry = CallGeometry(1, 2, length, length, 0, 0, None, 16)
        bucket = engine.bucket_length(length, 16)
        selections = _random_selections(1, 2, length, length, gen, table_len=bucket)
        assert bucket == 48
        block_mask, _, _ = build_block_mask(selections, geometry, q.device, (bucket, bucket))
        assert engine.use_compiled(q.device, needs_lse=False)
        ours = flex_prefill(q, k, v, block_mask, 0.25, softcap=2.0)
        assert not engine._compile_failed  # it compiled (a C compiler is on this machine)
        graphs.append(counters["stats"]["unique_graphs"])
        mask = union_pairs(selections, 1, 2, allowed_pairs(length, length, 0, 0, None))
        expected = dense_masked(q, k, v, mask, 0.25, softcap=2.0)
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    assert graphs[1] == graphs[0]  # the second length reused the first one's kernel


def test_shape_buckets_are_few_and_close() -> None:
    for block in (16, 64, 128):
        lengths = range(1, 200_000, 997)
        buckets = {engine.bucket_length(n, block) for n in lengths}
        for n in lengths:
            b = engine.bucket_length(n, block)
            assert b >= n and b % block == 0 and b - n < max(block, n / 8 + 1)
        assert len(buckets) <= 8 * 18  # 8 per octave at most


def test_regrid_keeps_every_engine_block_a_selection_block_overlaps() -> None:
    gen = torch.Generator().manual_seed(1)
    for size in (3, 5, 8, 20):
        q_len, k_len = 29, 41
        geometry = CallGeometry(1, 1, q_len, k_len, 12, 0, None, 8)
        blocks = torch.rand(1, 1, -(-q_len // size), -(-k_len // size), generator=gen) < 0.2
        tokens = PrefillSelection(blocks, size)
        pairs = union_pairs([tokens], 1, 1, torch.ones(q_len, k_len, dtype=torch.bool))[0, 0]
        expected = torch.zeros(4, 6, dtype=torch.bool)
        for i in range(4):
            for j in range(6):
                expected[i, j] = pairs[i * 8 : (i + 1) * 8, j * 8 : (j + 1) * 8].any()
        assert torch.equal(regrid(blocks, size, geometry)[0, 0], expected), size


def test_without_a_c_compiler_the_engine_warns_once_and_runs_eager(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A machine whose C++ compiler is missing: the first compiled call fails, the engine
    logs one warning and computes that call and every later one with eager flex."""
    import torch._inductor.config as inductor_config

    monkeypatch.delenv(engine.EAGER_ENV)
    monkeypatch.setattr(engine, "_compile_failed", False)
    monkeypatch.setattr(engine, "_compiled", None)  # a fresh compile, not a cached kernel
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 2, 24, 8, generator=gen) for _ in range(3))
    geometry = CallGeometry(1, 2, 24, 24, 0, 0, None, 8)
    selections = _random_selections(1, 2, 24, 24, gen)
    block_mask, _, _ = build_block_mask(selections, geometry, q.device)
    expected = dense_masked(
        q, k, v, union_pairs(selections, 1, 2, allowed_pairs(24, 24, 0, 0, None)), 0.5
    )
    no_compiler = {"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}
    with caplog.at_level("WARNING", logger=engine.__name__), inductor_config.patch(no_compiler):
        for _ in range(2):
            torch.testing.assert_close(
                flex_prefill(q, k, v, block_mask, 0.5), expected, rtol=1e-5, atol=1e-5
            )
    assert engine._compile_failed and not engine.use_compiled(q.device, needs_lse=False)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "eager flex" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "block, options",
    [
        (128, None),  # the default tiles (128 x 64) divide it
        (256, None),
        (64, {"BLOCK_M": 64, "BLOCK_N": 64}),
        (32, {"BLOCK_M": 32, "BLOCK_N": 32}),
        (48, {"BLOCK_M": 16, "BLOCK_N": 16}),
        (192, {"BLOCK_M": 64, "BLOCK_N": 64}),
    ],
)
def test_gpu_tiles_divide_the_block_size(block: int, options: dict[str, int] | None) -> None:
    """torch's GPU flex template refuses a BlockMask block its tiles do not divide (128 x 64
    in 16-bit); the compile error would send the prefill to the eager path."""
    chosen = engine.gpu_kernel_options((block, block))
    assert chosen == options
    if chosen is not None:
        assert block % chosen["BLOCK_M"] == 0 and block % chosen["BLOCK_N"] == 0


@pytest.mark.parametrize("block", [8, 24, 100])
def test_a_gpu_block_size_not_a_multiple_of_16_is_refused(block: int) -> None:
    with pytest.raises(ValueError, match=rf"multiples of 16 .* got {block} x {block}.*"
                       r"prefill_block_size"):  # fmt: skip
        engine.gpu_kernel_options((block, block))


def test_a_compiled_gpu_call_passes_the_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA tensors (fake ones: no GPU here) a compiled call of a 64-token BlockMask gets
    ``kernel_options``; a CPU call does not."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    seen: list[dict[str, object]] = []

    def run(compiled: bool, query: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append(kwargs)
        return torch.zeros(tuple(query.shape))  # on the CPU: only the arguments are checked

    monkeypatch.setattr(engine, "_run", run)
    geometry = CallGeometry(1, 2, 64, 64, 0, 0, None, 64)
    selection = PrefillSelection(torch.ones(1, 2, 1, 1, dtype=torch.bool), 64)
    block_mask, _, _ = build_block_mask([selection], geometry, torch.device("cpu"), (64, 64))
    with FakeTensorMode(allow_non_fake_inputs=True):
        q = torch.empty(1, 2, 64, 16, device="cuda", dtype=torch.bfloat16)
        flex_prefill(q, q, q, block_mask, 0.25, compiled=True)
    cpu = torch.zeros(1, 2, 64, 16)
    flex_prefill(cpu, cpu, cpu, block_mask, 0.25, compiled=True)
    assert seen[0]["kernel_options"] == {"BLOCK_M": 64, "BLOCK_N": 64}
    assert "kernel_options" not in seen[1]
