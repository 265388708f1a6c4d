"""``sah run --model M --config C --benchmark B --limit N``: the study of a YAML file, no file."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment import ExperimentSpec, load_experiment_text
from sparse_attention_hub.experiment.from_flags import StudyFlags, spec_from_flags
from sparse_attention_hub.experiment.runner import plan_experiment

SINK_LOCAL = '[{"sink": {"sink_size": 2}}, {"local": {"window_size": 4}}]'


def flags_argv(model: str, out: Path) -> list[str]:
    return [
        "run",
        "--model",
        model,
        "--config",
        "dense",
        "--config",
        "quest:heavy_size=0.3",
        "--config",
        SINK_LOCAL,
        "--config",
        "qk=oracle_top_k:heavy_size=[0.1,0.2]",
        "--benchmark",
        "synthetic_ruler:1024,2048",
        "--benchmark",
        "mock_benchmark",
        "--limit",
        "20",
        "--gpus",
        "cpu",
        "--result-dir",
        str(out),
    ]


def equivalent_yaml(model: str, out: Path) -> str:
    return textwrap.dedent(
        f"""
        result_dir: {out}
        models: [{model}]
        sparse_configs:
          dense: dense
          quest.heavy_size=0.3: {{recipe: quest, heavy_size: 0.3}}
          sink+local: [{{sink: {{sink_size: 2}}}}, {{local: {{window_size: 4}}}}]
          qk: {{recipe: oracle_top_k, heavy_size: [0.1, 0.2]}}
        benchmarks:
          - {{name: synthetic_ruler, subsets: [1024, 2048]}}
          - mock_benchmark
        request_kwargs: {{max_requests: 20}}
        executor: {{gpus: cpu}}
        """
    )


def flags_spec(model: str, out: Path) -> ExperimentSpec:
    return spec_from_flags(
        StudyFlags(
            models=[model],
            configs=[
                "dense",
                "quest:heavy_size=0.3",
                SINK_LOCAL,
                "qk=oracle_top_k:heavy_size=[0.1,0.2]",
            ],
            benchmarks=["synthetic_ruler:1024,2048", "mock_benchmark"],
            limit=20,
            gpus="cpu",
            result_dir=str(out),
        )
    )[0]


def cells(spec: ExperimentSpec) -> list[tuple[str, str, str]]:
    return [(stub.cell_id, stub.fingerprint, stub.result_dir) for stub, _ in plan_experiment(spec)]


def test_one_line_gives_the_cells_of_the_equivalent_yaml(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    from_flags = flags_spec(tiny_model_dir, tmp_path / "out")
    from_file = load_experiment_text(
        equivalent_yaml(tiny_model_dir, tmp_path / "out"), "study.yaml"
    )
    assert dataclasses.replace(from_flags, source="study.yaml") == from_file
    assert [name for name, _ in from_flags.sparse_configs] == [
        "dense",
        "quest.heavy_size=0.3",
        "sink+local",
        "qk.heavy_size=0.1",
        "qk.heavy_size=0.2",
    ]
    assert from_flags.request_kwargs == {"max_requests": 20}
    flag_cells = cells(from_flags)
    assert len(flag_cells) == 5 * 3 and len({fp for _, fp, _ in flag_cells}) == 15
    assert flag_cells == cells(from_file)


def test_print_yaml_loads_back_to_the_same_study(
    tiny_model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main([*flags_argv(tiny_model_dir, out), "--print-yaml"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()  # nothing ran
    loaded = load_experiment_text(text, "printed.yaml")
    from_flags = flags_spec(tiny_model_dir, out)
    assert loaded == dataclasses.replace(from_flags, source="printed.yaml")
    assert cells(loaded) == cells(from_flags)


def test_configs_given_one_by_one_are_the_sweep_points() -> None:
    """``--config quest:heavy_size=0.02 --config quest:heavy_size=0.05`` names and builds the
    configs as the sweep ``{recipe: quest, heavy_size: [0.02, 0.05]}`` does."""
    one_by_one = StudyFlags(
        models=["org/model"],
        configs=["quest:heavy_size=0.02", "quest:heavy_size=0.05"],
        benchmarks=["mock_benchmark"],
    )
    swept = dataclasses.replace(one_by_one, configs=["quest:heavy_size=[0.02,0.05]"])
    as_json = dataclasses.replace(
        one_by_one,
        configs=[
            '{"recipe": "quest", "heavy_size": 0.02}',
            '{"recipe": "quest", "heavy_size": 0.05}',
        ],
    )
    spec = spec_from_flags(one_by_one)[0]
    assert [name for name, _ in spec.sparse_configs] == [
        "quest.heavy_size=0.02",
        "quest.heavy_size=0.05",
    ]
    assert spec == spec_from_flags(swept)[0] == spec_from_flags(as_json)[0]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--config", "qeust"],
            "--config 'qeust': unknown config 'qeust'; expected dense, a recipe",
        ),
        (
            ["--config", "quest:heavy_sise=0.05"],
            "--config 'quest:heavy_sise=0.05': unknown parameter",
        ),
        (["--config", '[{"sink": '], "--config '[{\"sink\": ': not valid JSON"),
        (["--config", '[{"sink": {"sink_size": -1}}]'], "at [0].sink.sink_size: SinkMaskerConfig"),
        (["--config", "quest", "--config", "quest"], "a second config named 'quest'"),
        (
            ["--benchmark", "synthetic_rulr:4096"],
            "--benchmark 'synthetic_rulr:4096' at name: unknown benchmark",
        ),
        (["--benchmark", "synthetic_ruler:4095"], "valid subsets: 512, 1024"),
        (["--model", "tiny:gpt"], "--model 'tiny:gpt': unknown tiny model; allowed: tiny:llama"),
        (["--gpus", "x"], "--gpus: bad GPU id"),
        (["--address", "auto"], "--address: is a Ray address: add --backend ray"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["run", "--model", "org/model", "--benchmark", "mock_benchmark"]
    out = tmp_path / "out"
    assert main([*base, *argv, "--result-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sah: error: command line: ") and expected in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--model", "org/model"], "--benchmark: is required"),
        (["run", "--benchmark", "mock_benchmark"], "--model: is required"),
        (["run"], "sah run needs a study file (sah run study.yaml) or flags"),
        (["run", "study.yaml", "--limit", "3"], "give either a study file or --model"),
    ],
)
def test_a_study_file_or_flags(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.slow
def test_one_line_run_on_the_tiny_model_with_limit(
    tiny_model_dir: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [
        "-q",
        "run",
        "--model",
        tiny_model_dir,
        "--config",
        "dense",
        "--config",
        f"sl={SINK_LOCAL}",
        "--benchmark",
        "mock_benchmark",
        "--limit",
        "2",
        "--gpus",
        "cpu",
        "--result-dir",
        str(out),
    ]
    assert main(argv) == 0, capsys.readouterr()
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["sparse_config"]) == ["dense", "sl"]
    assert set(table["status"]) == {"complete"}
    for config in ("dense", "sl"):  # the first 2 of the benchmark's 8 rows
        (cell,) = out.glob(f"*/{config}/mock_benchmark")
        assert len(pd.read_csv(cell / "raw_results.csv")) == 2
        resolved = json.loads((cell / "config.json").read_text())["resolved_config"]
        assert resolved["request_kwargs"] == {"max_requests": 2}
    # The same line again reuses every cell (same fingerprints, same folders).
    capsys.readouterr()
    assert main(argv) == 0
    assert "all 2 cells were already complete" in capsys.readouterr().out
