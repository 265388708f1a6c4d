"""The tune file: a study without ``sparse_configs`` plus a ``search:`` section::

    models: [{tiny_model: {arch: llama}}]
    benchmarks: [{name: mock_benchmark}]
    search:
      methods:
        - quest                               # the recipe's default space (defaults.py)
        - recipe: oracle_top_k
          space:
            heavy_size: {scale: [0.5, 0.9]}   # times the target density (fractions of K)
            sink_size: {choices: [2, 4]}
          fixed: {window_size: 0.01}
        - name: sink_topk                     # a masker list: parameters <masker>.<param>
          maskers: [{sink: {sink_size: 4}}, {oracle_top_k: {heavy_size: 0.05}}]
          space: {oracle_top_k.heavy_size: {scale: [0.5, 1.0]}}
        - xattention                          # a prefill recipe: targets are prefill densities
        - name: minference_quest              # prefill and decode maskers: say which density
          maskers: [{quest: {token_budget: 0.1}}]
          prefill_maskers: [{vertical_slash: {vertical_size: 64, slash_size: 256}}]
          space: {prefill.vertical_slash.slash_size: {low: 64, high: 1024, integer: true}}
          density: prefill                    # decode (the default) or prefill
      targets: [0.02, 0.05, 0.1]              # realized densities
      tolerance: 0.01                         # |realized - target| allowed
      objective: output_error                 # or score, or {output_error: 1, score: 0.5}
      trials: 8                               # per method and target (random, optuna)
      searcher: random                        # or grid, or optuna (the tune-optuna extra)
      seed: 0
      max_concurrent_trials: 1

A range is ``{low, high}`` (``log: true`` samples in log space, ``integer: true`` rounds,
``points: n`` values on a grid) or ``{scale: [low, high]}``; ``{choices: [...]}`` lists
values. Every mistake is an ExperimentError naming the key, raised before any work.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from sparse_attention_hub.experiment import checks as c
from sparse_attention_hub.experiment.checks import Source
from sparse_attention_hub.experiment.loader import read_experiment_file
from sparse_attention_hub.experiment.tune.defaults import DEFAULT_SPACES
from sparse_attention_hub.experiment.tune.space import build_config, grid_points
from sparse_attention_hub.experiment.tune.spec import (
    DENSITIES,
    OBJECTIVES,
    SEARCHERS,
    MethodSpec,
    ParamSpace,
    SearchSpec,
    TuneSpec,
)

SEARCH_KEYS = (
    "methods",
    "targets",
    "tolerance",
    "objective",
    "trials",
    "searcher",
    "seed",
    "max_concurrent_trials",
)
METHOD_KEYS = (
    "name", "recipe", "maskers", "prefill_maskers", "prefill_block_size", "space", "fixed",
    "density",
)  # fmt: skip
SPACE_KEYS = ("choices", "low", "high", "log", "integer", "scale", "points")


def load_tune(path: str | os.PathLike[str]) -> TuneSpec:
    """Read and check a tune file (the study part as ``sah run`` checks it)."""
    source = str(path)
    src = Source(source)
    data = c.load_yaml_text(read_experiment_file(path), src)
    return parse_tune(data, source)


def parse_tune(data: Any, source: str) -> TuneSpec:
    from sparse_attention_hub.experiment.schema import parse_experiment
    from sparse_attention_hub.experiment.validate import validate_spec

    src = Source(source)
    doc = dict(c.mapping(data, "", src, "a study mapping with a search: section"))
    if "sparse_configs" in doc:
        raise src.error(
            "sparse_configs", "sah tune builds the configs: list them in search.methods"
        )
    search = parse_search(c.required(doc, "search", "", src), src)
    raw_study = {k: v for k, v in doc.items() if k != "search"}
    study = parse_experiment({**raw_study, "sparse_configs": {"dense": "dense"}}, source)
    validate_spec(study)
    return TuneSpec(study=replace(study, sparse_configs=[]), search=search, raw_study=raw_study)


def parse_search(value: Any, src: Source) -> SearchSpec:
    entry = c.mapping(value, "search", src)
    c.known_keys(entry, "search", src, SEARCH_KEYS)
    raw_methods = c.required(entry, "methods", "search", src)
    if not isinstance(raw_methods, list) or not raw_methods:
        raise src.error(
            "search.methods", f"expected a non-empty list, got {c.describe(raw_methods)}"
        )
    targets = _targets(c.required(entry, "targets", "search", src), src)
    methods = tuple(_method(m, c.join("search.methods", i), src) for i, m in enumerate(raw_methods))
    names = [m.name for m in methods]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise src.error(c.join("search.methods", i), f"method name {name!r} is listed twice")
    methods = tuple(
        _with_density(method, raw, targets[0], c.join("search.methods", i), src)
        for i, (method, raw) in enumerate(zip(methods, raw_methods, strict=True))
    )
    searcher = c.string(entry.get("searcher", "random"), "search.searcher", src, SEARCHERS)
    if searcher == "optuna":
        _check_optuna(src)
    return SearchSpec(
        methods=methods,
        targets=targets,
        tolerance=c.number(entry.get("tolerance", 0.01), "search.tolerance", src, low=0.0),
        objective=_objective(entry.get("objective", "output_error"), src),
        trials=c.integer(entry.get("trials", 8), "search.trials", src, minimum=1),
        searcher=searcher,
        seed=c.integer(entry.get("seed", 0), "search.seed", src),
        max_concurrent_trials=c.integer(
            entry.get("max_concurrent_trials", 1), "search.max_concurrent_trials", src, minimum=1
        ),
    )


def _check_optuna(src: Source) -> None:
    """``searcher: optuna`` without Optuna (or Ray Tune) installed: an error before any work."""
    import importlib.util

    missing = [m for m in ("optuna", "ray") if importlib.util.find_spec(m) is None]
    if missing:
        raise src.error(
            "search.searcher",
            f"optuna needs {' and '.join(missing)}, not installed here: "
            'pip install "sparse-attention-hub[tune-optuna]"',
        )


def _targets(value: Any, src: Source) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise src.error("search.targets", f"expected a list of densities, got {c.describe(value)}")
    out = [
        c.number(v, c.join("search.targets", i), src, low=0.0, high=1.0, low_open=True)
        for i, v in enumerate(value)
    ]
    if len(set(out)) != len(out):
        raise src.error("search.targets", f"a target is listed twice: {out}")
    return tuple(out)


def _objective(value: Any, src: Source) -> dict[str, float]:
    if isinstance(value, str):
        c.string(value, "search.objective", src, OBJECTIVES)
        return {value: 1.0}
    entry = c.mapping(value, "search.objective", src, "output_error, score or {output_error: w}")
    c.known_keys(entry, "search.objective", src, OBJECTIVES)
    weights = {
        k: c.number(w, c.join("search.objective", k), src, low=0.0) for k, w in entry.items()
    }
    if not any(weights.values()):
        raise src.error("search.objective", "give at least one positive weight")
    return weights


def _method(value: Any, path: str, src: Source) -> MethodSpec:
    if isinstance(value, str):
        value = {"recipe": value}
    entry = c.mapping(value, path, src, "a recipe name or {recipe: ..., space: {...}}")
    c.known_keys(entry, path, src, METHOD_KEYS)
    recipe, maskers = entry.get("recipe"), entry.get("maskers")
    listed = maskers is not None or entry.get("prefill_maskers") is not None
    if (recipe is None) == (not listed):
        raise src.error(
            path, "give exactly one of recipe: <name> or maskers: [...] (and/or prefill_maskers)"
        )
    prefill: dict[str, Any] = {}
    if recipe is not None:
        recipe = _recipe(recipe, c.join(path, "recipe"), src)
        if "prefill_block_size" in entry:
            raise src.error(c.join(path, "prefill_block_size"), "give it with prefill_maskers")
    else:
        from sparse_attention_hub.experiment.schema_configs import _maskers, _prefill_settings

        prefill = _prefill_settings(entry, path, src)
        maskers = _maskers(maskers, c.join(path, "maskers"), src) if maskers is not None else []
        if not maskers and not prefill:
            raise src.error(c.join(path, "maskers"), "expected a non-empty masker list")
    name = (
        c.string(entry.get("name", recipe), c.join(path, "name"), src)
        if (recipe is not None or "name" in entry)
        else None
    )
    if name is None:
        raise src.error(path, "a masker list needs name: <method name>")
    default = DEFAULT_SPACES.get(recipe or "", {}) if "space" not in entry else {}
    raw_space = c.mapping(entry.get("space", default), c.join(path, "space"), src)
    if not raw_space:
        raise src.error(c.join(path, "space"), f"no default space for {name!r}: give space:")
    space = tuple(_param(k, v, c.join(c.join(path, "space"), k), src) for k, v in raw_space.items())
    fixed = c.plain_data(c.mapping(entry.get("fixed") or {}, c.join(path, "fixed"), src), path, src)
    return MethodSpec(
        name=name, space=space, recipe=recipe, maskers=maskers, fixed=fixed, prefill=prefill
    )


def _recipe(value: Any, path: str, src: Source) -> str:
    from sparse_attention_hub.sparse_attention.recipes import available_recipes

    return c.string(value, path, src, available_recipes())


def _param(name: str, value: Any, path: str, src: Source) -> ParamSpace:
    entry = c.mapping(value, path, src, "{low, high}, {scale: [low, high]} or {choices: [...]}")
    c.known_keys(entry, path, src, SPACE_KEYS)
    flags = {k: c.boolean(entry.get(k, False), c.join(path, k), src) for k in ("log", "integer")}
    points = c.integer(entry.get("points", 3), c.join(path, "points"), src, minimum=1)
    if "choices" in entry:
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise src.error(c.join(path, "choices"), "expected a non-empty list of values")
        return ParamSpace(name, choices=tuple(c.plain_data(choices, path, src)))
    scale = "scale" in entry
    if scale:
        bounds = entry["scale"]
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise src.error(
                c.join(path, "scale"), f"expected [low, high], got {c.describe(bounds)}"
            )
        low, high = bounds
    else:
        low, high = c.required(entry, "low", path, src), c.required(entry, "high", path, src)
    low = c.number(low, c.join(path, "low"), src, low=0.0, low_open=flags["log"])
    high = c.number(high, c.join(path, "high"), src)
    if high < low:
        raise src.error(path, f"high ({high}) is below low ({low})")
    return ParamSpace(
        name,
        low=low,
        high=high,
        log=flags["log"],
        integer=flags["integer"],
        scale=scale,
        points=points,
    )


def _with_density(
    method: MethodSpec, raw: Any, target: float, path: str, src: Source
) -> MethodSpec:
    """``method`` with the density its targets refer to: ``density:`` if given (``decode`` or
    ``prefill``, and the config has maskers of that phase), else ``prefill`` for a config of
    prefill maskers only, ``decode`` otherwise. Unknown parameters or a masker that refuses
    the values: an error before any trial."""
    given = raw.get("density") if isinstance(raw, dict) else None
    field = c.join(path, "density")
    if given is not None:
        given = c.string(given, field, src, DENSITIES)
    point = grid_points(method, target)[0]
    try:
        config = build_config(method, point)
    except (ValueError, TypeError) as exc:
        raise src.error(path, f"{method.name}: {exc}") from exc
    has = {"decode": bool(config["maskers"]), "prefill": bool(config["prefill"])}
    if given is None:
        given = "prefill" if has["prefill"] and not has["decode"] else "decode"
    elif not has[given]:
        raise src.error(field, f"{method.name} has no {given} maskers: its density is not tuned")
    return replace(method, density=given)
