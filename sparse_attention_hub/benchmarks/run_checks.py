"""Checks of a cell's run before any request: the caller's kwargs, and whether the predictions
already in the cell were made with the same settings (else resuming would mix two runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparse_attention_hub import cell_store


def check_max_requests(value: Any) -> int | None:
    """``request_kwargs['max_requests']``: None or a positive int."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"request_kwargs['max_requests'] must be a positive int, got {value!r}")
    return value


def resume_key(config: dict[str, Any]) -> dict[str, Any]:
    """What a cell's predictions depend on, from its config.json (max_requests aside)."""
    request = {k: v for k, v in (config.get("request_kwargs") or {}).items() if k != "max_requests"}
    return {
        "benchmark": config.get("benchmark"),
        "generation_kwargs": config.get("generation_kwargs") or {},
        "request_kwargs": request,
    }


def check_resumable(config_path: Path, run_config: dict[str, Any]) -> None:
    """Refuse to extend a predictions log written with other settings (max_requests aside)."""
    if not config_path.exists():
        return
    previous = cell_store.read_json(config_path)
    if previous is None:
        raise ValueError(
            f"{config_path} is not a valid JSON object, so the predictions beside it cannot be "
            "matched to a config; delete the cell folder (or move it away) to start over"
        )
    if "benchmark" not in previous:
        return
    old, new = (
        resume_key(previous),
        resume_key(json.loads(json.dumps(run_config, default=cell_store.json_default))),
    )
    changed = [key for key in new if old.get(key) != new[key]]
    if changed:
        raise ValueError(
            f"{config_path.parent} holds predictions made with different {', '.join(changed)} "
            f"(was {[old[k] for k in changed]!r}, now {[new[k] for k in changed]!r}); "
            "use a fresh result_dir or delete predictions.jsonl to start over"
        )


def check_kwargs(
    generation_kwargs: dict[str, Any] | None, request_kwargs: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """Copies of the caller's dicts (max_requests taken out of request_kwargs), checked."""
    gen = dict(generation_kwargs or {})
    req = dict(request_kwargs or {})
    max_requests = check_max_requests(req.pop("max_requests", None))
    caller_max = gen.get("max_new_tokens")
    if caller_max is not None and (
        isinstance(caller_max, bool) or not isinstance(caller_max, int) or caller_max < 1
    ):
        raise ValueError(
            f"generation_kwargs['max_new_tokens'] must be a positive int, got {caller_max!r}"
        )
    return gen, req, max_requests
