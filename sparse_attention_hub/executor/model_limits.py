"""Settings checked against each model's ``config.json`` in the preflight, before any worker.

- ``dense_layers`` of a sparse config must name layers the model has (``0 ..
  num_hidden_layers - 1``). A value the user wrote beyond that is refused, naming the config,
  the key and the allowed range. A recipe's *default* dense layers (magicpig's ``[0, 16]``,
  chosen for 32-layer models; ``ResearchAttentionConfig.dense_layers_from_recipe``) are
  clipped on a smaller model instead: the layers it lacks never run, so they are left out,
  and a note says so.
- ``num_layers`` of a ``pyramidkv`` masker (its budget schedule's length), when set, must be the model's
  number of layers, or the ratio would not hold for the whole cache.
- ``generation_kwargs.max_new_tokens`` must be at most the model's maximum number of
  positions (``max_position_embeddings``).

The config is read from a local model folder, the local HuggingFace cache, or (one small
download, with the preflight's timeout) the hub. Only models the preflight found are checked;
a config that cannot be read is a note, not an error (the worker's load will say more).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparse_attention_hub.executor.hub_check import (
    CONFIG_FILE,
    hub_cache_dir,
    hub_endpoint,
    hub_offline,
    is_local_model,
    redact,
)
from sparse_attention_hub.sparse_attention.maskers.pyramidkv import PyramidKVConfig

#: Where a config.json gives the number of layers and of positions (the first found; a
#: multimodal config's ``text_config`` is searched too).
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")


def config_value(config: dict[str, Any], keys: tuple[str, ...]) -> int | None:
    """The first positive int of ``keys`` in ``config`` or its ``text_config``, or None."""
    text_config = config.get("text_config")
    for source in (config, text_config if isinstance(text_config, dict) else {}):
        for key in keys:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def read_model_config(
    name: str, revision: str | None, timeout: float, download: bool = True
) -> dict[str, Any]:
    """``config.json`` of a local model folder or a hub model (the local cache first, then,
    with ``download``, one download). Raises OSError or ValueError (also the hub client's
    errors) when it cannot."""
    if is_local_model(name):
        path = str(Path(name).expanduser() / CONFIG_FILE)
    else:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        cached = try_to_load_from_cache(
            name, CONFIG_FILE, cache_dir=hub_cache_dir(), revision=revision
        )
        if isinstance(cached, str):
            path = cached
        elif hub_offline() or not download:
            why = " and HF_HUB_OFFLINE is set" if download else ""
            raise OSError(f"it is not in the local cache{why}")
        else:
            path = hf_hub_download(
                name,
                CONFIG_FILE,
                revision=revision,
                cache_dir=hub_cache_dir(),
                etag_timeout=timeout,
                endpoint=hub_endpoint(),
            )
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("config.json does not hold a JSON object")
    return data


def dense_layer_problem(
    config_name: str, sparse_config: Any, model: str, num_layers: int
) -> tuple[str | None, str | None]:
    """(problem, note) for ``sparse_config``'s dense layers on a model of ``num_layers``."""
    layers = list(getattr(sparse_config, "dense_layers", None) or [])
    beyond = [layer for layer in layers if layer >= num_layers]
    if not beyond:
        return None, None
    kept = [layer for layer in layers if layer < num_layers]
    if getattr(sparse_config, "dense_layers_from_recipe", False):
        return None, (
            f"sparse config {config_name!r}: the recipe's default dense_layers {layers} go "
            f"beyond model {model} ({num_layers} layers); layer(s) {beyond} do not exist there, "
            f"so only {kept or 'no layer'} stay dense (set dense_layers to choose)"
        )
    return (
        f"sparse config {config_name!r}: dense_layers {layers} name layer(s) {beyond} that "
        f"model {model} does not have; allowed: 0 to {num_layers - 1} ({num_layers} layers)"
    ), None


def pyramid_layer_problem(
    config_name: str, sparse_config: Any, model: str, num_layers: int
) -> str | None:
    """The problem of a ``pyramidkv`` masker of ``sparse_config`` whose ``num_layers`` is not
    the model's ``num_layers`` (None when every one matches)."""
    for masker in getattr(sparse_config, "masker_configs", None) or []:
        if (
            isinstance(masker, PyramidKVConfig)
            and masker.num_layers is not None
            and masker.num_layers != num_layers
        ):
            return (
                f"sparse config {config_name!r}: pyramidkv's num_layers={masker.num_layers} but "
                f"model {model} has {num_layers} layers; set num_layers: {num_layers} or leave "
                "it out (the budget schedule spans the model's layers)"
            )
    return None


def _found(report: Any, model: str) -> bool:
    """Whether the preflight looked the model up and found it."""
    return any(line.startswith("ok ") and f"model {model}: " in line for line in report.lines)


def check_model_limits(
    report: Any, stubs: list[Any], timeout: float, skip_models: dict[str, str] | None = None
) -> None:
    """Add to ``report`` (a PreflightReport) a problem for each setting beyond a model's
    config and a note for each recipe default clipped to it; see the module docstring."""
    by_model: dict[str, list[Any]] = {}
    for stub in stubs:
        by_model.setdefault(stub.model_name, []).append(stub)
    for model, cells in by_model.items():
        if (skip_models and model in skip_models) or not _found(report, model):
            continue
        revision = (cells[0].adapter_config.model_kwargs or {}).get("revision")
        try:
            config = read_model_config(model, revision, timeout)
        except Exception as exc:  # the hub client raises its own types too
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            report.notes.append(
                redact(
                    f"model {model}: could not read its config.json ({type(exc).__name__}: "
                    f"{first}); dense_layers, pyramidkv's num_layers and max_new_tokens are "
                    "not checked against it"
                )
            )
            continue
        _check_model(report, model, config, cells)


def _check_model(report: Any, model: str, config: dict[str, Any], cells: list[Any]) -> None:
    num_layers = config_value(config, LAYER_KEYS)
    seen: set[str] = set()
    for stub in cells:
        if num_layers is None or stub.sparse_config_name in seen:
            continue
        seen.add(stub.sparse_config_name)
        problem, note = dense_layer_problem(
            stub.sparse_config_name, stub.sparse_attention_config, model, num_layers
        )
        pyramid = pyramid_layer_problem(
            stub.sparse_config_name, stub.sparse_attention_config, model, num_layers
        )
        report.problems += [text for text in (problem, pyramid) if text]
        if note:
            report.notes.append(note)
    positions = config_value(config, POSITION_KEYS)
    new_tokens = (cells[0].generation_kwargs or {}).get("max_new_tokens")
    if positions is not None and isinstance(new_tokens, int) and new_tokens > positions:
        report.problems.append(
            f"generation_kwargs.max_new_tokens={new_tokens}: model {model} has "
            f"{positions} positions (max_position_embeddings); allowed: 1 to {positions}"
        )
