"""The experiment-file schema: YAML -> :class:`ExperimentSpec`.

A file looks like ``examples/demo.yaml``::

    name: demo                      # optional
    result_dir: ./demo_results      # relative to the working directory; ~ is expanded
    models:                         # hub ids, local paths, or {tiny_model: {arch: llama}}
      - meta-llama/Llama-3.1-8B-Instruct
    sparse_configs:                 # name -> dense | list of maskers | {dense_layers, maskers,
                                    #   score_budget_bytes (research attention memory budget),
                                    #   prefill_maskers, prefill_block_size (sparse prefill)}
                                    #   | {recipe: <name>, <param>: value} (recipe_configs.py)
      dense: dense
      streaming:
        - sink: {sink_size: 128}
        - local: {window_size: 512}
      quest:                        # layers 0 and 1 keep full attention
        dense_layers: [0, 1]
        maskers: [{sink: {sink_size: 128}}, {local: {window_size: 128}}, quest]
    benchmarks:                     # a name, or {name, subsets, benchmark_kwargs}
      - name: longbench
        subsets: [narrativeqa, qasper]
    adapter: {model_kwargs: {dtype: bfloat16}, tokenizer_kwargs: {}}
    generation_kwargs: {max_new_tokens: 64}
    request_kwargs: {max_context_length: 32000}
    executor: {gpus: [0, 1], max_concurrent_runs: 2, enabled_metrics: [research_attention_density]}
                                    # backend: ray, address: auto  (a Ray cluster; docs in
                                    #   examples/ray_cluster.md)

Relative paths (``result_dir``, models given as local folders) are resolved from the working
directory, not from the experiment file. A model written as a path (absolute, starting with
``.`` or ``~``, or with more than one ``/``) must be an existing model folder (``validate.py``).

This module checks structure and types only; names of maskers and benchmarks are checked
against their registries by ``validate.py``.
"""

from __future__ import annotations

import os
from typing import Any

from sparse_attention_hub.experiment import checks as c
from sparse_attention_hub.experiment.checks import Source
from sparse_attention_hub.experiment.gpus import parse_gpus
from sparse_attention_hub.experiment.schema_configs import parse_sparse_configs
from sparse_attention_hub.experiment.spec import (
    BenchmarkSpec,
    ExecutorSpec,
    ExperimentSpec,
    ModelSpec,
    TinyModelSpec,
)

TOP_LEVEL_KEYS = (
    "name",
    "description",
    "result_dir",
    "models",
    "sparse_configs",
    "benchmarks",
    "adapter",
    "generation_kwargs",
    "request_kwargs",
    "executor",
    "allow_large_sweep",
)
DEFAULT_RESULT_DIR = "./benchmark_results"
TINY_ARCHS = ("llama", "qwen2", "mistral")
DTYPES = {
    "auto": "auto",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
_ANY_INT = c.integer


def _choice(*choices: str) -> Any:
    return lambda v, p, s: c.string(v, p, s, choices)


# key -> checker(value, path, src); the adapter and benchmarks read these keys.
GENERATION_KEYS: dict[str, Any] = {
    "max_new_tokens": lambda v, p, s: c.integer(v, p, s, minimum=1),
    "do_sample": c.boolean,
    "temperature": lambda v, p, s: c.number(v, p, s, low=0.0),
    "top_p": lambda v, p, s: c.number(v, p, s, low=0.0, high=1.0, low_open=True),
    "top_k": lambda v, p, s: c.integer(v, p, s, minimum=0),
    "seed": _ANY_INT,
}
REQUEST_KEYS: dict[str, Any] = {
    "max_context_length": lambda v, p, s: c.integer(v, p, s, minimum=1),
    "truncation": _choice("middle", "left", "right"),
    "apply_chat_template": c.boolean,
    "max_requests": lambda v, p, s: c.integer(v, p, s, minimum=1),
}
EXECUTOR_KEYS = (
    "gpus",
    "max_concurrent_runs",
    "timeout_per_benchmark",
    "enabled_metrics",
    "max_records",
    "sampling_factor",
    "max_retries",
    "enable_resumability",
    "preflight",
    "progress_interval",
    "backend",
    "address",
)


def parse_experiment(data: Any, source: str) -> ExperimentSpec:
    """Check a loaded YAML document and turn it into an :class:`ExperimentSpec`."""
    src = Source(source)
    expected = "a mapping with keys " + ", ".join(TOP_LEVEL_KEYS[3:6])
    if data is None:
        raise src.error("(top level)", f"the file is empty; expected {expected}")
    doc = c.mapping(data, "", src, expected)
    c.known_keys(doc, "", src, TOP_LEVEL_KEYS)
    adapter = _adapter(doc.get("adapter"), src)
    raw_models = c.required(doc, "models", "", src)
    models = _models(raw_models, src)
    local_paths = {
        _normalize_model(m) for m in raw_models if isinstance(m, str) and looks_like_path(m)
    }
    sparse_configs, dense_layers, recipe_defaults, budgets, prefill = parse_sparse_configs(
        c.required(doc, "sparse_configs", "", src),
        src,
        c.boolean(doc.get("allow_large_sweep", False), "allow_large_sweep", src),
    )
    return ExperimentSpec(
        source=source,
        name=_optional_string(doc.get("name"), "name", src),
        description=_optional_string(doc.get("description"), "description", src),
        result_dir=os.path.expanduser(
            _optional_string(doc.get("result_dir"), "result_dir", src) or DEFAULT_RESULT_DIR
        ),
        models=models,
        local_model_paths=tuple(m for m in models if isinstance(m, str) and m in local_paths),
        sparse_configs=sparse_configs,
        dense_layers=dense_layers,
        recipe_dense_layers=tuple(recipe_defaults),
        score_budgets=budgets,
        prefill=prefill,
        benchmarks=_benchmarks(c.required(doc, "benchmarks", "", src), src),
        adapter_name=adapter["adapter_name"],
        model_kwargs=adapter["model_kwargs"],
        tokenizer_kwargs=adapter["tokenizer_kwargs"],
        generation_kwargs=_kwargs(
            doc.get("generation_kwargs"), "generation_kwargs", src, GENERATION_KEYS
        ),
        request_kwargs=_kwargs(doc.get("request_kwargs"), "request_kwargs", src, REQUEST_KEYS),
        executor=_executor(doc.get("executor"), src),
    )


def _optional_string(value: Any, path: str, src: Source) -> str | None:
    return None if value is None else c.string(value, path, src)


def _models(value: Any, src: Source) -> list[ModelSpec]:
    if not isinstance(value, list) or not value:
        raise src.error(
            "models", f"expected a non-empty list of model ids or paths, got {c.describe(value)}"
        )
    models: list[ModelSpec] = []
    for i, item in enumerate(value):
        path = c.join("models", i)
        model: ModelSpec
        if isinstance(item, str):
            model = _normalize_model(c.string(item, path, src))
        elif isinstance(item, dict):
            model = _tiny_model(item, path, src)
        else:
            raise src.error(
                path,
                f"expected a model id, a local path or {{tiny_model: {{arch: llama}}}}, got {c.describe(item)}",
            )
        if model in models:
            raise src.error(path, f"{model!r} is listed twice")
        models.append(model)
    return models


def looks_like_path(model: str) -> bool:
    """A ``models:`` entry written as a local path rather than a hub id (``org/name``):
    absolute, starting with ``~`` or ``.``, or with more than one ``/``."""
    return (
        os.path.isabs(model)
        or model.startswith(("~", "."))
        or model.count("/") > 1
        or "\\" in model
    )


def _normalize_model(model: str) -> str:
    if model.startswith(("~", "./")):  # "./m" would become a hidden "._m" folder
        return os.path.normpath(os.path.expanduser(model))
    return model


def _tiny_model(item: dict[str, Any], path: str, src: Source) -> TinyModelSpec:
    c.known_keys(item, path, src, ["tiny_model"])
    path = c.join(path, "tiny_model")
    params = c.mapping(item.get("tiny_model") or {}, path, src)
    c.known_keys(params, path, src, ["arch", "seed", "trained"])
    arch = c.string(params.get("arch", "llama"), c.join(path, "arch"), src, TINY_ARCHS)
    seed = c.integer(params.get("seed", 0), c.join(path, "seed"), src, minimum=0)
    trained = params.get("trained", False)
    if not isinstance(trained, bool):
        raise src.error(c.join(path, "trained"), f"must be true or false, got {trained!r}")
    if trained and (arch != "llama" or "seed" in params):
        raise src.error(
            path, "the trained tiny model is one shipped llama: give trained: true alone"
        )
    return TinyModelSpec(arch=arch, seed=seed, trained=trained)


def _benchmarks(value: Any, src: Source) -> list[BenchmarkSpec]:
    if not isinstance(value, list) or not value:
        raise src.error(
            "benchmarks", f"expected a non-empty list of benchmarks, got {c.describe(value)}"
        )
    out: list[BenchmarkSpec] = []
    cells: set[tuple[str, str | None]] = set()
    for i, item in enumerate(value):
        path = c.join("benchmarks", i)
        bench = _benchmark(item, path, src)
        subsets: list[str | None] = list(bench.subsets) if bench.subsets else [None]
        for subset in subsets:
            if (bench.name, subset) in cells:
                what = bench.name if subset is None else f"{bench.name} subset {subset!r}"
                raise src.error(path, f"{what} is listed twice")
            cells.add((bench.name, subset))
        out.append(bench)
    return out


def _benchmark(item: Any, path: str, src: Source) -> BenchmarkSpec:
    if isinstance(item, str):
        return BenchmarkSpec(name=c.string(item, path, src))
    entry = c.mapping(item, path, src, "a benchmark name or {name: ..., subsets: [...]}")
    c.known_keys(entry, path, src, ["name", "subsets", "benchmark_kwargs"])
    name = c.string(c.required(entry, "name", path, src), c.join(path, "name"), src)
    subsets = entry.get("subsets")
    if subsets is not None:
        subsets = c.string_list(subsets, c.join(path, "subsets"), src, allow_numbers=True)
    kwargs = entry.get("benchmark_kwargs")
    if kwargs is not None:
        kw_path = c.join(path, "benchmark_kwargs")
        kwargs = c.plain_data(c.mapping(kwargs, kw_path, src), kw_path, src)
    return BenchmarkSpec(name=name, subsets=subsets, benchmark_kwargs=kwargs)


def _adapter(value: Any, src: Source) -> dict[str, Any]:
    entry = c.mapping(value or {}, "adapter", src)
    c.known_keys(entry, "adapter", src, ["adapter_name", "model_kwargs", "tokenizer_kwargs"])
    name = c.string(
        entry.get("adapter_name", "huggingface"), "adapter.adapter_name", src, ["huggingface"]
    )
    out: dict[str, Any] = {"adapter_name": name, "model_kwargs": None, "tokenizer_kwargs": None}
    for key in ("model_kwargs", "tokenizer_kwargs"):
        if entry.get(key) is not None:
            path = c.join("adapter", key)
            out[key] = c.plain_data(c.mapping(entry[key], path, src), path, src)
    if out["model_kwargs"]:
        out["model_kwargs"] = _dtype(out["model_kwargs"], src)
    return out


def _dtype(model_kwargs: dict[str, Any], src: Source) -> dict[str, Any]:
    """``dtype``/``torch_dtype`` as a canonical string (transformers accepts the string)."""
    keys = [k for k in ("dtype", "torch_dtype") if k in model_kwargs]
    if len(keys) == 2:
        raise src.error("adapter.model_kwargs", "give dtype or torch_dtype, not both")
    if not keys:
        return model_kwargs
    path = c.join("adapter.model_kwargs", keys[0])
    raw = model_kwargs[keys[0]]
    if not isinstance(raw, str) or raw.lower().removeprefix("torch.") not in DTYPES:
        raise src.error(path, f"unknown dtype {c.describe(raw)}; allowed: {c.allowed(DTYPES)}")
    out = {k: v for k, v in model_kwargs.items() if k != keys[0]}
    return {"dtype": DTYPES[raw.lower().removeprefix("torch.")], **out}


def _kwargs(value: Any, path: str, src: Source, known: dict[str, Any]) -> dict[str, Any] | None:
    if value is None:
        return None
    entry = c.mapping(value, path, src)
    c.known_keys(entry, path, src, known)
    return {key: known[key](v, c.join(path, key), src) for key, v in entry.items()}


def _executor(value: Any, src: Source) -> ExecutorSpec:
    entry = c.mapping(value or {}, "executor", src)
    c.known_keys(entry, "executor", src, EXECUTOR_KEYS)

    def get(key: str, check: Any) -> Any:
        v = entry.get(key)
        return None if v is None else check(v, c.join("executor", key), src)

    metrics = entry.get("enabled_metrics")
    if isinstance(metrics, str) and metrics != "all":
        raise src.error(
            "executor.enabled_metrics",
            f"expected all or a list of metric names like [{metrics}], got {c.describe(metrics)}",
        )
    if metrics not in (None, [], "all"):
        metrics = c.string_list(metrics, "executor.enabled_metrics", src)
    sampling = get(
        "sampling_factor", lambda v, p, s: c.number(v, p, s, low=0.0, high=1.0, low_open=True)
    )
    from sparse_attention_hub.executor.validation import MAX_SECONDS

    def seconds(v: Any, p: str, s: Source) -> float:
        return c.number(v, p, s, low=0.0, high=MAX_SECONDS, low_open=True)

    resumability = get("enable_resumability", c.boolean)
    preflight = get("preflight", c.boolean)
    return ExecutorSpec(
        gpus=parse_gpus(entry.get("gpus"), "executor.gpus", src),
        max_concurrent_runs=get(
            "max_concurrent_runs", lambda v, p, s: c.integer(v, p, s, minimum=1)
        ),
        timeout_per_benchmark=get("timeout_per_benchmark", seconds),
        enabled_metrics=metrics or None,
        max_records=get("max_records", lambda v, p, s: c.integer(v, p, s, minimum=1)),
        sampling_factor=1.0 if sampling is None else sampling,
        max_retries=get("max_retries", lambda v, p, s: c.integer(v, p, s, minimum=0)),
        enable_resumability=True if resumability is None else resumability,
        preflight=True if preflight is None else preflight,
        progress_interval=get("progress_interval", seconds),
        **_backend(entry, src),
    )


def _backend(entry: dict[str, Any], src: Source) -> dict[str, Any]:
    """``backend: local|ray`` and the Ray ``address`` (a string, only with backend: ray)."""
    backend = entry.get("backend", "local")
    if backend not in ("local", "ray"):
        raise src.error("executor.backend", f"expected local or ray, got {c.describe(backend)}")
    address = entry.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise src.error(
            "executor.address",
            f"expected a Ray address like auto, local or host:6379, got {c.describe(address)}",
        )
    if address is not None and backend != "ray":
        raise src.error("executor.address", "is a Ray address: set executor.backend: ray too")
    return {"backend": backend, "address": address}
