"""``bench/prefill.py`` on a tiny shape (eager flex): every registered prefill masker gets an
arm, the dense arm computes every causal pair, the targets are judged, one JSON line."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import prefill  # noqa: E402

from sparse_attention_hub.sparse_attention.prefill import engine  # noqa: E402
from sparse_attention_hub.sparse_attention.prefill.registry import (  # noqa: E402
    available_prefill_maskers,
)

TINY = ["--lengths", "256", "--heads", "2", "--block-size", "32", "--repeats", "1"]


@pytest.fixture(autouse=True)
def _eager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(engine.EAGER_ENV, "1")
    limit = torch._dynamo.config.recompile_limit  # main raises it: restored after
    yield
    torch._dynamo.config.recompile_limit = limit


def test_every_registered_prefill_masker_has_a_config() -> None:
    for name in available_prefill_maskers():
        prefill.arm_config(name)  # raises for a masker with a required field and no params
    assert prefill.arm_config("block_top_k").block_budget == 0.1  # type: ignore[attr-defined]


def test_main_on_a_tiny_shape_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    result = prefill.main(TINY)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    row = result["lengths"]["256"]
    assert list(row["arms"]) == ["flex_dense", *available_prefill_maskers()]
    dense, oracle = row["arms"]["flex_dense"], row["arms"]["block_top_k"]
    assert dense["density"] == 1.0 and dense["attention_over_flex_dense"] == 1.0
    # 8 query blocks of 32: ceil(10 % of <= 8 causal blocks) = 1 per row, the diagonal one:
    # 8 x 528 (32 x 33 / 2) of the 256 x 257 / 2 = 32,896 causal pairs
    assert oracle["density"] == pytest.approx(8 * 528 / 32896, abs=1e-4)
    for arm in row["arms"].values():
        assert arm["attention_s"] > 0 and arm["time_s"] >= arm["attention_s"]
        assert 0 < arm["density"] <= 1
    assert set(row["targets"]) == {"flex_dense_over_sdpa", "block_top_k_over_flex_dense"}
    assert result["compiled"] is False and isinstance(result["all_met"], bool)


def test_bad_arguments_are_refused_before_timing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        prefill.main([*TINY, "--maskers", "nope"])
    assert "registered prefill maskers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prefill.main([*TINY, "--heads", "6", "--kv-heads", "4"])
    assert "multiple of --kv-heads" in capsys.readouterr().err
