"""Hostile or odd experiment files: each is refused with exit code 2, one line naming the file
and the key path, and no traceback (``sah run FILE --dry-run`` in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment.checks import MAX_YAML_VALUES

BASE = "models: [org/m]\nsparse_configs: {dense: dense}\nbenchmarks: [mock_benchmark]\n"


HUNDRED = "[" + ", ".join(str(i) for i in range(1, 101)) + "]"
MILLION_CONFIGS = (
    f"{{t: [{{sink: {{sink_size: {HUNDRED}}}}}, {{local: {{window_size: {HUNDRED}}}}}, "
    f"{{oracle_top_k: {{heavy_size: {HUNDRED}}}}}]}}"
)


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
            "executor.timeout_per_benchmark: must be in (0.0, 31536000], got -1",
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
        (
            BASE.replace("{dense: dense}", "{t: [{oracle_top_k: {heavy_size: 0}}]}"),
            "sparse_configs.t[0].oracle_top_k.heavy_size: OracleTopKConfig.heavy_size must be "
            "an int in [1, 2**31 = 2147483648] tokens or a float in (0, 1], got 0: 0 selects no key",
        ),
        (
            BASE.replace("{dense: dense}", "{q: {recipe: quest, heavy_size: 0}}"),
            "sparse_configs.q[0].quest.token_budget: QuestConfig.token_budget must be an int in [1,",
        ),
        (
            BASE + "executor: {timeout_per_benchmark: .inf}\n",
            "executor.timeout_per_benchmark: must be in (0.0, 31536000], got inf",
        ),
        (
            BASE + "executor: {progress_interval: .inf}\n",
            "executor.progress_interval: must be in (0.0, 31536000], got inf",
        ),
        (
            BASE.replace("{dense: dense}", "{TopK: [sink], topk: [local]}"),
            "sparse_configs.topk: config names 'TopK' and 'topk' differ only by case: on a "
            "case-insensitive file system (macOS, Windows) they share one folder",
        ),
        (
            BASE.replace(
                "{dense: dense}",
                "{t: [{oracle_top_k: {heavy_size: [0.1, 0.2]}}], T.heavy_size=0.2: dense}",
            ),
            "config names 't.heavy_size=0.2' and 'T.heavy_size=0.2' differ only by case",
        ),
        (
            BASE.replace("[org/m]", "[org/M, org/m]"),
            "model names 'org/M' and 'org/m' share the directory 'org_m' (on a case-insensitive",
        ),
        (
            BASE.replace("{dense: dense}", "{t: [{sink: {sink_size: 0x10}}]}"),
            "sparse_configs.t[0].sink.sink_size: SinkMaskerConfig.sink_size must be an int "
            "(tokens) or a float in (0, 1] (fraction of K), got '0x10' of type str (integers in "
            "a study file are decimal",
        ),
        (
            BASE.replace("{dense: dense}", "{t: [{local: {window_size: 020}}]}"),
            "got '020' of type str (integers in a study file are decimal",
        ),
        (
            BASE.replace("{dense: dense}", "{t: [{sink: {sink_size: " + "1" + "0" * 30 + "}}]}"),
            "sparse_configs.t[0].sink.sink_size: SinkMaskerConfig.sink_size must be an int in "
            "[0, 2**31 = 2147483648] tokens or a float in (0, 1], got 1" + "0" * 30,
        ),
        (
            "allow_large_sweep: true\n" + BASE.replace("{dense: dense}", MILLION_CONFIGS),
            "sparse_configs: the sweeps expand to 1,000,000 sparse configs, more than the 10,000 "
            "allowed even with allow_large_sweep: true",
        ),
    ],
)
@pytest.mark.timeout(120)  # the million-config sweep took minutes before it was counted first
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


def test_settings_beyond_the_models_config_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: str
) -> None:
    """The tiny model has 2 layers and 16,384 positions (its config.json, read in preflight)."""
    text = (
        f"models: [{tiny_model_dir}]\nbenchmarks: [mock_benchmark]\n"
        f"result_dir: {tmp_path / 'out'}\n"
        "sparse_configs: {s: {dense_layers: [0, 5], maskers: [{sink: {sink_size: 4}}]}, "
        "mp: {recipe: magicpig, dense_layers: [0, 16]}}\n"
        "generation_kwargs: {max_new_tokens: 20000}\n"
    )
    code, err = run_file(tmp_path, text, capsys)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"sah: error: {tmp_path / 'exp.yaml'}: 3 problem(s), so no worker")
    for line in (
        f"sparse config 's': dense_layers [0, 5] name layer(s) [5] that model {tiny_model_dir} "
        "does not have; allowed: 0 to 1 (2 layers)",
        "sparse config 'mp': dense_layers [0, 16] name layer(s) [16]",
        f"generation_kwargs.max_new_tokens=20000: model {tiny_model_dir} has 16384 positions "
        "(max_position_embeddings); allowed: 1 to 16384",
    ):
        assert f"  - {line}" in err
    assert not (tmp_path / "out").exists()


def test_a_recipes_default_dense_layers_are_clipped_to_a_small_model_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_model_dir: str
) -> None:
    text = (
        f"models: [{tiny_model_dir}]\nbenchmarks: [mock_benchmark]\n"
        "sparse_configs: {mp: {recipe: magicpig}}\n"
    )
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    assert main(["-q", "run", str(path), "--dry-run", "--result-dir", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert (
        "note: sparse config 'mp': the recipe's default dense_layers [0, 16] go beyond model "
        f"{tiny_model_dir} (2 layers); layer(s) [16] do not exist there, so only [0] stay dense"
    ) in out


def test_dry_run_of_a_study_for_gpus_this_machine_lacks_lists_cells_with_a_note(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tiny_model_dir: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)  # a laptop
    text = (
        f"models: [{tiny_model_dir}]\nbenchmarks: [mock_benchmark]\n"
        "sparse_configs: {dense: dense, s: [local: {window_size: 4}]}\nexecutor: {gpus: [0, 1, 2, 3]}\n"
    )
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    out_dir = str(tmp_path / "o")
    assert main(["-q", "run", str(path), "--dry-run", "--result-dir", out_dir]) == 0
    captured = capsys.readouterr()
    assert "2 cells: 2 pending" in captured.out and captured.err == ""
    assert (
        "note: executor.gpus [0, 1, 2, 3]: GPU(s) [0, 1, 2, 3] are not visible on this machine "
        "(0 visible); the cells are listed all the same"
    ) in captured.out
    assert "preflight (" in captured.out
    assert main(["-q", "run", str(path), "--result-dir", out_dir]) == 2  # the run refuses
    err = capsys.readouterr().err
    assert "gpu_ids [0, 1, 2, 3] do not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
