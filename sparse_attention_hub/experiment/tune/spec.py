"""The plain result of reading a tune file: :class:`TuneSpec` (a study and a search)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.experiment.spec import ExperimentSpec

OBJECTIVES = ("output_error", "score")  # the metrics a weighted objective mixes
SEARCHERS = ("random", "grid", "optuna")  # optuna: the tune-optuna extra
DENSITIES = ("decode", "prefill")  # which realized density a method's targets refer to


@dataclass(frozen=True)
class ParamSpace:
    """One searched parameter.

    ``choices``: a list of values; else a range ``[low, high]`` (``log``: sampled uniformly in
    log space; ``integer``: rounded). ``scale``: the range is a multiple of the target density
    (``heavy_size: {scale: [0.5, 1.0]}`` gives 0.5 to 1.0 times the target, a fraction of the
    keys). ``points``: the values a grid search takes of a range.
    """

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    scale: bool = False
    points: int = 3


@dataclass(frozen=True)
class MethodSpec:
    """A method to tune: a recipe (``recipe``) or a masker list (``maskers`` and/or the
    prefill settings ``prefill``: ``{"prefill_maskers": [...], "prefill_block_size": N}``),
    its searched parameters and its fixed ones. A masker list names a parameter
    ``<masker>.<param>`` (a decode masker first, else a prefill masker) or
    ``prefill.<masker>.<param>`` (a prefill masker). ``density``: the realized density the
    targets refer to, ``decode`` (the logged ``research_attention_density``) or ``prefill``
    (the logged ``prefill_density``); a config of prefill maskers only tunes ``prefill``."""

    name: str
    space: tuple[ParamSpace, ...]
    recipe: str | None = None
    maskers: list[dict[str, dict[str, Any]]] | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    prefill: dict[str, Any] = field(default_factory=dict)
    density: str = "decode"


@dataclass(frozen=True)
class SearchSpec:
    """The ``search:`` section. ``objective``: weights of ``output_error`` (the mean logged
    ``research_attention_output_error``) and ``score`` (the benchmark's overall score); the
    searched value is ``w_error * output_error - w_score * score``, lower is better."""

    methods: tuple[MethodSpec, ...]
    targets: tuple[float, ...]
    tolerance: float = 0.01
    objective: dict[str, float] = field(default_factory=lambda: {"output_error": 1.0})
    trials: int = 8
    searcher: str = "random"
    seed: int = 0
    max_concurrent_trials: int = 1


@dataclass(frozen=True)
class TuneSpec:
    """A tune file: its study (``sparse_configs`` empty), its search, and the study's raw
    mapping (``tuned.yaml`` is written from it)."""

    study: ExperimentSpec
    search: SearchSpec
    raw_study: dict[str, Any]
