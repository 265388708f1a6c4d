"""``sah tune`` over sparse-prefill methods: a prefill recipe's trials keep its prefill
maskers, its targets are prefill densities (``prefill_density``), a config with both decode
and prefill maskers says which density with ``density: decode | prefill``; the end-to-end
search on the tiny model (mock benchmark, local Ray) chooses configs within tolerance of the
prefill target."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from sparse_attention_hub.cli import main
from sparse_attention_hub.experiment.checks import ExperimentError
from sparse_attention_hub.experiment.tune.plan import plan_trials
from sparse_attention_hub.experiment.tune.schema import parse_tune
from sparse_attention_hub.experiment.tune.spec import TuneSpec
from sparse_attention_hub.experiment.tune.trial import trial_spec

STUDY = {
    "models": [{"tiny_model": {"arch": "llama"}}],
    "benchmarks": [{"name": "mock_benchmark"}],
}
BOTH = {
    "name": "vs_quest",
    "maskers": [{"quest": {"token_budget": 0.5}}],
    "prefill_maskers": [{"vertical_slash": {"vertical_size": 8, "slash_size": 16}}],
    "prefill_block_size": 16,
    "space": {"prefill.vertical_slash.slash_size": {"low": 8, "high": 64, "integer": True}},
}


def _tune(methods: list[object], **search: object) -> TuneSpec:
    return parse_tune(
        {**STUDY, "search": {"targets": [0.3], "trials": 3, "methods": methods, **search}}, "t.yaml"
    )


def test_a_prefill_recipes_trials_hold_its_prefill_maskers() -> None:
    spec = _tune(["block_top_k_prefill", "flexprefill", "xattention", "minference"])
    rows = plan_trials(spec.search).rows
    assert {r["method"] for r in rows} == {
        "block_top_k_prefill",
        "flexprefill",
        "xattention",
        "minference",
    }
    for row in rows:
        assert row["tuned_phase"] == "prefill" and row["maskers"] == []
        (entry,) = row["prefill"]["prefill_maskers"]
        ((name, params),) = entry.items()
        for param, value in row["params"].items():  # the searched values reach the masker
            assert params[param] == value
        study = trial_spec(
            spec.study, row["config_name"], row["maskers"], row["dense_layers"], row["prefill"]
        )
        ((_, config),) = study.sparse_attention_configs()
        assert config.masker_configs == [] and config.prefill_masker_names() == [name]
    budgets = [r["params"]["block_budget"] for r in rows if r["method"] == "block_top_k_prefill"]
    assert all(0.4 * 0.3 <= b <= 0.3 for b in budgets)  # scaled by the target


def test_a_config_with_both_phases_tunes_the_density_it_names() -> None:
    spec = _tune([BOTH, {**BOTH, "name": "vs_quest_p", "density": "prefill"}])
    decode, prefill = spec.search.methods
    assert (decode.density, prefill.density) == ("decode", "prefill")
    for row in plan_trials(spec.search).rows:
        assert row["maskers"] == [{"quest": {"token_budget": 0.5}}]
        settings = row["prefill"]
        assert settings["prefill_block_size"] == 16
        slash = settings["prefill_maskers"][0]["vertical_slash"]["slash_size"]
        assert slash == row["params"]["prefill.vertical_slash.slash_size"]


@pytest.mark.parametrize(
    "method, words",
    [
        ({**BOTH, "density": "prefil"}, "'prefil' is not allowed; allowed: decode, prefill"),
        ({"recipe": "quest", "density": "prefill"}, "quest has no prefill maskers"),
        ({"recipe": "xattention", "density": "decode"}, "xattention has no decode maskers"),
    ],
)
def test_a_bad_density_is_refused_naming_the_allowed_values(method: object, words: str) -> None:
    with pytest.raises(ExperimentError) as info:
        _tune([method])
    assert info.value.path == "search.methods[0].density"
    assert words in info.value.message


@pytest.mark.slow
def test_a_prefill_method_is_tuned_to_its_prefill_density(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed")
    monkeypatch.setenv("SAH_FLEX_EAGER", "1")  # no compile in a test
    tune = {
        **STUDY,
        "result_dir": str(tmp_path / "res"),
        "adapter": {"model_kwargs": {"dtype": "float32"}},
        "generation_kwargs": {"max_new_tokens": 1},
        "search": {
            "methods": [{"recipe": "block_top_k_prefill", "fixed": {"block_size": 16}}],
            "targets": [0.35],
            "tolerance": 0.1,
            "trials": 2,
        },
    }
    path = tmp_path / "tune.yaml"
    path.write_text(yaml.safe_dump(tune))
    assert main(["tune", str(path)]) == 0
    table = pd.read_csv(tmp_path / "res" / "trials.csv")
    assert len(table) == 2 and (table["tuned_phase"] == "prefill").all()
    assert (table["density"] == 1.0).all()  # dense decode, reported apart
    (chosen,) = table[table["chosen"]].itertuples()
    assert abs(chosen.prefill_density - 0.35) <= 0.1
    assert chosen.objective == chosen.prefill_output_error > 0
    configs = yaml.safe_load((tmp_path / "res" / "tuned.yaml").read_text())["sparse_configs"]
    prefill = configs["block_top_k_prefill.at_0.35"]["prefill_maskers"]
    assert prefill[0]["block_top_k"]["block_size"] == 16
    capsys.readouterr()
    assert main(["run", str(tmp_path / "res" / "tuned.yaml"), "--dry-run"]) == 0
