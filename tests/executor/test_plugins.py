"""Benchmarks from outside the package (issue 10, section 3): by import path in a study YAML,
and by an entry point of an installed distribution, both run in a real study (`sah run`, a
tiny model, spawned workers that import them on their own)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

PLUGIN = '''
"""A researcher's own benchmarks, outside sparse_attention_hub."""

from typing import Any

import pandas as pd

from sparse_attention_hub.benchmarks import Benchmark


class _TwoRows(Benchmark):
    def load_datasets(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "context": ["The cat is black. The dog is white."] * 2,
                "question": ["What color is the cat?", "What color is the dog?"],
                "answer_prefix": ["Answer:"] * 2,
                "max_new_tokens": [2, 2],
                "task": ["colors"] * 2,
                "answer": ["black", "white"],
            }
        )

    def post_run_evaluate(self, results_df: pd.DataFrame) -> dict[str, Any]:
        return {"overall_score": 12.5, "task_scores": {"colors": 12.5}}


class PathBenchmark(_TwoRows):
    """Named in the study by its import path."""

    benchmark_name = "path_benchmark"


class PluginBenchmark(_TwoRows):
    """Found through the entry point of its distribution."""

    benchmark_name = "plugin_bench"
'''


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """A module and a .dist-info declaring its entry point, in a folder for PYTHONPATH."""
    root = tmp_path / "site"
    (root / "my_sah_plugin").mkdir(parents=True)
    (root / "my_sah_plugin" / "__init__.py").write_text(PLUGIN)
    info = root / "my_sah_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-sah-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[sparse_attention_hub.benchmarks]\nplugin_bench = my_sah_plugin:PluginBenchmark\n"
    )
    return str(root)


def _sah(plugin_path: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([plugin_path, env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", "-q", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _study(tmp_path: Path, model: str, benchmarks: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            result_dir: {tmp_path / "out"}
            models: [{model}]
            sparse_configs: {{dense: dense}}
            benchmarks: {benchmarks}
            adapter: {{model_kwargs: {{dtype: float32}}}}
            executor: {{gpus: cpu, max_concurrent_runs: 1}}
            """
        )
    )
    return path


def test_an_installed_plugin_is_listed(plugin_path: str) -> None:
    listed = _sah(plugin_path, "list", "benchmarks")
    assert listed.returncode == 0, listed.stderr
    assert "plugin_bench" in listed.stdout and "Found through the entry point" in listed.stdout


@pytest.mark.slow
def test_import_path_and_entry_point_benchmarks_run_in_a_study(
    plugin_path: str, tmp_path: Path, tiny_model_dir: str
) -> None:
    study = _study(tmp_path, tiny_model_dir, '["my_sah_plugin:PathBenchmark", plugin_bench]')
    done = _sah(plugin_path, "run", str(study))
    assert done.returncode == 0, done.stdout + done.stderr
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(table["benchmark"]) == ["path_benchmark", "plugin_bench"]
    assert table["status"].eq("complete").all() and table["overall_score"].eq(12.5).all()
    for cell in ("path_benchmark", "plugin_bench"):  # cells named by benchmark_name
        assert len(list((tmp_path / "out").glob(f"*/dense/{cell}/metrics.json"))) == 1


def test_an_import_path_that_fails_names_the_key_and_the_error(
    plugin_path: str, tmp_path: Path
) -> None:
    study = _study(tmp_path, "org/m", '[mock_benchmark, {name: "my_sah_plugin.nope:X"}]')
    done = _sah(plugin_path, "run", str(study))
    assert done.returncode == 2
    assert (
        "study.yaml: benchmarks[1]: cannot import benchmark 'my_sah_plugin.nope:X'" in done.stderr
    )
    assert "ModuleNotFoundError" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing ran: no worker, no result folder
