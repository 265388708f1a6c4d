"""Maskers from outside the package, in a real study: one named by import path, one installed
as an entry point of a real (if tiny) distribution; both run in spawned workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sparse_attention_hub.cli import main

PLUGIN = '''
"""A researcher's own maskers, outside sparse_attention_hub."""
from dataclasses import dataclass

from sparse_attention_hub.sparse_attention.maskers import Masker, MaskerConfig, TopKMasker


@dataclass(frozen=True)
class EveryOtherConfig(MaskerConfig):
    parity: int = 1


class EveryOther(Masker):
    """The keys at every other absolute position."""

    config_class = EveryOtherConfig

    def add_mask(self, inputs, previous_mask):
        where = inputs.key_positions() % 2 == self.config.parity  # (K,)
        return previous_mask.with_active(where)


@dataclass(frozen=True)
class KeyNormConfig(MaskerConfig):
    heavy_size: int | float


class KeyNormTopK(TopKMasker):
    """The heavy_size keys with the largest L2 norm."""

    config_class = KeyNormConfig

    def size(self):
        return self.config.heavy_size

    def score(self, inputs):
        norms = inputs.per_query_head(inputs.keys).norm(dim=-1)  # (B, H, K)
        return norms.unsqueeze(2).expand(inputs.mask_shape)  # (B, H, Q, K)
'''


def install_plugin(root: Path) -> Path:
    """A module and the .dist-info of a distribution declaring it as a masker entry point."""
    root.mkdir()
    (root / "sah_demo_plugin.py").write_text(PLUGIN, encoding="utf-8")
    info = root / "sah_demo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sah-demo-plugin\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[sparse_attention_hub.maskers]\nevery_other = sah_demo_plugin:EveryOther\n",
        encoding="utf-8",
    )
    return root


def sah(args: list[str], pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_list_maskers_shows_installed_plugins_and_defaults(tmp_path: Path, capsys) -> None:
    plugin = install_plugin(tmp_path / "site")
    done = sah(["list", "maskers"], plugin)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if not line[0].isspace()}
    assert rows["every_other"].endswith("The keys at every other absolute position.")
    assert "parity: int = 1" in done.stdout
    assert "sink_size: int tokens | float fraction of K (required)" in done.stdout
    assert main(["list", "maskers"]) == 0  # not installed in this process
    assert "every_other" not in capsys.readouterr().out


@pytest.mark.slow
def test_import_path_and_entry_point_maskers_run_in_a_study(
    tmp_path: Path, tiny_model_dir: str
) -> None:
    plugin = install_plugin(tmp_path / "site")
    out = tmp_path / "out"
    study = tmp_path / "study.yaml"
    study.write_text(
        textwrap.dedent(
            f"""
            result_dir: {out}
            models: [{tiny_model_dir}]
            sparse_configs:
              by_path: [{{"sah_demo_plugin:KeyNormTopK": {{heavy_size: 3}}}}]
              by_entry_point: [{{sink: {{sink_size: 2}}}}, every_other]
            benchmarks: [mock_benchmark]
            generation_kwargs: {{max_new_tokens: 2}}
            executor:
              gpus: cpu
              max_concurrent_runs: 1
              enabled_metrics: [research_attention_density]
            """
        ),
        encoding="utf-8",
    )
    done = sah(["-q", "run", str(study)], plugin)
    assert done.returncode == 0, done.stdout + done.stderr
    for config in ("by_path", "by_entry_point"):
        (cell,) = out.rglob(f"{config}/mock_benchmark")
        assert (cell / "metrics.json").is_file()
        resolved = json.loads((cell / "config.json").read_text())
        assert "sah_demo_plugin" in json.dumps(resolved) or "every_other" in json.dumps(resolved)
        densities = [
            json.loads(line)["value"]
            for line in (cell / "micro_metrics.jsonl").read_text().splitlines()
        ]
        assert densities and all(0 < d < 1 for d in densities), (config, densities)


def test_an_import_path_that_fails_is_a_clear_error_before_any_worker(
    tmp_path: Path, capsys
) -> None:
    study = tmp_path / "study.yaml"
    study.write_text(
        textwrap.dedent(
            f"""
            result_dir: {tmp_path / "out"}
            models: [org/model]
            sparse_configs:
              mine: [{{sink: {{sink_size: 2}}}}, {{"no_such_package.maskers:Mine": {{}}}}]
            benchmarks: [mock_benchmark]
            executor: {{gpus: cpu}}
            """
        ),
        encoding="utf-8",
    )
    assert main(["-q", "run", str(study)]) == 2
    captured = capsys.readouterr()
    message = captured.out + captured.err
    assert "sparse_configs.mine[1]" in message
    assert "cannot import masker 'no_such_package.maskers:Mine'" in message
    assert "ModuleNotFoundError: No module named 'no_such_package'" in message
    assert not (tmp_path / "out").exists()


def test_entry_points_in_process_and_a_broken_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch_masker_registry: None, caplog
) -> None:
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
    from sparse_attention_hub.sparse_attention.maskers import (
        available_maskers,
        describe_maskers,
        masker_config_from_dict,
    )

    plugin = install_plugin(tmp_path / "site")
    (plugin / "sah_broken_plugin.py").write_text("raise ImportError('half-installed')\n")
    entry_points = plugin / "sah_demo_plugin-0.1.dist-info" / "entry_points.txt"
    entry_points.write_text(
        entry_points.read_text() + "broken = sah_broken_plugin:Masker\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(plugin))
    assert "every_other" in available_maskers() and "broken" not in available_maskers()
    assert "every_other" in [name for name, _, _ in describe_maskers()]
    assert "half-installed" in caplog.text  # a broken plugin is a warning, not a crash
    config = ResearchAttentionConfig.from_dict({"maskers": [{"every_other": {"parity": 0}}]})
    assert config.to_dict() == {"maskers": [{"every_other": {"parity": 0}}]}
    with pytest.raises(ValueError, match=r"entry point 'broken' .*ImportError: half-installed"):
        masker_config_from_dict("broken", {})
