"""The ``sparse_configs`` section of an experiment file (see ``schema.py``).

Each entry is ``dense``, a masker list, ``{maskers: [...], dense_layers: [...],
score_budget_bytes: N, prefill_maskers: [...], prefill_block_size: N}`` (all keys optional;
``prefill_maskers`` alone is a sparse prefill with dense decode) or a recipe
``{recipe: <name>, <param>: value}`` (``recipe_configs.py``); list-valued masker parameters
sweep (``sweep.py``), prefill maskers' too. Config names become folder names, so they are
checked as such.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from sparse_attention_hub.experiment import checks as c
from sparse_attention_hub.experiment.checks import Source
from sparse_attention_hub.experiment.recipe_configs import recipe_configs, recipe_count
from sparse_attention_hub.experiment.sweep import (
    MAX_SWEEP_CONFIGS,
    check_sweep_size,
    expand_config,
    sweep_count,
)

log = logging.getLogger(__name__)

DENSE = "dense"
RESERVED_CONFIG_NAME = "stale"  # results readers skip folders of this name
MAX_NAME_BYTES = 255  # a directory name
CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")
#: A config's prefill settings: ``{"prefill_maskers": [...], "prefill_block_size": N}`` (the
#: keys the file gives), by config name.
PrefillSettings = dict[str, dict[str, Any]]


def parse_sparse_configs(
    value: Any, src: Source, allow_large_sweep: bool = False
) -> tuple[
    list[tuple[str, list[dict[str, dict[str, Any]]] | None]],
    dict[str, list[int]],
    list[str],
    dict[str, int],
    PrefillSettings,
]:
    """The configs in file order, each masker list with list-valued parameters expanded into
    one config per point of their product (``sweep.py``), the dense layers by config name
    (a swept config's points share its dense layers), the names of the recipe configs
    whose dense layers are the recipe's defaults (the file does not set ``dense_layers``),
    the score budgets the file sets, by config name (shared by a sweep's points), and the
    prefill settings by config name (configs with ``prefill_maskers``; a config whose masker
    list is None and has prefill settings decodes densely)."""
    configs = c.mapping(
        value, "sparse_configs", src, "a mapping of config name -> dense or a list of maskers"
    )
    if not configs:
        raise src.error("sparse_configs", "needs at least one config (e.g. dense: dense)")
    _check_count(configs, src, allow_large_sweep)
    parsed = _Parsed()
    for name, maskers in configs.items():
        path = c.join("sparse_configs", name)
        _check_config_name(name, path, src)
        if isinstance(maskers, dict) and "recipe" in maskers:
            _add_recipe(parsed, name, maskers, path, src)
        else:
            _add_masker_list(parsed, name, maskers, path, src)
    try:
        check_sweep_size(len(parsed.out), allow_large_sweep)
    except ValueError as exc:
        raise src.error("sparse_configs", str(exc)) from exc
    return parsed.out, parsed.dense_layers, parsed.recipe_defaults, parsed.budgets, parsed.prefill


@dataclasses.dataclass
class _Parsed:
    """What :func:`parse_sparse_configs` has read so far (see its return value)."""

    out: list[tuple[str, list[dict[str, dict[str, Any]]] | None]] = dataclasses.field(
        default_factory=list
    )
    dense_layers: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    taken: dict[str, str] = dataclasses.field(default_factory=dict)  # folder key -> name
    recipe_defaults: list[str] = dataclasses.field(default_factory=list)
    budgets: dict[str, int] = dataclasses.field(default_factory=dict)
    prefill: PrefillSettings = dataclasses.field(default_factory=dict)


def _check_config_name(name: str, path: str, src: Source) -> None:
    """A config name is a folder name, not ``stale``, of at most MAX_NAME_BYTES bytes."""
    if not CONFIG_NAME.match(name) or ".." in name:
        raise src.error(
            path,
            "a config name is a folder name: letters, digits and _ . + = - (not starting with . or -)",
        )
    if name == RESERVED_CONFIG_NAME:
        raise src.error(
            path, "'stale' is reserved: the executor keeps replaced results in stale/ folders"
        )
    if len(name.encode()) > MAX_NAME_BYTES:
        raise src.error(path, f"a config name is a folder name: at most {MAX_NAME_BYTES} bytes")


def _add_recipe(
    parsed: _Parsed, name: str, maskers: dict[str, Any], path: str, src: Source
) -> None:
    """Add the configs of a ``{recipe: ..., params}`` entry (one per point of its sweep)."""
    if name == DENSE:
        raise src.error(path, "the name 'dense' is kept for the dense baseline")
    for point_name, point_maskers, point_layers, point_prefill in recipe_configs(
        name, maskers, path, src
    ):
        _check_generated_name(point_name, path, src, parsed.taken)
        parsed.out.append((point_name, point_maskers))
        if point_prefill:
            parsed.prefill[point_name] = point_prefill
        if point_layers:
            parsed.dense_layers[point_name] = point_layers
            if "dense_layers" not in maskers:
                parsed.recipe_defaults.append(point_name)


def _add_masker_list(parsed: _Parsed, name: str, maskers: Any, path: str, src: Source) -> None:
    """Add the configs of ``dense``, a masker list or a mapping with ``maskers`` (one per point
    of the product of its decode and prefill maskers' list-valued parameters)."""
    budget = None
    settings: dict[str, Any] = {}
    layers: list[int] | None = None
    if isinstance(maskers, dict):
        budget = _score_budget(maskers, path, src)
        settings = _prefill_settings(maskers, path, src)
        maskers, layers = _with_dense_layers(maskers, path, src)
    decode = _maskers(maskers, path, src)
    prefill_list = settings.get("prefill_maskers", [])
    if name == DENSE and (decode is not None or prefill_list):
        raise src.error(
            path,
            "the name 'dense' is kept for the dense baseline; name this masker list otherwise",
        )
    try:  # decode and prefill maskers sweep together (one product, in file order)
        expanded = expand_config(name, [*(decode or []), *prefill_list] or None)
    except ValueError as exc:
        raise src.error(path, str(exc)) from exc
    count = len(decode or [])
    for full_name, both in expanded:
        _check_generated_name(full_name, path, src, parsed.taken)
        parsed.out.append((full_name, None if decode is None else (both or [])[:count]))
        if layers:
            parsed.dense_layers[full_name] = layers
        if budget is not None:
            parsed.budgets[full_name] = budget
        if prefill_list:
            parsed.prefill[full_name] = {**settings, "prefill_maskers": (both or [])[count:]}


def _prefill_settings(value: dict[str, Any], path: str, src: Source) -> dict[str, Any]:
    """The checked ``prefill_maskers`` (entries as ``{name: {param: value}}``, names checked
    by ``validate.py``) and ``prefill_block_size`` of the mapping form; ``{}`` without
    prefill maskers (a ``prefill_block_size`` alone is refused: it would change nothing)."""
    from sparse_attention_hub.sparse_attention.research_config import check_prefill_block_size

    raw = value.get("prefill_maskers")
    field = c.join(path, "prefill_maskers")
    if raw is not None and not isinstance(raw, list):
        raise src.error(
            field,
            "expected a list of prefill maskers like [{block_top_k: {block_budget: 0.1}}] "
            f"(sah list prefill), got {c.describe(raw)}",
        )
    settings: dict[str, Any] = {}
    if raw:
        settings["prefill_maskers"] = _maskers(raw, field, src)
    if value.get("prefill_block_size") is not None:
        if not raw:
            raise src.error(
                c.join(path, "prefill_block_size"),
                "is the block size of the sparse prefill: give prefill_maskers with it",
            )
        try:
            check_prefill_block_size(value["prefill_block_size"])
        except ValueError as exc:
            raise src.error(c.join(path, "prefill_block_size"), str(exc)) from None
        settings["prefill_block_size"] = value["prefill_block_size"]
    return settings


def _score_budget(value: dict[str, Any], path: str, src: Source) -> int | None:
    """The checked ``score_budget_bytes`` of ``{maskers: [...], score_budget_bytes: N}``."""
    from sparse_attention_hub.sparse_attention.research_config import check_score_budget

    if value.get("score_budget_bytes") is None:
        return None
    try:
        return check_score_budget(value["score_budget_bytes"])
    except ValueError as exc:
        raise src.error(c.join(path, "score_budget_bytes"), str(exc)) from None


def _check_count(configs: dict[str, Any], src: Source, allow_large_sweep: bool) -> None:
    """Refuse a sweep that is too large before expanding it; log the size of a large one."""
    count = 0
    for maskers in configs.values():
        if isinstance(maskers, dict) and "recipe" in maskers:
            count += recipe_count(maskers)
        else:
            count += _mapping_sweep_count(maskers)
    try:
        check_sweep_size(count, allow_large_sweep)
    except ValueError as exc:
        raise src.error("sparse_configs", str(exc)) from exc
    if count > MAX_SWEEP_CONFIGS:
        log.info("%s: expanding the sweeps into %d sparse configs", src.name, count)


def _mapping_sweep_count(value: Any) -> int:
    """How many configs a masker list or a ``{maskers, prefill_maskers}`` mapping sweeps into."""
    if not isinstance(value, dict):
        return sweep_count(value)
    return sweep_count(value.get("maskers")) * sweep_count(value.get("prefill_maskers"))


def _with_dense_layers(value: dict[str, Any], path: str, src: Source) -> tuple[Any, list[int]]:
    """``{maskers: [...], dense_layers: [0, 1]}``: (the masker list, the checked layers).
    Without ``maskers`` (a config of ``prefill_maskers`` only) the masker list is None."""
    from sparse_attention_hub.sparse_attention.research_config import (
        CONFIG_KEYS,
        check_dense_layers,
    )

    unknown = sorted(set(value) - set(CONFIG_KEYS))
    if unknown or not ({"maskers", "prefill_maskers"} & set(value)):
        raise src.error(
            path,
            "expected 'dense' or a list of maskers like [{sink: {sink_size: 128}}] (or a "
            "mapping {maskers: [...], dense_layers: [0, 1], score_budget_bytes: N, "
            "prefill_maskers: [...], prefill_block_size: N} with maskers or prefill_maskers), "
            f"got a mapping with keys {', '.join(map(str, value)) or 'none'}",
        )
    try:
        layers = check_dense_layers(value.get("dense_layers") or [])
    except ValueError as exc:
        raise src.error(c.join(path, "dense_layers"), str(exc)) from None
    return value.get("maskers"), layers


def _check_generated_name(name: str, path: str, src: Source, taken: dict[str, str]) -> None:
    """``name`` is a new folder name; ``taken`` (folder key -> config name) records it."""
    from sparse_attention_hub.executor.config import folder_key

    other = taken.get(folder_key(name))
    if other == name:
        raise src.error(path, f"config name {name!r} is given twice (a sweep generates it too)")
    if other is not None:
        raise src.error(
            path,
            f"config names {other!r} and {name!r} differ only by case: on a case-insensitive "
            "file system (macOS, Windows) they share one folder; rename one",
        )
    taken[folder_key(name)] = name
    if not CONFIG_NAME.match(name) or len(name.encode()) > MAX_NAME_BYTES:
        raise src.error(
            path, f"generated config name {name!r} is not a folder name of at most 255 bytes"
        )


def _maskers(value: Any, path: str, src: Source) -> list[dict[str, dict[str, Any]]] | None:
    if value is None or value == DENSE or value == []:
        return None
    if not isinstance(value, list):
        raise src.error(
            path,
            f"expected 'dense' or a list of maskers like [{{sink: {{sink_size: 128}}}}], got {c.describe(value)}",
        )
    maskers: list[dict[str, dict[str, Any]]] = []
    for i, entry in enumerate(value):
        entry_path = c.join(path, i)
        if isinstance(entry, str):
            maskers.append({c.string(entry, entry_path, src): {}})
            continue
        item = c.mapping(entry, entry_path, src, "a masker like {sink: {sink_size: 128}}")
        if len(item) != 1:
            raise src.error(
                entry_path,
                f"a masker entry has exactly one key (the masker name), got {len(item)}: {', '.join(item)}",
            )
        ((masker, params),) = item.items()
        params_path = c.join(entry_path, masker)
        params = c.plain_data(
            c.mapping(params or {}, params_path, src, "a mapping of masker parameters"),
            params_path,
            src,
        )
        maskers.append({masker: params})
    return maskers
