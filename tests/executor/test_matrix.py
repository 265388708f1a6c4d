"""Matrix expansion, names, fingerprints, validation and cell status: no process is started."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sparse_attention_hub.cell_store import (
    COMPLETE,
    CORRUPT,
    PARTIAL,
    PENDING,
    STALE,
    cell_status,
    move_to_stale,
)
from sparse_attention_hub.executor import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkExecutor,
    ExecutorConfigError,
    sanitize_model_name,
)
from sparse_attention_hub.executor.matrix import expand_matrix
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from tests.support.fault_benchmark import FAULT

SINK_LOCAL = ResearchAttentionConfig.from_dict(
    {"maskers": [{"sink": {"sink_size": 4}}, {"local": {"window_size": 8}}]}
)


def _matrix(base: Path, **overrides):
    kwargs = dict(
        base_dir=base,
        model_names=["org/model-a", "model-b"],
        sparse_attention_configs=[("dense", None), ("sink_local", SINK_LOCAL), ("other", None)],
        benchmark_configs=[
            BenchmarkConfig(FAULT, ["ok", "sleep_0.2"]),
            BenchmarkConfig("mock_benchmark"),
        ],
        adapter_config=AdapterConfig(model_kwargs={"dtype": "float32"}),
        generation_kwargs={"max_new_tokens": 4},
    )
    kwargs.update(overrides)
    return expand_matrix(**kwargs)


def test_a_recalibrated_artefact_at_the_same_path_changes_the_fingerprint(tmp_path: Path) -> None:
    from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
        random_channel_table,
        write_channel_file,
    )

    channels = write_channel_file(tmp_path / "channels.json", random_channel_table(2, 4, 2, 16))
    config = ResearchAttentionConfig.from_dict(
        {"maskers": [{"double_sparsity": {"heavy_size": 4, "channel_file": str(channels)}}]}
    )

    def fingerprint() -> str:
        stubs = _matrix(tmp_path, sparse_attention_configs=[("ds", config)])
        return stubs[0].fingerprint

    before = fingerprint()
    assert fingerprint() == before  # stable while the file is unchanged
    write_channel_file(channels, random_channel_table(2, 4, 2, 16, seed=1))
    assert fingerprint() != before  # recalibrated in place: the cells run again
    # a config without artefacts keeps the fingerprint it had before artefacts were hashed
    plain = _matrix(tmp_path, sparse_attention_configs=[("sink_local", SINK_LOCAL)])[0]
    from sparse_attention_hub.cell_store import fingerprint_of
    from sparse_attention_hub.executor.matrix import resolved_config

    resolved = resolved_config(plain)
    resolved.pop("sparse_config_name")
    resolved.pop("model_name")
    assert plain.fingerprint == fingerprint_of(resolved)


def test_a_fixed_masker_re_runs_the_cells_computed_before_its_fix(tmp_path: Path) -> None:
    from sparse_attention_hub.cell_store import fingerprint_of
    from sparse_attention_hub.executor.matrix import resolved_config
    from sparse_attention_hub.sparse_attention.maskers.quest import QuestConfig

    assert QuestConfig.revision >= 1  # question rows scored as decode steps (a fix)
    config = ResearchAttentionConfig.from_dict({"maskers": [{"quest": {"token_budget": 64}}]})
    stub = _matrix(tmp_path, sparse_attention_configs=[("quest", config)])[0]
    resolved = resolved_config(stub)
    resolved.pop("sparse_config_name")
    resolved.pop("model_name")
    assert stub.fingerprint != fingerprint_of(resolved)  # the fingerprint of before the fix
    resolved["masker_revisions"] = {"0.QuestConfig": QuestConfig.revision}
    assert stub.fingerprint == fingerprint_of(resolved)


def test_sanitize_model_name_follows_the_seed_rule() -> None:
    assert (
        sanitize_model_name("meta-llama/Llama-3.1-8B-Instruct")
        == "meta-llama_Llama-3.1-8B-Instruct"
    )
    assert sanitize_model_name('a\\b:c*d?e"f<g>h|i') == "a_b_c_d_e_f_g_h_i"
    assert sanitize_model_name("/abs//path/") == "abs_path"


def test_matrix_expansion_counts_and_layout(tmp_path: Path) -> None:
    stubs = _matrix(tmp_path)
    # 2 models x 3 configs x (2 subsets + 1 whole benchmark)
    assert len(stubs) == 18
    assert len({s.result_dir for s in stubs}) == 18
    first = stubs[0]
    assert (
        Path(first.result_dir)
        == tmp_path.resolve() / "org_model-a" / "dense" / "fault_injection_ok"
    )
    whole = [s for s in stubs if s.benchmark_name == "mock_benchmark"]
    assert len(whole) == 6 and all(
        s.subset is None and s.result_dir.endswith("/mock_benchmark") for s in whole
    )


def test_fingerprint_tracks_the_resolved_config(tmp_path: Path) -> None:
    base = {
        (s.model_name, s.sparse_config_name, s.benchmark_name, s.subset): s.fingerprint
        for s in _matrix(tmp_path)
    }
    again = {
        (s.model_name, s.sparse_config_name, s.benchmark_name, s.subset): s.fingerprint
        for s in _matrix(tmp_path)
    }
    assert base == again  # stable
    changed = _matrix(tmp_path, generation_kwargs={"max_new_tokens": 5})
    assert all(
        s.fingerprint != base[(s.model_name, s.sparse_config_name, s.benchmark_name, s.subset)]
        for s in changed
    )
    # the config's display name is not part of it: "dense" and "other" are both dense
    assert (
        base[("model-b", "dense", "mock_benchmark", None)]
        == base[("model-b", "other", "mock_benchmark", None)]
    )
    assert (
        base[("model-b", "dense", "mock_benchmark", None)]
        != base[("model-b", "sink_local", "mock_benchmark", None)]
    )
    bigger_sink = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 5}}, {"local": {"window_size": 8}}]}
    )
    other = _matrix(tmp_path, sparse_attention_configs=[("sink_local", bigger_sink)])
    assert (
        other[0].fingerprint
        != base[(other[0].model_name, "sink_local", other[0].benchmark_name, other[0].subset)]
    )


def test_validation_lists_every_problem_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    executor = BenchmarkExecutor(
        None,
        1,
        base_result_dir=str(not_a_dir / "results"),
        verbose=False,
        enabled_metrics=["no_such_metric"],
    )
    with pytest.raises(ExecutorConfigError) as info:
        executor.run_benchmark_matrix(
            model_names=[],
            sparse_attention_configs=[
                ("dense", None),
                ("dense", None),
                ("../x", None),
                ("bad", {"maskers": [{"nope": {}}]}),
            ],
            benchmark_configs=[
                BenchmarkConfig("no_such_benchmark"),
                BenchmarkConfig(FAULT, ["ok", "nope"]),
            ],
            adapter_config=AdapterConfig(),
        )
    problems = info.value.problems
    text = str(info.value)
    assert len(problems) == 8, text
    for needle in (
        "model_names",
        "'dense' is listed twice",
        "'../x'",
        "'bad' is invalid",
        "no_such_benchmark",
        "'nope'",
        "not a directory",
        "no_such_metric",
    ):
        assert needle in text, needle
    assert not (not_a_dir.parent / "results").exists()

    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    with pytest.raises(ExecutorConfigError) as info:
        BenchmarkExecutor([0, 5, -1], 0, max_retries=-1, sampling_factor=2.0)
    assert len(info.value.problems) == 4, str(info.value)
    with pytest.raises(ExecutorConfigError, match=r"gpu_ids \[2\] do not exist: 2 GPU"):
        BenchmarkExecutor([0, 2], 2)


def _write_cell(stub, files: dict[str, str], fingerprint: str | None) -> None:
    root = Path(stub.result_dir)
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    if fingerprint is not None:
        (root / "config.json").write_text(json.dumps({"fingerprint": fingerprint, "benchmark": {}}))


def _complete(fingerprint: str | None, rows: int = 1) -> dict[str, str]:
    """The files of a complete cell of ``rows`` rows made with ``fingerprint``."""
    metrics = {"overall_score": 1.0, "num_rows": rows, "fingerprint": fingerprint}
    return {
        "metrics.json": json.dumps(metrics),
        "raw_results.csv": "a\n",
        "predictions.jsonl": "".join(json.dumps({"row_id": i}) + "\n" for i in range(rows)),
    }


def test_cell_status_and_stale_move(tmp_path: Path) -> None:
    stubs = _matrix(tmp_path)[:5]
    _write_cell(stubs[0], _complete(stubs[0].fingerprint), stubs[0].fingerprint)
    _write_cell(stubs[1], _complete("another-config"), "another-config")
    _write_cell(stubs[2], {"predictions.jsonl": '{"row_id": 0}\n'}, stubs[2].fingerprint)
    no_csv = {k: v for k, v in _complete(stubs[3].fingerprint).items() if k != "raw_results.csv"}
    _write_cell(stubs[3], no_csv, stubs[3].fingerprint)
    statuses = [cell_status(s.result_dir, s.fingerprint).status for s in stubs]
    assert statuses == [COMPLETE, STALE, PARTIAL, CORRUPT, PENDING]
    assert cell_status(stubs[3].result_dir, stubs[3].fingerprint, ()).status == COMPLETE

    target = move_to_stale(stubs[1].result_dir)
    assert target.parent == Path(stubs[1].result_dir) / "stale"
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json",
        "metrics.json",
        "predictions.jsonl",
        "raw_results.csv",
    ]
    assert cell_status(stubs[1].result_dir, stubs[1].fingerprint).status == PENDING


def test_plan_matrix_reports_status_and_writes_nothing(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    executor = BenchmarkExecutor(None, 2, base_result_dir=str(base), verbose=False)
    args = dict(
        model_names=["m"],
        sparse_attention_configs=[("dense", None)],
        benchmark_configs=[BenchmarkConfig(FAULT, ["ok", "raise"])],
        adapter_config=AdapterConfig(),
    )
    plan = executor.plan_matrix(**args)
    assert [status for _, status in plan] == [PENDING, PENDING]
    assert not base.exists()
    _write_cell(plan[0][0], _complete(plan[0][0].fingerprint), plan[0][0].fingerprint)
    assert [status for _, status in executor.plan_matrix(**args)] == [COMPLETE, PENDING]
    _write_cell(plan[1][0], {"predictions.jsonl": '{"row_id": 0}\n'}, plan[1][0].fingerprint)
    assert [status for _, status in executor.plan_matrix(**args)] == [COMPLETE, PARTIAL]
    # without resumability nothing is reused: a partial cell does not resume either
    rerun_all = BenchmarkExecutor(None, 2, base_result_dir=str(base), enable_resumability=False)
    assert [status for _, status in rerun_all.plan_matrix(**args)] == [STALE, STALE]


def test_a_second_executor_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    from sparse_attention_hub.executor.lock import BaseDirLock, BaseDirLocked

    base = tmp_path / "runs"
    base.mkdir()
    executor = BenchmarkExecutor(None, 1, base_result_dir=str(base), verbose=False)
    with BaseDirLock(base), pytest.raises(BaseDirLocked, match=f"pid {os.getpid()}"):
        executor.run_benchmark_matrix(
            model_names=["m"],
            sparse_attention_configs=[("dense", None)],
            benchmark_configs=[BenchmarkConfig(FAULT, ["ok"])],
            adapter_config=AdapterConfig(),
        )
    assert not (base / "m").exists()


def test_validation_of_names_devices_and_what_cannot_reach_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparse_attention_hub.executor.validation import shared_directory_problems

    class LocalConfig:  # a class local to a function does not pickle
        def to_dict(self) -> dict:
            return {"maskers": []}

    executor = BenchmarkExecutor(None, 4, base_result_dir=str(tmp_path / "r"), verbose=False)
    with pytest.raises(ExecutorConfigError) as info:
        executor.plan_matrix(
            model_names=["a/b", "a_b", "m" * 300],
            sparse_attention_configs=[("dense", SINK_LOCAL), ("local", LocalConfig())],
            benchmark_configs=[BenchmarkConfig(FAULT, ["ok"])],
            adapter_config=AdapterConfig(),
            generation_kwargs={"stop": lambda: 0},
        )
    text = str(info.value)
    assert len(info.value.problems) == 5, text
    for needle in (
        "'a/b' and 'a_b' share the directory 'a_b'",
        "300 bytes long",
        "'dense' is not None",
        "sparse config 'local' cannot be sent to a worker",
        "generation_kwargs cannot be sent to a worker",
    ):
        assert needle in text, needle

    clash = expand_matrix(
        tmp_path,
        ["m"],
        [("dense", None)],
        [BenchmarkConfig("a", ["b_c"]), BenchmarkConfig("a_b", ["c"]), BenchmarkConfig("a_b_c")],
        AdapterConfig(),
    )
    assert len(shared_directory_problems(clash)) == 2
    for subsets in ([], [" "]):
        with pytest.raises(ValueError, match="non-empty subset names"):
            BenchmarkConfig(FAULT, subsets)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 2)
    for gpu_ids, needle in ((0, "must be a list"), ([1, 1], "duplicates"), ([-1], "non-negative")):
        with pytest.raises(ExecutorConfigError, match=needle):
            BenchmarkExecutor(gpu_ids, 2)


def test_names_that_differ_only_by_case_are_refused(tmp_path: Path) -> None:
    """On a case-insensitive file system (macOS, Windows) they would share one folder."""
    from sparse_attention_hub.executor.validation import shared_directory_problems

    executor = BenchmarkExecutor(None, 1, base_result_dir=str(tmp_path / "r"), verbose=False)
    with pytest.raises(ExecutorConfigError) as info:
        executor.plan_matrix(
            model_names=["org/Model", "org/model"],
            sparse_attention_configs=[("TopK", SINK_LOCAL), ("topk", SINK_LOCAL)],
            benchmark_configs=[BenchmarkConfig(FAULT, ["ok"])],
            adapter_config=AdapterConfig(),
        )
    text = str(info.value)
    assert len(info.value.problems) == 2, text
    assert "model names 'org/Model' and 'org/model' share the directory 'org_model'" in text
    assert "sparse config names 'TopK' and 'topk' differ only by case" in text
    clash = expand_matrix(
        tmp_path, ["m"], [("dense", None)], [BenchmarkConfig("b", ["Sub", "sub"])], AdapterConfig()
    )
    (problem,) = shared_directory_problems(clash)
    assert "share one folder on a case-insensitive file system" in problem


def test_a_stale_cell_that_cannot_be_moved_fails_alone(tmp_path: Path) -> None:
    base = tmp_path / "runs"
    executor = BenchmarkExecutor(None, 1, base_result_dir=str(base), verbose=False)
    args = dict(
        model_names=["m"],
        sparse_attention_configs=[("dense", None)],
        benchmark_configs=[BenchmarkConfig(FAULT, ["ok"])],
        adapter_config=AdapterConfig(),
    )
    ((stub, _),) = executor.plan_matrix(**args)
    _write_cell(stub, {"metrics.json": "{}", "stale": "a file where stale/ must go"}, "old")
    results = executor.run_benchmark_matrix(**args)  # no worker starts: nothing is runnable
    (failure,) = results.failed_executions
    assert failure.error_type == "other" and "stale/" in failure.error_message
    summary = json.loads((base / "execution_summary.json").read_text())
    assert summary["totals"]["failed"] == 1 and summary["workers"] == 0
    assert (Path(stub.result_dir) / "metrics.json").exists()  # the old files stay


def test_workers_spread_evenly_over_gpus_and_never_outnumber_cells(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("torch.cuda.device_count", lambda: 4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # the parent's own restriction
    executor = BenchmarkExecutor([2, 0], 5, verbose=False)
    settings = executor._worker_settings(num_cells=100)
    assert [s.gpu_id for s in settings] == [2, 0, 2, 0, 2]
    assert [s.cuda_visible_devices for s in settings] == ["6", "4", "6", "4", "6"]
    assert all(s.num_threads is None for s in settings)
    assert len(executor._worker_settings(num_cells=3)) == 3
    cpu = BenchmarkExecutor(None, 8, verbose=False)._worker_settings(num_cells=2)
    assert [s.gpu_id for s in cpu] == [None, None] and all(s.num_threads for s in cpu)


def test_a_gpu_run_refuses_a_prefill_block_its_kernel_cannot_tile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On GPUs (their count faked: no GPU here) a sparse prefill with blocks of 8 is refused
    at planning, before any worker; the same study plans on the CPU, and blocks of 64 plan."""
    monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    prefill = {"prefill_maskers": [{"sink": {"sink_size": 4}}]}
    odd = ResearchAttentionConfig.from_dict({**prefill, "prefill_block_size": 8})
    even = ResearchAttentionConfig.from_dict({**prefill, "prefill_block_size": 64})
    args = dict(
        model_names=["m"],
        sparse_attention_configs=[("odd", odd), ("even", even)],
        benchmark_configs=[BenchmarkConfig(FAULT, ["ok"])],
        adapter_config=AdapterConfig(),
    )
    gpu = BenchmarkExecutor([0], 1, base_result_dir=str(tmp_path / "r"), verbose=False)
    with pytest.raises(ExecutorConfigError) as info:
        gpu.plan_matrix(**args)
    assert info.value.problems == [
        "sparse config 'odd': prefill_block_size=8, but the sparse prefill on a GPU needs a "
        "multiple of 16 tokens (the kernel's smallest tile); allowed: 16, 32, 48, ... "
        "(default 128)"
    ]
    cpu = BenchmarkExecutor(None, 1, base_result_dir=str(tmp_path / "r"), verbose=False)
    assert len(cpu.plan_matrix(**args)) == 2
