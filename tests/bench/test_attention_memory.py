"""``bench/attention_memory.py``'s summary: every registered masker gets a row, its ratios and
whether each issue-24 target holds; a failed case misses its targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import attention_memory  # noqa: E402
from method_arms import ArmShape, method_configs  # noqa: E402

from sparse_attention_hub.sparse_attention.maskers import available_maskers  # noqa: E402

MIB = 2**20
K = 4096  # the bf16 size of K: 8 x 4096 x 128 x 2 bytes = 8 MiB


def _records(peaks: dict[str, dict[int | str, float]]) -> list[dict[str, object]]:
    return [
        {"case": case, "job": job, "peak_bytes": int(mib * MIB)}
        for case, row in peaks.items()
        for job, mib in row.items()
    ]


def test_every_registered_masker_has_configs_for_its_stack(tmp_path: Path) -> None:
    shape = ArmShape(heads=32, kv_heads=8, head_dim=128, keys=K, layers=1)
    for name in available_maskers():
        method_configs(name, shape, tmp_path)  # raises for a masker the bench cannot build
    assert attention_memory.all_cases()[2:] == available_maskers()


def test_ratios_and_targets_per_masker() -> None:
    cases = ["oracle_top_k", "quest", "magicpig"]
    peaks: dict[str, dict[int | str, float]] = {
        "oracle_top_k": {1: 5, 32: 100, 256: 120},
        "quest": {1: 5, 32: 100, 256: 170, "build": 8},  # 1.7x Q32, 1.417x top-k, build = K
        "magicpig": {1: 5, 32: 100, 256: 110, "build": 16},  # build = 2x K
    }
    result = attention_memory.summarise(_records(peaks), cases, [1, 32, 256], K)
    quest, magicpig = result["maskers"]["quest"], result["maskers"]["magicpig"]
    assert quest["q256_over_q32"] == 1.7 and quest["over_oracle_top_k"] == pytest.approx(1.417)
    assert quest["state_build_over_k"] == 1.0
    assert quest["met"] == {
        "q256_over_q32": False, "over_oracle_top_k": True, "state_build_over_k": True
    }  # fmt: skip
    assert magicpig["met"]["state_build_over_k"] is False and not magicpig["ok"]
    top_k = result["maskers"]["oracle_top_k"]
    assert top_k["met"]["state_build_over_k"] is None and top_k["ok"]  # stateless
    assert result["all_met"] is False


def test_a_failed_case_misses_its_targets() -> None:
    records = _records({"oracle_top_k": {32: 100, 256: 110}, "quest": {32: 100, "build": 4}})
    records.append({"case": "quest", "job": 256, "error": "OutOfMemoryError: ..."})
    result = attention_memory.summarise(records, ["oracle_top_k", "quest"], [32, 256], K)
    quest = result["maskers"]["quest"]
    assert quest["met"]["q256_over_q32"] is False and not quest["ok"]
    assert result["errors"] == {"quest@256": "OutOfMemoryError: ..."} and not result["all_met"]


def test_unknown_masker_names_are_refused_and_oracle_top_k_is_always_measured() -> None:
    with pytest.raises(ValueError, match="unknown \\['nope'\\]"):
        attention_memory.select_cases(["nope"])
    assert attention_memory.select_cases(["quest"]) == ["oracle_top_k", "quest"]
