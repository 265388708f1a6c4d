"""Artefact files are checked before any worker starts: missing, unreadable, wrong format or
made for another model shape; ``--dry-run`` lists the cells and every problem, a run exits 2
with every problem in one error and starts no cell.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.executor.artefact_check import check_artefacts, model_shape
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
    random_channel_table,
    write_channel_file,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    random_hat_weights,
    save_hat_weights,
)
from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape


def study(tmp_path: Path, model: str, hat: str, channels: str, dense_layers: str = "[]") -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            result_dir: {tmp_path / "out"}
            models: [{model}]
            sparse_configs:
              hat:
                dense_layers: {dense_layers}
                maskers: [{{hashattention: {{heavy_size: 4, weights_file: {hat}}}}}]
              ds:
                dense_layers: {dense_layers}
                maskers: [{{double_sparsity: {{heavy_size: 4, channel_file: {channels}}}}}]
            benchmarks: [{{name: mock_benchmark}}]
            generation_kwargs: {{max_new_tokens: 2}}
            executor: {{gpus: cpu, max_concurrent_runs: 1}}
            """
        ),
        encoding="utf-8",
    )
    return path


def test_missing_files_are_listed_by_the_dry_run_with_the_cells(tmp_path, capsys, tiny_model_dir):
    path = study(tmp_path, tiny_model_dir, tmp_path / "none.safetensors", tmp_path / "none.json")
    assert main(["-q", "run", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert "2 cells:" in captured.out and "mock_benchmark" in captured.out  # the cells
    err = captured.err
    assert "2 problem(s) with the artefact files" in err
    assert "'hat' on" in err and "none.safetensors" in err and "no such file" in err
    assert "'ds' on" in err and "none.json" in err


def test_a_run_exits_2_listing_every_problem_and_starts_no_cell(tmp_path, capsys, tiny_model_dir):
    shape = model_shape(tiny_model_dir)
    assert shape is not None and shape.layers == 2
    hat = save_hat_weights(  # one layer more than the model, heads of another model
        random_hat_weights(shape.layers + 1, shape.heads, shape.head_dim, hidden=8),
        tmp_path / "hat.safetensors",
    )
    channels = write_channel_file(
        tmp_path / "ch.json", random_channel_table(1, 2 * shape.heads, 2, shape.head_dim)
    )
    assert main(["-q", "run", str(study(tmp_path, tiny_model_dir, hat, channels))]) == 2
    err = capsys.readouterr().err
    assert "problem(s) with the artefact files" in err
    assert "hat.safetensors: weights for layer(s) [2], but the model has 2 layers" in err
    assert "ch.json' has no 'q_proj' entry for layer(s) [1]" in err
    assert f"expected ({shape.heads}, {shape.head_dim}) (H, D) for this model" in err
    assert not list((tmp_path / "out").glob("*/*/*/config.json"))  # no cell started


def test_dense_layers_need_no_artefact_and_a_good_file_passes(tmp_path, tiny_model_dir):
    from sparse_attention_hub.experiment import load_experiment
    from sparse_attention_hub.experiment.runner import plan_experiment

    shape = model_shape(tiny_model_dir)
    assert shape is not None
    hat = save_hat_weights(
        random_hat_weights(1, shape.heads, shape.head_dim, hidden=8), tmp_path / "hat.safetensors"
    )
    channels = write_channel_file(
        tmp_path / "ch.json", random_channel_table(1, shape.heads, shape.kv_heads, shape.head_dim)
    )
    for dense, problems in (("[]", 2), ("[1]", 0)):  # the files cover layer 0 only
        spec = load_experiment(study(tmp_path, tiny_model_dir, hat, channels, dense))
        report = check_artefacts([stub for stub, _ in plan_experiment(spec)])
        assert len(report.problems) == problems, report.problems
        assert all("checked against the model's config.json" in line for line in report.lines)


def test_without_the_models_config_the_file_is_still_read(tmp_path):
    from sparse_attention_hub.experiment import load_experiment
    from sparse_attention_hub.experiment.runner import plan_experiment

    hat = tmp_path / "hat.safetensors"
    hat.write_bytes(b"not weights")
    channels = write_channel_file(tmp_path / "ch.json", random_channel_table(1, 2, 2, 4))
    spec = load_experiment(study(tmp_path, "org/not-cached-model", hat, channels))
    report = check_artefacts([stub for stub, _ in plan_experiment(spec)])
    assert [p.split(": ", 1)[0] for p in report.problems] == [
        "sparse config 'hat' on org/not-cached-model"
    ]
    assert "neither a safetensors file nor a pickle" in report.problems[0]
    assert all("shapes not checked" in line for line in report.lines)


@pytest.mark.parametrize(
    "data, shape",
    [
        ({"num_hidden_layers": 3, "num_attention_heads": 4, "hidden_size": 32}, (3, 4, 4, 8)),
        (
            {
                "text_config": {
                    "num_hidden_layers": 2,
                    "num_attention_heads": 8,
                    "num_key_value_heads": 2,
                    "head_dim": 64,
                    "hidden_size": 1,
                }
            },
            (2, 8, 2, 64),
        ),
        ({"num_attention_heads": 4}, None),
    ],
)
def test_the_shape_of_a_config_json(data, shape):
    found = ModelShape.from_config_dict(data)
    assert (found and (found.layers, found.heads, found.kv_heads, found.head_dim)) == shape
