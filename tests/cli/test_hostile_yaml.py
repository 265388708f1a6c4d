"""Hostile or odd experiment files: each is refused with exit code 2, one line naming the file
and the key path, and no traceback (``sah run FILE --dry-run`` in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment.checks import MAX_YAML_VALUES

BASE = "models: [org/m]\nsparse_configs: {dense: dense}\nbenchmarks: [mock_benchmark]\n"


def alias_bomb(levels: int) -> str:
    """``levels`` nested lists of ten aliases each: 10**levels values once expanded."""
    lines = ["benchmarks:", "  - name: mock_benchmark", "    benchmark_kwargs:"]
    lines.append("      l0: &l0 [x, x, x, x, x, x, x, x, x, x]")
    for i in range(1, levels):
        lines.append(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "models: [org/m]\nsparse_configs: {dense: dense}\n" + "\n".join(lines) + "\n"


def run_file(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["-q", "run", str(path), "--dry-run"])
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "(top level): the file is empty; expected a mapping with keys models"),
        ("# only a comment\n", "(top level): the file is empty"),
        ("- models\n- benchmarks\n", "(top level): expected a mapping with keys models"),
        ("models:\n\t- org/m\n", "invalid YAML: line 2, column 1: found character '\\t'"),
        ("models: !!python/object/new:os.system [ls]\n", "invalid YAML: line 1"),
        (BASE + "models: [org/n]\n", "duplicate key 'models' (first on line 1)"),
        (alias_bomb(8), f"aliases expand to more than {MAX_YAML_VALUES} values"),
        ("models: &m [org/m, *m]\n", "an alias refers to a node that contains it"),
        ("models: " + "[" * 3000 + "]" * 3000 + "\n", "invalid YAML: values nested too deeply"),
        (
            BASE.replace("{dense: dense}", "{7: dense}"),
            "sparse_configs.7: keys must be strings, got int 7 (quote it: '7')",
        ),
        (
            BASE.replace("{dense: dense}", "{s: {sink: {sink_size: 4}}}"),
            "sparse_configs.s: expected 'dense' or a list of maskers",
        ),
        (
            BASE.replace("{dense: dense}", "{dense: [sink]}"),
            "sparse_configs.dense: the name 'dense' is kept for the dense baseline",
        ),
        (
            BASE.replace("{dense: dense}", "{" + "a" * 256 + ": dense}"),
            "sparse_configs." + "a" * 256 + ": a config name is a folder name: at most 255 bytes",
        ),
        (
            BASE + "adapter: {model_kwargs: {dtype: bfloat61}}\n",
            "adapter.model_kwargs.dtype: unknown dtype str 'bfloat61'; allowed: auto, bf16",
        ),
        (
            BASE + "executor: {timeout_per_benchmark: -1}\n",
            "executor.timeout_per_benchmark: must be in (0.0, inf], got -1",
        ),
        (
            BASE + "executor: {sampling_factor: 1.5}\n",
            "executor.sampling_factor: must be in (0.0, 1.0], got 1.5",
        ),
        (BASE + "executor: {sampling_factor: .nan}\n", "executor.sampling_factor: expected a"),
        (
            BASE + "executor: {enabled_metrics: [densty]}\n",
            "executor.enabled_metrics[0]: unknown metric 'densty'; allowed: all, ",
        ),
        (
            BASE.replace("[org/m]", "[/no/such/model/dir]"),
            "models[0]: local model path '/no/such/model/dir' does not exist (relative paths "
            "are resolved from the working directory",
        ),
        (
            BASE.replace("[org/m]", "[./no/such]"),
            "models[0]: local model path 'no/such' does not exist",
        ),
    ],
)
def test_hostile_files_are_refused_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    code, err = run_file(tmp_path, text, capsys)
    assert code == 2, err
    assert err.startswith(f"sah: error: {tmp_path / 'exp.yaml'}: "), err
    assert expected in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_folder_without_config_json_is_not_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not_a_model").mkdir()
    text = BASE.replace("[org/m]", f"[{tmp_path / 'not_a_model'}]")
    code, err = run_file(tmp_path, text, capsys)
    assert code == 2
    assert "models[0]: " in err and "is not a model folder: it has no config.json" in err


def test_merge_keys_work_and_may_be_overridden(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sparse_attention_hub.experiment.loader import load_experiment_text

    text = BASE + "adapter: {model_kwargs: {<<: {dtype: float32, x: 1}, dtype: bf16}}\n"
    spec = load_experiment_text(text, "exp.yaml")
    assert spec.model_kwargs == {"dtype": "bfloat16", "x": 1}


def test_gpus_with_spaces_parse(tmp_path: Path) -> None:
    from sparse_attention_hub.experiment.loader import load_experiment_text

    spec = load_experiment_text(BASE + "executor: {gpus: '0, 1'}\n", "exp.yaml")
    assert spec.executor.gpus == [0, 1]
