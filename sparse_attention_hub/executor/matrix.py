"""Matrix expansion: one stub per cell, with its directory and fingerprint.

The status of a cell on disk is :func:`sparse_attention_hub.cell_store.cell_status`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sparse_attention_hub.cell_store import canonical_json, fingerprint_of
from sparse_attention_hub.executor.config import (
    AdapterConfig,
    BenchmarkConfig,
    BenchmarkStub,
    sanitize_model_name,
)
from sparse_attention_hub.executor.model_identity import model_identity
from sparse_attention_hub.sparse_attention.artefacts import artefact_digests, masker_revisions


def sparse_config_to_dict(config: Any) -> dict[str, Any] | None:
    """The JSON form of a sparse-attention config (contract 2: ``to_dict()``), None = dense."""
    if config is None:
        return None
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        return dict(result)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(
        f"sparse attention config of type {type(config).__name__} has no to_dict(); "
        "give a ResearchAttentionConfig or None (dense)"
    )


def resolved_config(stub: BenchmarkStub) -> dict[str, Any]:
    """Everything that determines a cell's results, JSON-able (written to config.json)."""
    adapter = stub.adapter_config
    return json.loads(
        canonical_json(
            {
                "model_name": stub.model_name,
                "model": stub.model_identity or stub.model_name,
                "adapter_name": adapter.adapter_name,
                "model_kwargs": adapter.model_kwargs or {},
                "tokenizer_kwargs": adapter.tokenizer_kwargs or {},
                "sparse_config_name": stub.sparse_config_name,
                "sparse_attention_config": sparse_config_to_dict(stub.sparse_attention_config),
                "benchmark_name": stub.benchmark_name,
                "subset": stub.subset,
                "benchmark_kwargs": stub.benchmark_kwargs,
                "generation_kwargs": stub.generation_kwargs,
                "request_kwargs": stub.request_kwargs,
            }
        )
    )


def compute_fingerprint(stub: BenchmarkStub) -> str:
    """sha256 of the canonical resolved config, without the config's display name and the
    model's path (a local model enters by its identity: moving it changes nothing), with the
    content hash of every artefact file the maskers read (a recalibrated channel file at the
    same path re-runs its cells) and the revision of every masker fixed since its first
    release (a cell computed before the fix re-runs)."""
    resolved = resolved_config(stub)
    resolved.pop("sparse_config_name")
    resolved.pop("model_name")
    artefacts = artefact_digests(stub.sparse_attention_config)
    if artefacts:  # only then: configs without artefacts keep their fingerprints
        resolved["artefacts"] = artefacts
    revisions = masker_revisions(stub.sparse_attention_config)
    if revisions:  # only then: maskers never fixed keep their fingerprints
        resolved["masker_revisions"] = revisions
    return fingerprint_of(resolved)


def cell_dir(
    base_dir: str | Path, model: str, config_name: str, bench: str, subset: str | None
) -> Path:
    """``<base>/<sanitized model identity>/<config name>/<benchmark>[_<subset>]``."""
    leaf = bench if subset is None else f"{bench}_{subset}"
    return Path(base_dir) / sanitize_model_name(model) / config_name / leaf


def expand_matrix(
    base_dir: str | Path,
    model_names: list[str],
    sparse_attention_configs: list[tuple[str, Any]],
    benchmark_configs: list[BenchmarkConfig],
    adapter_config: AdapterConfig,
    generation_kwargs: dict[str, Any] | None = None,
    request_kwargs: dict[str, Any] | None = None,
) -> list[BenchmarkStub]:
    """All cells of the matrix, in model-major order, each with its fingerprint.

    A BenchmarkConfig without subsets gives one cell for the whole benchmark.
    """
    from sparse_attention_hub.benchmarks.registry import canonical_name, is_import_path

    base = Path(base_dir).resolve()
    stubs = []
    for model in model_names:
        identity = model_identity(model)
        for config_name, sparse_config in sparse_attention_configs:
            for bench in benchmark_configs:
                source = bench.benchmark_name if is_import_path(bench.benchmark_name) else None
                name = canonical_name(source) if source else bench.benchmark_name
                subsets: list[str | None] = list(bench.subsets) if bench.subsets else [None]
                for subset in subsets:
                    stub = BenchmarkStub(
                        model_name=model,
                        sparse_config_name=config_name,
                        sparse_attention_config=sparse_config,
                        benchmark_name=name,
                        subset=subset,
                        adapter_config=adapter_config,
                        generation_kwargs=dict(generation_kwargs or {}),
                        result_dir=str(cell_dir(base, identity, config_name, name, subset)),
                        request_kwargs=dict(request_kwargs or {}),
                        benchmark_kwargs=dict(bench.benchmark_kwargs or {}),
                        benchmark_source=source,
                        model_identity=identity,
                    )
                    stub.fingerprint = compute_fingerprint(stub)
                    stubs.append(stub)
    return stubs
