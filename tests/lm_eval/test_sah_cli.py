"""``sah lm-eval``: lm-eval's own command line with the model ``sah`` (flags pass through)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparse_attention_hub.cli import build_parser
from sparse_attention_hub.cli import main as sah_main
from sparse_attention_hub.lm_eval.cli import with_default_model
from sparse_attention_hub.metric_logging import MicroMetricLogger


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "hf", "--tasks", "x"],
        ["--tasks", "x", "--limit", "3"],
        ["run", "--help"],
        ["ls", "tasks"],
        ["-h"],
        [],
    ],
)
def test_every_argument_after_lm_eval_passes_through(args):
    parsed = build_parser().parse_args(["-q", "lm-eval", *args])
    assert parsed.lm_eval_args == args and parsed.quiet


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tasks", "t"], ["--tasks", "t", "--model", "sah"]),
        (["run", "--tasks", "t"], ["run", "--tasks", "t", "--model", "sah"]),
        (["--model", "hf", "--tasks", "t"], ["--model", "hf", "--tasks", "t"]),
        (["--model=hf", "--tasks", "t"], ["--model=hf", "--tasks", "t"]),
        (["--config", "c.yaml"], ["--config", "c.yaml"]),
        (["ls", "tasks"], ["ls", "tasks"]),
        (["--help"], ["--help"]),
        ([], []),
    ],
)
def test_sah_is_the_default_model(args, expected):
    assert with_default_model(args) == expected


@pytest.mark.slow
def test_sah_lm_eval_writes_results_samples_and_reuses_its_cache(
    lm_eval, task_dir, tiny_model_dir, tmp_path: Path
):
    config = tmp_path / "sparse.yaml"
    config.write_text("- sink: {sink_size: 1}\n- local: {window_size: 2}\n", encoding="utf-8")
    metrics = tmp_path / "metrics"
    out = tmp_path / "out"
    argv = [
        "-q",
        "lm-eval",
        "--model_args",
        f"pretrained={tiny_model_dir},sparse_config={config},micro_metrics_dir={metrics}",
        "--device",
        "cpu",
        "--tasks",
        "sah_tiny_mc",
        "--include_path",
        str(task_dir),
        "--limit",
        "2",
        "--output_path",
        str(out),
        "--log_samples",
        "--use_cache",
        str(tmp_path / "cache"),
    ]
    try:
        assert sah_main(argv) == 0
        (log,) = metrics.glob("micro_metrics.jsonl")
        logged = log.read_text(encoding="utf-8").count("\n")
        assert logged > 0
        assert sah_main(argv) == 0  # every response from --use_cache: nothing runs, nothing logs
        assert log.read_text(encoding="utf-8").count("\n") == logged
    finally:
        MicroMetricLogger().enable_metrics(None)
    assert list(tmp_path.glob("cache*.db"))
    results = sorted(out.rglob("results_*.json"))
    samples = sorted(out.rglob("samples_sah_tiny_mc_*.jsonl"))
    assert len(results) == 2 and len(samples) == 2
    first, second = (json.loads(p.read_text(encoding="utf-8")) for p in results)
    assert first["config"]["model"] == "sah" and first["config"]["limit"] == 2
    assert first["config"]["sah"]["sparse_attention_config"]["maskers"][0] == {
        "sink": {"sink_size": 1}
    }
    assert first["results"] == second["results"]
    rows = [json.loads(line) for line in samples[0].read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2


def test_a_bad_model_argument_is_named(lm_eval, task_dir, tiny_model_dir, capsys):
    code = sah_main(
        [
            "-q",
            "lm-eval",
            "--model_args",
            f"pretrained={tiny_model_dir},sparse_config=no_such_recipe",
            "--device",
            "cpu",
            "--tasks",
            "sah_tiny_mc",
            "--include_path",
            str(task_dir),
        ]
    )
    assert code == 2
    assert "no_such_recipe" in capsys.readouterr().err


def test_without_lm_eval_the_command_names_the_extra_to_install():
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['lm_eval'] = None\n"  # as if lm-eval were not installed
        "import sparse_attention_hub.cli as cli, sparse_attention_hub.lm_eval as pkg\n"
        "assert 'lm_eval.api' not in sys.modules\n"
        "sys.exit(cli.main(['lm-eval', '--tasks', 'x']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert 'pip install "sparse-attention-hub[lm-eval]"' in done.stderr
