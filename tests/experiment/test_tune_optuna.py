"""``searcher: optuna`` without a Ray cluster: the space as Optuna distributions, the searcher
(Ray Tune's OptunaSearch behind :class:`GuardedSearch`) staying in its space, rejecting and
counting invalid points, seeded; and the error naming the extra when Optuna is missing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment.checks import ExperimentError
from sparse_attention_hub.experiment.tune.schema import parse_tune

STUDY = {
    "models": [{"tiny_model": {"arch": "llama"}}],
    "benchmarks": [{"name": "mock_benchmark"}],
}
SPACE = {
    "heavy_size": {"scale": [0.5, 0.9]},  # times the target
    "sink_size": {"choices": [2, 4]},
    "window_size": {"low": 1, "high": 8, "integer": True},
}


def _spec(space: dict[str, Any], recipe: str = "oracle_top_k", **search: Any) -> Any:
    method = {"recipe": recipe, "space": space}
    data = {**STUDY, "search": {"methods": [method], "targets": [0.2], "searcher": "optuna"}}
    data["search"].update(search)  # type: ignore[attr-defined]
    return parse_tune(data, "t.yaml")


def _drive(spec: Any, asks: int, seed_target: float = 0.2) -> tuple[list[Any], Any]:
    """Ask up to ``asks`` trials, each finished with figures that depend on its point."""
    from sparse_attention_hub.experiment.tune.adaptive import GuardedSearch

    searcher = GuardedSearch(spec.search.methods[0], seed_target, spec.search)
    points = []
    for i in range(asks):
        config = searcher.suggest(f"t{i}")
        if not isinstance(config, dict):
            break
        params = config["trial"]["params"]
        points.append(params)
        heavy = params.get("heavy_size", 0.1)
        figures = {"density": 2 * heavy, "output_error": abs(heavy - 0.15) + 0.01 * i}
        searcher.on_trial_complete(f"t{i}", figures)
    return points, searcher


def test_space_maps_to_optuna_distributions() -> None:
    pytest.importorskip("optuna", reason="the tune-optuna extra is not installed")
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from sparse_attention_hub.experiment.tune.optuna_space import distributions, point_of

    space = {
        **SPACE,
        "epsilon": {"low": 0.01, "high": 0.3, "log": True},
        "dense_layers": {"choices": [[], [0, 1]]},  # not an Optuna value: by index
    }
    method = _spec(space, recipe="vattention").search.methods[0]
    dists = distributions(method, 0.2)
    heavy = dists["heavy_size"]
    assert isinstance(heavy, FloatDistribution) and not heavy.log
    assert (heavy.low, heavy.high) == pytest.approx((0.1, 0.18))
    eps = dists["epsilon"]
    assert isinstance(eps, FloatDistribution) and eps.log and (eps.low, eps.high) == (0.01, 0.3)
    window = dists["window_size"]
    assert isinstance(window, IntDistribution) and (window.low, window.high) == (1, 8)
    assert dists["sink_size"] == CategoricalDistribution((2, 4))
    assert dists["dense_layers"] == CategoricalDistribution((0, 1))
    params = {"heavy_size": 0.123456, "epsilon": 0.05, "window_size": 3, "sink_size": 4}
    point = point_of(method, 0.2, {**params, "dense_layers": 1})
    assert point == {**params, "heavy_size": 0.1235, "dense_layers": [0, 1]}


def test_searcher_respects_the_space_and_is_seeded() -> None:
    pytest.importorskip("optuna", reason="the tune-optuna extra is not installed")
    pytest.importorskip("ray.tune", reason="the ray extra is not installed")
    spec = _spec(SPACE, trials=12)
    points, searcher = _drive(spec, 12)
    assert len(points) == 12 and len(searcher.rows) == 12  # past TPE's random start (6)
    for params in points:
        assert 0.1 - 1e-12 <= params["heavy_size"] <= 0.18 + 1e-12
        assert params["sink_size"] in (2, 4)
        assert isinstance(params["window_size"], int) and 1 <= params["window_size"] <= 8
    assert _drive(spec, 12)[0] == points  # the seed fixes the points, given the results
    other = _spec(SPACE, trials=12, seed=1)
    assert _drive(other, 12)[0] != points


def test_log_range_is_searched_in_log_space() -> None:
    pytest.importorskip("optuna", reason="the tune-optuna extra is not installed")
    pytest.importorskip("ray.tune", reason="the ray extra is not installed")
    spec = _spec(
        {
            "heavy_size": {"scale": [0.5, 0.9]},
            "sink_size": {"low": 1, "high": 1000, "log": True, "integer": True},
        },
        trials=6,
    )
    points, _ = _drive(spec, 6)
    values = [p["sink_size"] for p in points]
    assert len(values) == 6 and all(isinstance(v, int) and 1 <= v <= 1000 for v in values)
    # uniform in log space: the median draw lies near sqrt(1 * 1000), far below 500
    assert sorted(values)[len(values) // 2] < 400


def test_invalid_points_are_rejected_and_counted() -> None:
    """sink 0.2 + window 0.2 + heavy 0.9 is above K: rejected before it runs, its reason
    counted; the finite space (two points) is exhausted, so the search ends early."""
    pytest.importorskip("optuna", reason="the tune-optuna extra is not installed")
    pytest.importorskip("ray.tune", reason="the ray extra is not installed")
    method = {
        "recipe": "oracle_top_k",
        "space": {"heavy_size": {"choices": [0.5, 0.9]}},
        "fixed": {"sink_size": 0.2, "window_size": 0.2},
    }
    data = {
        **STUDY,
        "search": {"methods": [method], "targets": [0.5], "searcher": "optuna", "trials": 4},
    }
    spec = parse_tune(data, "t.yaml")
    points, searcher = _drive(spec, 4, seed_target=0.5)
    assert points == [{"heavy_size": 0.5}]
    assert searcher.rejected["oracle_top_k: sizes overlap (their sum is above K)"] >= 1
    assert set(searcher.rejected) <= {
        "oracle_top_k: sizes overlap (their sum is above K)",
        "duplicate point",
    }


def test_missing_optuna_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without Optuna, ``searcher: optuna`` is an error naming the extra, before any work."""
    monkeypatch.setitem(sys.modules, "optuna", None)  # what importing it finds: nothing
    with pytest.raises(ExperimentError) as info:
        _spec(SPACE)
    assert info.value.path == "search.searcher"
    assert "sparse-attention-hub[tune-optuna]" in str(info.value)
    path = tmp_path / "tune.yaml"
    data = {
        **STUDY,
        "result_dir": str(tmp_path / "res"),
        "search": {"methods": ["quest"], "targets": [0.1], "searcher": "optuna"},
    }
    path.write_text(yaml.safe_dump(data))
    assert main(["tune", str(path)]) == 2
    assert "tune-optuna" in capsys.readouterr().err
    assert not (tmp_path / "res").exists()
