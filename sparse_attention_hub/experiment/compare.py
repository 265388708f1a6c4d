"""Two results directories side by side (``sah compare DIR_A DIR_B``).

Cells are matched in one of two ways:

- ``cell``: same model, sparse config, benchmark and subset (two versions of a method, or a
  study run twice);
- ``config``: same sparse config, benchmark and subset, whatever the model (two models);
  each directory must then hold one model.

``auto`` (the default) matches on ``config`` when each directory holds exactly one model and
the two differ, else on ``cell``. For each matched pair of complete cells: both scores with
their bootstrap 95 % CIs, and the paired difference B − A over the rows both scored (matched
by ``row_id``) with its paired bootstrap CI (``cell_stats.paired_interval``, the same code as
"Δ vs dense"). Where a cell's rows cannot be rescored (or rescored do not give its recorded
score), the plain difference of the scores is given without a CI and a note says why. Cells
found in one directory only are listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub.experiment import stats
from sparse_attention_hub.experiment.cell_stats import cell_interval, checked_cell, paired_interval
from sparse_attention_hub.experiment.report import cell_label, order_configs, recorded_config_order

MATCH_MODES = ("auto", "cell", "config")
CELL, CONFIG = "cell", "config"


@dataclass
class Comparison:
    """What :func:`compare_dirs` found: the match mode, a one-line note on it, one dict per
    matched pair (``common``) and per unmatched cell (``only_a``, ``only_b``)."""

    dir_a: str
    dir_b: str
    match: str
    note: str
    models_a: list[str]
    models_b: list[str]
    common: list[dict[str, Any]] = field(default_factory=list)
    only_a: list[dict[str, Any]] = field(default_factory=list)
    only_b: list[dict[str, Any]] = field(default_factory=list)


def load_side(directory: str | Path) -> pd.DataFrame:
    """The per-cell table of one results directory, in its run's config order; ValueError
    when it is not a directory, holds no cells, or holds several runs (never merged)."""
    from sparse_attention_hub.executor.results import build_results_table, results_dirs

    path = Path(directory)
    if not path.is_dir():
        what = "not a directory" if path.exists() else "no such results directory"
        raise ValueError(f"{directory}: {what}")
    runs = results_dirs(path)
    if len(runs) > 1:
        raise ValueError(
            f"{directory} holds {len(runs)} results directories "
            f"({', '.join(str(run) for run in runs)}): pass one of them"
        )
    path = runs[0] if runs else path
    table = build_results_table(path)
    if table.empty:
        raise ValueError(f"{directory}: no result cells found (expected <model>/<config>/<bench>/)")
    order = recorded_config_order(path) or ["dense"]
    return order_configs(table, order).reset_index(drop=True)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in table.to_dict("records")]


def _models(table: pd.DataFrame) -> list[str]:
    return [str(m) for m in pd.unique(table["model"])]


def resolve_match(mode: str, models_a: list[str], models_b: list[str]) -> tuple[str, str]:
    """``(cell|config, note)`` for ``mode``; ValueError when ``config`` cannot apply."""
    if mode not in MATCH_MODES:
        raise ValueError(f"--match must be one of {', '.join(MATCH_MODES)}, got {mode!r}")
    if mode == "auto":
        one_each = len(models_a) == 1 and len(models_b) == 1
        mode = CONFIG if one_each and models_a != models_b else CELL
    if mode == CELL:
        return CELL, "matching cells on model, config and benchmark"
    for side, models in (("A", models_a), ("B", models_b)):
        if len(models) != 1:
            raise ValueError(
                f"--match config needs one model per directory; {side} holds {len(models)} "
                f"({', '.join(models)}); use --match cell"
            )
    note = f"matching cells on config and benchmark: model {models_a[0]} (A) vs {models_b[0]} (B)"
    return CONFIG, note


def _key(row: dict[str, Any], match: str) -> tuple[str, ...]:
    label = cell_label(row["benchmark"], row.get("subset"))
    config = (str(row["sparse_config"]), label)
    return config if match == CONFIG else (str(row["model"]), *config)


def _score(row: dict[str, Any]) -> float | None:
    value = row.get("overall_score")
    if row.get("status") != "complete" or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _side(row: dict[str, Any], resamples: int, seed: int) -> tuple[dict[str, Any], Any]:
    """One side's fields of a pair (status, score and its CI, and ``note``: why a scored cell
    has no CI) and its rescored cell."""
    score = _score(row)
    cell, note = checked_cell(row) if score is not None and resamples else (None, None)
    if score is not None and resamples and cell is None and note is None:
        note = "its rows (raw_results.csv) could not be rescored: no confidence interval"
    interval = cell_interval(cell, resamples, seed) if cell is not None else None
    fields = {
        "model": str(row["model"]),
        "status": str(row.get("status") or ""),
        "score": score,
        "ci_low": None if interval is None else interval.low,
        "ci_high": None if interval is None else interval.high,
        "note": note,
    }
    return fields, cell


def compare_pair(
    row_a: dict[str, Any], row_b: dict[str, Any], resamples: int, seed: int
) -> dict[str, Any]:
    """The comparison of two matched cells (results.csv rows): both sides, and B − A."""
    side_a, cell_a = _side(row_a, resamples, seed)
    side_b, cell_b = _side(row_b, resamples, seed)
    out: dict[str, Any] = {
        "config": str(row_a["sparse_config"]),
        "benchmark": cell_label(row_a["benchmark"], row_a.get("subset")),
        **{f"{k}_a": v for k, v in side_a.items()},
        **{f"{k}_b": v for k, v in side_b.items()},
        "delta": None,
        "delta_low": None,
        "delta_high": None,
        "paired_rows": None,
        "excludes_zero": False,
    }
    if side_a["score"] is None or side_b["score"] is None:
        return out
    out["delta"] = side_b["score"] - side_a["score"]
    if cell_a is None or cell_b is None:
        return out
    delta: stats.Interval | None = paired_interval(cell_b, cell_a, resamples, seed)
    if delta is not None:
        out["paired_rows"] = len(set(cell_a.row_ids.tolist()) & set(cell_b.row_ids.tolist()))
        out.update(delta=delta.estimate, delta_low=delta.low, delta_high=delta.high)
        out["excludes_zero"] = delta.excludes_zero()
    return out


def _unmatched(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": str(row["model"]),
        "config": str(row["sparse_config"]),
        "benchmark": cell_label(row["benchmark"], row.get("subset")),
        "status": str(row.get("status") or ""),
        "score": _score(row),
    }


def compare_dirs(
    dir_a: str | Path,
    dir_b: str | Path,
    match: str = "auto",
    resamples: int = stats.RESAMPLES,
    seed: int = stats.SEED,
) -> Comparison:
    """Compare the cells of ``dir_a`` and ``dir_b`` (see the module docstring); ValueError
    on a bad directory, an empty one, or when nothing matches."""
    if match not in MATCH_MODES:
        raise ValueError(f"--match must be one of {', '.join(MATCH_MODES)}, got {match!r}")
    table_a, table_b = load_side(dir_a), load_side(dir_b)
    models_a, models_b = _models(table_a), _models(table_b)
    mode, note = resolve_match(match, models_a, models_b)
    rows_a = {_key(r, mode): r for r in _records(table_a)}
    rows_b = {_key(r, mode): r for r in _records(table_b)}
    common = [key for key in rows_a if key in rows_b]
    if not common:
        hint = "; try --match config" if mode == CELL and match == "auto" else ""
        raise ValueError(
            f"{dir_a} ({len(rows_a)} cells) and {dir_b} ({len(rows_b)} cells) have no cell in "
            f"common ({note}){hint}"
        )
    result = Comparison(str(dir_a), str(dir_b), mode, note, models_a, models_b)
    result.common = [compare_pair(rows_a[k], rows_b[k], resamples, seed) for k in common]
    result.only_a = [_unmatched(r) for k, r in rows_a.items() if k not in rows_b]
    result.only_b = [_unmatched(r) for k, r in rows_b.items() if k not in rows_a]
    return result
