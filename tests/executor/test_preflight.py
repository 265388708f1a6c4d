"""Know before the GPUs start: models and datasets resolved once, in the parent.

The hub is a local HTTP server (tests/support/fake_hub.py) spoken to by the real
huggingface_hub client, an unreachable endpoint (a closed port), or HF_HUB_OFFLINE with a
local cache laid out as huggingface_hub writes it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.benchmarks.data_needs import HUB_DATASET, HUB_FILE, LOCAL, DataNeed
from sparse_attention_hub.cli import main
from sparse_attention_hub.executor import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkExecutor,
    ExecutorConfigError,
    PreflightError,
)
from sparse_attention_hub.executor.preflight import preflight
from tests.support.fake_hub import FakeHub

SECRET = "hf_preflightSecretToken123"


def closed_port_url() -> str:
    with socket.socket() as sock:  # bound then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Hub access allowed (the session sets HF_HUB_OFFLINE), an empty cache, a secret token."""
    import huggingface_hub.constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    # read at import: what a process started without HF_HUB_OFFLINE would have
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "ds_cache"))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    return monkeypatch


def test_benchmarks_name_the_data_they_read(tmp_path: Path) -> None:
    (tmp_path / "qasper.jsonl").write_text("{}\n")
    needs = create_benchmark_instance("zero_scrolls", ["qasper", "quality"]).data_needs()
    assert [(n.kind, n.source, n.name) for n in needs] == [
        (HUB_FILE, "tau/zero_scrolls", "qasper.zip"),
        (HUB_FILE, "tau/zero_scrolls", "quality.zip"),
    ]
    assert create_benchmark_instance("longbench", ["qasper", "trec"]).data_needs() == [
        DataNeed(HUB_FILE, "THUDM/LongBench", "data.zip")
    ]
    ruler = create_benchmark_instance("ruler", ["4096", "65536"]).data_needs()
    assert ruler[0] == DataNeed(HUB_DATASET, "simonjegou/ruler", data_dir="4096")
    assert ruler[1].problem is not None and "publishes only" in ruler[1].problem
    assert create_benchmark_instance("aime").data_needs() == [
        DataNeed(HUB_DATASET, "HuggingFaceH4/aime_2024"),
        DataNeed(HUB_DATASET, "yentinglin/aime_2025"),
    ]
    assert create_benchmark_instance("synthetic_ruler", ["1024"]).data_needs() == []
    assert create_benchmark_instance("mock_benchmark").data_needs() == []
    local = create_benchmark_instance("loogle", ["shortdep_qa"], data_dir=tmp_path).data_needs()
    assert local[0].kind == LOCAL and "no local data for subset 'shortdep_qa'" in str(
        local[0].problem
    )
    ok = create_benchmark_instance("longbench", ["qasper"], data_dir=tmp_path).data_needs()
    assert ok == [DataNeed(LOCAL, str(tmp_path), "qasper")]


def test_fake_hub_models_and_datasets_found_gated_and_missing_named(
    online: pytest.MonkeyPatch, tiny_model_dir: str, caplog: pytest.LogCaptureFixture
) -> None:
    hub = FakeHub(
        models={"org/ok": ["config.json", "tokenizer.json"], "org/notok": ["model.bin"]},
        datasets={"tau/zero_scrolls": ["qasper.zip"]},
        gated={"org/gated"},
        licensed={"org/licensed"},
    )
    with hub as url:
        online.setenv("HF_ENDPOINT", url)
        report = preflight(
            ["org/ok", "org/gated", "org/missing", "org/notok", "org/licensed", tiny_model_dir],
            [BenchmarkConfig("zero_scrolls", ["qasper", "gov_report"])],
            AdapterConfig(),
            timeout=5,
        )
    text = "\n".join(report.lines)
    assert report.lines[0] == "ok      model org/ok: reachable on the hub"
    gated = next(p for p in report.problems if p.startswith("model org/gated"))
    assert "accept its licence at https://huggingface.co/org/gated" in gated
    assert "set HF_TOKEN" in gated and "HF_TOKEN is set" in gated
    assert any(p.startswith("model org/missing: not found on the hub") for p in report.problems)
    notok = next(p for p in report.problems if p.startswith("model org/notok"))
    assert "config.json" in notok and "tokenizer files" in notok
    assert f"ok      model {tiny_model_dir}: local folder" in text
    assert "ok      zero_scrolls: dataset tau/zero_scrolls file qasper.zip" in text
    assert any("gov_report.zip" in p and "no file" in p for p in report.problems)
    licensed = next(p for p in report.problems if p.startswith("model org/licensed"))
    assert "accept its licence at https://huggingface.co/org/licensed" in licensed
    assert ("HEAD", "/org/licensed/resolve/main/config.json") in [r[:2] for r in hub.requests]
    assert len(report.problems) == 5
    assert SECRET not in text + "\n".join(r.getMessage() for r in caplog.records)
    # the token went to the hub (a gated model needs it) and nowhere else
    assert any(auth == f"Bearer {SECRET}" for _, _, auth in hub.requests)
    # one request per repository: no retries
    assert sum(1 for _, path, _ in hub.requests if "/org/missing" in path) == 1


def cache_model(cache: Path, repo: str, model_dir: str) -> None:
    """``repo`` in the hub cache as huggingface_hub lays it out (refs/main -> snapshot)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / ("a" * 40)
    shutil.copytree(model_dir, snapshot)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text("a" * 40)


def test_offline_passes_what_is_cached_and_names_what_is_not(
    online: pytest.MonkeyPatch, tiny_model_dir: str, tmp_path: Path
) -> None:
    online.setenv("HF_HUB_OFFLINE", "1")
    online.setenv("HF_ENDPOINT", closed_port_url())
    cache_model(tmp_path / "hf_cache", "org/cached", tiny_model_dir)
    (tmp_path / "ds_cache" / "bigai-nlco___loo_gle" / "x").mkdir(parents=True)
    report = preflight(
        ["org/cached", "org/absent"],
        [BenchmarkConfig("loogle", ["shortdep_qa"]), BenchmarkConfig("mock_benchmark")],
        AdapterConfig(),
    )
    assert report.lines[0] == "ok      model org/cached: in the local HuggingFace cache"
    assert [p.split(":")[0] for p in report.problems] == [
        "model org/absent",
        "loogle",
    ]
    assert "HF_HUB_OFFLINE is set" in report.problems[0]


def experiment(
    tmp_path: Path,
    model: str,
    executor: str = "{gpus: cpu}",
    second: str = "{name: longbench, subsets: [qasper]}",
) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            result_dir: {tmp_path / "out"}
            models: [{model}]
            sparse_configs: {{dense: dense}}
            benchmarks:
              - mock_benchmark
              - {second}
            executor: {executor}
            """
        ),
        encoding="utf-8",
    )
    return path


def sah(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparse_attention_hub", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_sah_run_with_an_unreachable_hub_fails_before_any_worker(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_ENDPOINT=closed_port_url(), HF_HUB_CACHE=str(tmp_path / "cache"), HF_TOKEN=SECRET)
    path = experiment(tmp_path, "org/some-8b-model")
    done = sah(["run", str(path)], env)
    assert done.returncode == 2, done.stderr
    err = done.stderr
    assert "2 problem(s), so no worker was started (models or datasets that cannot be had" in err
    assert "model org/some-8b-model: the hub is not reachable" in err
    assert "longbench: dataset THUDM/LongBench file data.zip: the hub is not reachable" in err
    assert "executor.preflight: false" in err
    assert "sah-worker" not in err and "Traceback" not in err
    assert SECRET not in done.stdout + err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())  # no cell, no summary: nothing ran


def test_dry_run_reports_each_item_and_preflight_false_skips_it(
    tmp_path: Path, tiny_model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = experiment(tmp_path, "org/some-8b-model")  # HF_HUB_OFFLINE=1 in the test session
    assert main(["-q", "run", str(path), "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert (
        "  MISSING model org/some-8b-model: the hub is not reachable (HF_HUB_OFFLINE is set)"
        in captured.out
    )
    assert "preflight (" in captured.out and "2 missing" in captured.out
    assert "2 problem(s), so no worker was started" in captured.err
    path = experiment(tmp_path, tiny_model_dir, second="{name: synthetic_ruler, subsets: [1024]}")
    assert main(["-q", "run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"  ok      model {tiny_model_dir}: local folder" in out
    path = experiment(tmp_path, "org/some-8b-model", "{gpus: cpu, preflight: false}")
    assert main(["-q", "run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "preflight (" not in out and "pending" in out


def test_the_executor_raises_one_error_listing_everything(tmp_path: Path) -> None:
    executor = BenchmarkExecutor(None, 2, base_result_dir=str(tmp_path / "out"), verbose=False)
    with pytest.raises(PreflightError) as info:
        executor.run_benchmark_matrix(
            ["org/a", "org/b"],
            [("dense", None)],
            [BenchmarkConfig("longbench", ["qasper"], {"data_dir": str(tmp_path)})],
            AdapterConfig(),
        )
    assert [p.split(":")[0] for p in info.value.problems] == [
        "model org/a",
        "model org/b",
        "longbench",
    ]
    assert not (tmp_path / "out").exists()


def test_bad_preflight_and_progress_interval_values() -> None:
    with pytest.raises(ExecutorConfigError) as info:
        BenchmarkExecutor(None, 1, preflight="yes", progress_interval=0)  # type: ignore[arg-type]
    text = str(info.value)
    assert "preflight='yes': must be True or False" in text
    assert "progress_interval=0: must be in (0, 31536000] seconds" in text


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300])
def test_infinite_timeouts_and_progress_intervals_are_refused(value: float) -> None:
    with pytest.raises(ExecutorConfigError) as info:
        BenchmarkExecutor(None, 1, timeout_per_benchmark=value, progress_interval=value)
    text = str(info.value)
    assert f"timeout_per_benchmark={value!r}: must be in (0, 31536000] seconds" in text
    assert f"progress_interval={value!r}: must be in (0, 31536000] seconds" in text
