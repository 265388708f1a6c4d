"""The study's setup, read back from a results directory for the HTML report.

From ``execution_summary.json`` (executor/summary.py): versions and git commit, start time,
devices, workers, totals. From each cell's ``config.json`` (its ``resolved_config``): the
models with their adapter settings, each sparse config's expanded masker list, the benchmarks
with subsets and options, and the generation settings. Missing files give empty sections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sparse_attention_hub.cell_store import CONFIG_FILE, read_json

SUMMARY_FILE = "execution_summary.json"


@dataclass
class StudySetup:
    """What ran: each mapping is ``name -> JSON-able description``, in order of appearance."""

    versions: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    benchmarks: dict[str, Any] = field(default_factory=dict)
    generation: dict[str, Any] = field(default_factory=dict)


def read_summary(result_dir: str | Path) -> dict[str, Any]:
    """``execution_summary.json`` as a dict ({} when missing or unreadable)."""
    return read_json(Path(result_dir) / SUMMARY_FILE) or {}


def _run_facts(summary: dict[str, Any]) -> dict[str, Any]:
    timing = summary.get("timing") or {}
    return {
        "started": timing.get("started"),
        "wall seconds": timing.get("wall_seconds"),
        "devices": ", ".join(map(str, summary.get("devices") or [])) or None,
        "workers": summary.get("workers"),
        "cells": _totals(summary.get("totals")),
        "interrupted": summary.get("interrupted"),
    }


def _totals(totals: Any) -> str | None:
    """``"9 cells, 9 completed, 0 failed, ..."`` from the summary's totals."""
    if not isinstance(totals, dict):
        return None
    return ", ".join(
        f"{v} {k}" if k != "failure_categories" else f"failures by category {_text(v)}"
        for k, v in totals.items()
    )


def _text(value: Any) -> str:
    """Compact JSON for a setting (a dict or list), the value itself for a scalar."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=str)
    return "" if value is None else str(value)


def _from_cell(setup: StudySetup, resolved: dict[str, Any]) -> None:
    model = str(resolved.get("model") or resolved.get("model_name"))
    setup.models.setdefault(
        model,
        {
            "model_name": resolved.get("model_name"),
            "adapter": resolved.get("adapter_name"),
            "model_kwargs": _text(resolved.get("model_kwargs")),
            "tokenizer_kwargs": _text(resolved.get("tokenizer_kwargs")),
        },
    )
    sparse = resolved.get("sparse_attention_config")
    setup.configs.setdefault(
        str(resolved.get("sparse_config_name")),
        {"maskers": "dense (the model's own attention)"}
        if not sparse
        else {key: _text(value) for key, value in sparse.items()},
    )
    name = str(resolved.get("benchmark_name"))
    entry = setup.benchmarks.setdefault(
        name, {"subsets": [], "benchmark_kwargs": _text(resolved.get("benchmark_kwargs"))}
    )
    subset = resolved.get("subset")
    if subset is not None and str(subset) not in entry["subsets"]:
        entry["subsets"].append(str(subset))
    for key in ("generation_kwargs", "request_kwargs"):
        seen = setup.generation.setdefault(key, [])
        if _text(resolved.get(key)) not in seen:
            seen.append(_text(resolved.get(key)))


def study_setup(result_dir: str | Path, table: pd.DataFrame) -> StudySetup:
    """The setup of the study under ``result_dir`` whose cells ``table`` lists."""
    summary = read_summary(result_dir)
    setup = StudySetup(versions=dict(summary.get("versions") or {}), run=_run_facts(summary))
    for cell in table.get("result_dir", pd.Series(dtype=object)):
        if not isinstance(cell, str):
            continue
        resolved = (read_json(Path(cell) / CONFIG_FILE) or {}).get("resolved_config")
        if isinstance(resolved, dict):
            _from_cell(setup, resolved)
    for entry in setup.benchmarks.values():
        entry["subsets"] = ", ".join(entry["subsets"]) or "-"
    setup.generation = {key: " | ".join(v) for key, v in setup.generation.items()}
    return setup
