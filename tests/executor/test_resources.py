"""The resource figures of a cell: timings summed from prediction records, peak RSS sampled
over a block, resources.json dropped when a cell starts again."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparse_attention_hub import cell_store
from sparse_attention_hub.executor.resources import MemoryMonitor, timing_figures


def test_timings_sum_over_rows_and_give_tokens_per_second() -> None:
    records = [
        {"request_index": 0, "context_seconds": 0.5, "question_seconds": 0.1,
         "decode_seconds": 0.9, "generated_tokens": 4},
        {"request_index": 0, "context_seconds": 0.0, "question_seconds": 0.2,
         "decode_seconds": 0.8, "generated_tokens": 6},
        {"request_index": 1, "context_seconds": 0.25, "question_seconds": 0.0,
         "decode_seconds": 0.0, "generated_tokens": 0},
    ]  # fmt: skip
    figures = timing_figures(records)
    assert figures["requests"] == 2 and figures["rows"] == 3
    assert figures["context_prefill_seconds"] == pytest.approx(0.75)
    assert figures["question_decode_seconds"] == pytest.approx(2.0)
    assert figures["generated_tokens"] == 10
    assert figures["tokens_per_second"] == pytest.approx(5.0)
    # an adapter that reports no timings: no seconds, no rate, still the requests
    bare = timing_figures([{"request_index": 0, "generated_tokens": 3}])
    assert bare["requests"] == 1 and bare["context_prefill_seconds"] is None
    assert bare["tokens_per_second"] is None


def test_peak_rss_sees_memory_held_during_the_block() -> None:
    with MemoryMonitor(gpu=False) as idle:
        pass
    with MemoryMonitor(gpu=False) as busy:
        block = bytearray(64 * 1024 * 1024)  # 64 MiB, written (so resident)
        block[::4096] = b"x" * len(block[::4096])
    figures, baseline = busy.figures(), idle.figures()
    del block
    assert figures["rss_source"] == "sampled" and figures["peak_gpu_memory_mb"] is None
    assert figures["peak_rss_mb"] >= baseline["peak_rss_mb"] + 48


def test_a_new_run_of_a_cell_drops_its_resources(tmp_path: Path) -> None:
    cell_store.write_resources(tmp_path, {"requests": 3})
    assert cell_store.read_resources(tmp_path) == {"requests": 3}
    cell_store.start_run(tmp_path)
    assert cell_store.read_resources(tmp_path) is None
