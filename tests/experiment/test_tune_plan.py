"""``sah tune``'s file and trial plan (no Ray): the searcher stays in its space, invalid points
are rejected with their reason counted, and a bad file names its key (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment.checks import ExperimentError
from sparse_attention_hub.experiment.tune.plan import plan_trials
from sparse_attention_hub.experiment.tune.schema import parse_tune

STUDY = {
    "models": [{"tiny_model": {"arch": "llama"}}],
    "benchmarks": [{"name": "mock_benchmark"}],
}


def _search(**search: object) -> dict[str, object]:
    return {**STUDY, "search": {"targets": [0.1, 0.2], "trials": 5, **search}}


def test_random_points_stay_in_the_space() -> None:
    spec = parse_tune(
        _search(
            methods=[
                {
                    "recipe": "oracle_top_k",
                    "space": {
                        "heavy_size": {"scale": [0.5, 0.9]},
                        "sink_size": {"choices": [2, 4]},
                        "window_size": {"low": 1, "high": 8, "integer": True},
                    },
                }
            ]
        ),
        "t.yaml",
    )
    plan = plan_trials(spec.search)
    assert len(plan.rows) == 10  # 5 trials x 2 targets
    for row in plan.rows:
        params, target = row["params"], row["target"]
        assert 0.5 * target <= params["heavy_size"] <= 0.9 * target
        assert params["sink_size"] in (2, 4)
        assert isinstance(params["window_size"], int) and 1 <= params["window_size"] <= 8
    assert plan_trials(spec.search).rows == plan.rows  # the seed fixes the points


def test_grid_and_default_spaces() -> None:
    spec = parse_tune(_search(methods=["quest"], searcher="grid", targets=[0.1]), "t.yaml")
    rows = plan_trials(spec.search).rows
    # quest's default space: heavy_size at 3 points of 0.5-1.0 x target, page_size 8/16/32
    assert len(rows) == 9
    assert {r["params"]["page_size"] for r in rows} == {8, 16, 32}
    assert {r["params"]["heavy_size"] for r in rows} == {0.05, 0.075, 0.1}


def test_invalid_points_are_rejected_and_counted() -> None:
    spec = parse_tune(
        _search(
            methods=[
                {
                    "recipe": "oracle_top_k",
                    "space": {"heavy_size": {"choices": [0.5, 0.9]}},
                    "fixed": {"sink_size": 0.2, "window_size": 0.2},
                }
            ],
            searcher="grid",
            targets=[0.5],
        ),
        "t.yaml",
    )
    plan = plan_trials(spec.search)
    assert [r["params"]["heavy_size"] for r in plan.rows] == [0.5]
    assert plan.rejected == {"oracle_top_k: sizes overlap (their sum is above K)": 1}


@pytest.mark.parametrize(
    ("search", "key"),
    [
        ({"methods": ["no_such_recipe"]}, "search.methods[0].recipe"),
        ({"methods": ["quest"], "searcher": "bayes"}, "search.searcher"),
        ({"methods": ["quest"], "targets": [1.5]}, "search.targets[0]"),
        ({"methods": [{"recipe": "quest", "space": {"page_size": {"low": 9, "high": 2}}}]},
         "search.methods[0].space.page_size"),
        ({"methods": [{"recipe": "quest", "space": {"no_param": {"choices": [1]}}}]},
         "search.methods[0]"),
        ({"methods": ["quest"], "objective": "speed"}, "search.objective"),
    ],
)  # fmt: skip
def test_bad_search_names_the_key(search: dict[str, object], key: str) -> None:
    data = {**STUDY, "search": {"targets": [0.1], **search}}
    with pytest.raises(ExperimentError) as info:
        parse_tune(data, "t.yaml")
    assert info.value.path == key


def test_bad_file_exits_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tune.yaml"
    data = {**STUDY, "result_dir": str(tmp_path / "res"), "search": {"methods": ["quest"]}}
    path.write_text(yaml.safe_dump(data))
    assert main(["tune", str(path)]) == 2
    assert "search.targets: missing (this key is required)" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()


def test_a_held_result_dir_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two ``sah tune`` (or a ``sah tune`` and a ``sah run``) on one directory: the second is
    refused, as a second ``sah run`` is, before any trial starts."""
    from sparse_attention_hub.executor.lock import BaseDirLock

    res = tmp_path / "res"
    res.mkdir()
    path = tmp_path / "tune.yaml"
    data = {**_search(methods=["quest"]), "result_dir": str(res)}
    path.write_text(yaml.safe_dump(data))
    with BaseDirLock(res):  # what a running sah run or sah tune holds
        assert main(["tune", str(path)]) == 2
    assert "another BenchmarkExecutor" in capsys.readouterr().err
    assert sorted(p.name for p in res.iterdir()) == [".sah_executor.lock"]  # no trial, no model


def test_missing_model_fails_the_preflight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model or dataset that cannot be had: exit 2 listing it, before any trial starts."""
    path = tmp_path / "tune.yaml"
    data = {
        **_search(methods=["quest"]),
        "models": ["sah-test-missing/no_such_model"],
        "result_dir": str(tmp_path / "res"),
    }
    path.write_text(yaml.safe_dump(data))
    assert main(["tune", str(path)]) == 2
    err = capsys.readouterr().err
    assert "problem(s), so no worker was started" in err and "no_such_model" in err
    assert not (tmp_path / "res" / "ray_tune").exists()


def test_every_default_space_gives_valid_points() -> None:
    """Each recipe with a default space (decode, eviction and prefill recipes) plans grid
    points that build valid configs; the eviction recipes tune their compression ratio."""
    from sparse_attention_hub.experiment.tune.defaults import DEFAULT_SPACES
    from sparse_attention_hub.sparse_attention.recipes import available_recipes

    assert set(DEFAULT_SPACES) <= set(available_recipes())
    for recipe in DEFAULT_SPACES:
        spec = parse_tune(_search(methods=[recipe], searcher="grid", targets=[0.2]), "t.yaml")
        plan = plan_trials(spec.search)
        assert plan.rows and not plan.rejected, (recipe, plan.rejected)
    spec = parse_tune(_search(methods=["snapkv"], searcher="grid", targets=[0.2]), "t.yaml")
    ratios = [row["params"]["compression_ratio"] for row in plan_trials(spec.search).rows]
    assert min(ratios) == 0.5 and max(ratios) == 0.99
