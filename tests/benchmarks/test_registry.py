"""The benchmark registry: names, aliases, lazy and hidden entries, bad input."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from sparse_attention_hub.benchmarks import (
    Benchmark,
    create_benchmark_instance,
    describe_benchmarks,
    get_available_benchmarks,
    get_benchmark_class,
    register_benchmark,
    register_lazy_benchmark,
)
from sparse_attention_hub.benchmarks.mock_benchmark import MockBenchmark


def test_builtins_are_listed_and_hidden_ones_are_not() -> None:
    names = get_available_benchmarks()
    assert {"mock_benchmark", "synthetic_ruler", "longbench", "ruler"} <= set(names)
    assert "fault_injection" not in names
    assert all("fault_injection" not in row[0] for row in describe_benchmarks())
    from sparse_attention_hub.benchmarks import registry

    assert not any("fault" in target for target in registry._BUILTIN.values())
    from tests.support.fault_benchmark import FAULT

    assert get_benchmark_class(FAULT).benchmark_name == "fault_injection"


def test_alias_resolves_and_describe_has_subsets() -> None:
    assert get_benchmark_class("mock") is MockBenchmark
    rows = {name: (subsets, desc) for name, subsets, desc in describe_benchmarks()}
    assert "narrativeqa" in rows["longbench"][0] and "qasper_e" in rows["longbench"][0]
    assert "4096" in rows["ruler"][0]
    assert "aliases: mock" in rows["mock_benchmark"][1]


def test_unknown_name_and_subset_list_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown benchmark 'nope'.*mock_benchmark"):
        create_benchmark_instance("nope")
    with pytest.raises(ValueError, match=r"unknown subset\(s\) 'narrative'.*narrativeqa"):
        create_benchmark_instance("longbench", ["narrative"])
    with pytest.raises(ValueError, match="unknown option"):
        create_benchmark_instance("mock_benchmark", bogus=1)


def test_importing_the_package_imports_no_benchmark_or_heavy_library() -> None:
    code = (
        "import sys, sparse_attention_hub.benchmarks as b; b.get_available_benchmarks();"
        "bad = [m for m in ('jieba', 'datasets', 'rouge_score', 'rapidfuzz',"
        " 'sparse_attention_hub.benchmarks.longbench') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class _Tiny(Benchmark):
    """A benchmark registered by a test."""

    benchmark_name = "tiny_test_bench"
    all_datasets = ("a", "b")

    def load_datasets(self) -> pd.DataFrame:
        return pd.DataFrame()

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, float]:
        return {"overall_score": 0.0}


def test_register_decorator_lazy_and_hidden_entries() -> None:
    register_benchmark("tiny_test_bench", aliases=("tiny_alias",), hidden=True)(_Tiny)
    assert "tiny_test_bench" not in get_available_benchmarks()
    bench = create_benchmark_instance("tiny_alias", ["b"])
    assert isinstance(bench, _Tiny) and bench.subsets_to_run == ["b"]
    with pytest.raises(ValueError, match="already registered"):
        register_benchmark("tiny_test_bench")(MockBenchmark)
    register_lazy_benchmark("tiny_lazy", f"{__name__}:_Tiny", hidden=True)
    assert get_benchmark_class("tiny_lazy") is _Tiny
    with pytest.raises(ValueError, match=r"module\.path:ClassName"):
        register_lazy_benchmark("tiny_bad", "no_colon_here")


def test_longbench_e_runs_only_the_e_tasks_by_default() -> None:
    from sparse_attention_hub.benchmarks.longbench import LONGBENCH_E_TASKS

    e_only = create_benchmark_instance("longbench_e")
    assert e_only.benchmark_name == "longbench_e"
    assert list(e_only.subsets_to_run) == list(LONGBENCH_E_TASKS)
    assert len(create_benchmark_instance("longbench").subsets_to_run) == 34
    with pytest.raises(ValueError, match="narrativeqa"):
        create_benchmark_instance("longbench_e", ["narrativeqa"])
