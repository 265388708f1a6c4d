"""`sah list benchmarks` shows every benchmark's options with defaults and meanings."""

from __future__ import annotations

import pytest

from sparse_attention_hub.benchmarks import describe_benchmarks, get_available_benchmarks
from sparse_attention_hub.benchmarks.registry import describe_options
from sparse_attention_hub.cli import main


def test_options_come_from_the_constructor_with_meanings() -> None:
    from sparse_attention_hub.benchmarks.aime import Aime
    from sparse_attention_hub.benchmarks.zero_scrolls import ZeroScrolls

    aime = describe_options(Aime)
    assert aime.startswith("options: data_dir=None: local files in the hub schema")
    assert "num_samples_per_question=1: k solutions per problem, scored avg@k" in aime
    assert "max_new_tokens=32768" in aime
    assert "split='validation': validation (scored) or test" in describe_options(ZeroScrolls)


def test_every_listed_benchmark_shows_subsets_and_options() -> None:
    rows = {name: params for name, params, _ in describe_benchmarks()}
    assert set(rows) == set(get_available_benchmarks())
    for name in ("longbench_v2", "infinite_bench", "aime", "loogle", "zero_scrolls", "ruler"):
        lines = rows[name].splitlines()
        assert lines[0].startswith("subsets: ") and lines[1].startswith("options: "), name


def test_cli_list_benchmarks_prints_the_option_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "benchmarks"]) == 0
    out = capsys.readouterr().out
    assert "subsets: 0shot, cot" in out and "bertscore=False" in out
    option_lines = [line for line in out.splitlines() if line.strip().startswith("options: ")]
    assert len(option_lines) == len(get_available_benchmarks())
    assert all(line.startswith(" ") for line in option_lines)  # indented under the name
