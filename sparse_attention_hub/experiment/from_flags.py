"""A study from command-line flags: ``sah run --model M --config quest --benchmark X:sub``.

The flags are translated into the study document a YAML file would hold (:func:`study_document`,
written out by ``sah run --print-yaml``), and that document's YAML text is read by the same
loader as a file (:func:`load_experiment_text`), so the cells, their fingerprints and their
folders are those of the equivalent file. Each flag may be repeated; the study is the matrix
models x configs x benchmarks.

- ``--model``: a hub id, a local model folder, ``tiny:<arch>`` (``llama``, ``qwen2``,
  ``mistral``: a tiny random model) or ``tiny:trained`` (the shipped needle-retrieval llama).
- ``--config``: ``dense``; a recipe ``quest``, with parameters ``quest:heavy_size=0.05,page_size=32``
  (values are YAML: a list ``heavy_size=[0.02,0.05]`` sweeps); or JSON: a masker list
  ``[{"sink": {"sink_size": 128}}, {"local": {"window_size": 512}}]`` or any mapping a study
  file takes (``{"prefill_maskers": [...]}`` too). ``NAME=`` in front names the config (its
  folder); otherwise the name is ``dense``, the recipe's (``quest``, ``quest.heavy_size=0.05``)
  or the maskers' (``sink+local``; ``quest+prefill-flexprefill`` with prefill maskers).
- ``--benchmark``: ``name`` or ``name:subset[,subset...]`` (``synthetic_ruler:4096``); an
  import path ``pkg.module:Class`` takes its subsets after a second colon.
- ``--limit N``: at most N requests per cell (``request_kwargs.max_requests``).

A bad flag is an :class:`ExperimentError` naming the flag (source ``command line``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from sparse_attention_hub.experiment.checks import ExperimentError, Source, load_yaml_text
from sparse_attention_hub.experiment.gpus import parse_gpus
from sparse_attention_hub.experiment.loader import load_experiment_text
from sparse_attention_hub.experiment.schema import DEFAULT_RESULT_DIR, TINY_ARCHS
from sparse_attention_hub.experiment.spec import ExperimentSpec
from sparse_attention_hub.experiment.sweep import value_text

SOURCE = "command line"
CONFIG_HELP = (
    "dense, a recipe (quest, or quest:heavy_size=0.05,page_size=32), or a JSON masker list "
    'like [{"sink": {"sink_size": 128}}, {"local": {"window_size": 512}}], optionally '
    "preceded by NAME="
)
_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.+-]*)=(.+)$", re.DOTALL)
_EXECUTOR_FLAGS = {
    "gpus": "--gpus",
    "max_concurrent_runs": "--max-concurrent-runs",
    "backend": "--backend",
    "address": "--address",
}


@dataclass(frozen=True)
class StudyFlags:
    """The flags of a one-line ``sah run`` (each list in the order given)."""

    models: list[str]
    benchmarks: list[str]
    configs: list[str] = field(default_factory=lambda: ["dense"])
    limit: int | None = None
    result_dir: str | None = None
    gpus: str | None = None
    max_concurrent_runs: int | None = None
    backend: str | None = None
    address: str | None = None


def _error(flag: str, message: str) -> ExperimentError:
    return ExperimentError(SOURCE, flag, message)


def _model_entry(text: str) -> Any:
    """A ``models:`` entry: the text itself, or ``{tiny_model: {...}}`` for ``tiny:<arch>``."""
    if not text.strip():
        raise _error("--model", "is empty; give a hub id like org/name or a model folder")
    if not text.startswith("tiny:"):
        return text
    kind = text.removeprefix("tiny:")
    if kind == "trained":
        return {"tiny_model": {"trained": True}}
    if kind not in TINY_ARCHS:
        allowed = ", ".join(f"tiny:{a}" for a in (*TINY_ARCHS, "trained"))
        raise _error(f"--model {text!r}", f"unknown tiny model; allowed: {allowed}")
    return {"tiny_model": {"arch": kind}}


def _split_top_level(text: str) -> list[str]:
    """``a=1,b=[2,3]`` -> ``["a=1", "b=[2,3]"]``: commas outside brackets separate."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _recipe_value(spec: str, flag: str) -> dict[str, Any]:
    """``quest:heavy_size=0.05`` -> ``{recipe: quest, heavy_size: 0.05}`` (values are YAML)."""
    from sparse_attention_hub.sparse_attention.recipes import available_recipes

    recipe, _, params_text = spec.partition(":")
    if recipe not in available_recipes():
        raise _error(
            flag,
            f"unknown config {recipe!r}; expected {CONFIG_HELP}; recipes: "
            + ", ".join(available_recipes()),
        )
    value: dict[str, Any] = {"recipe": recipe}
    for item in _split_top_level(params_text) if params_text else []:
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq or not key or not raw.strip():
            raise _error(flag, f"expected PARAM=VALUE after '{recipe}:', got {item!r}")
        if key in value:
            raise _error(flag, f"parameter {key!r} is given twice")
        value[key] = load_yaml_text(raw, Source(f"{SOURCE}: {flag}"))
    return value


def _recipe_name(value: dict[str, Any], flag: str) -> str:
    """``quest.heavy_size=0.05+page_size=32``: the recipe and its parameters that are not
    swept (a sweep adds the swept ones to each point's name, as in a study file)."""
    parts = []
    for key, param in value.items():
        swept = isinstance(param, list) and (
            key != "dense_layers" or any(isinstance(v, list) for v in param)
        )
        if key == "recipe" or swept:
            continue
        try:
            parts.append(f"{key}={value_text(param)}")
        except ValueError as exc:
            raise _error(flag, f"{exc}; name the config: --config NAME=...") from None
    return ".".join([str(value["recipe"]), "+".join(parts)] if parts else [str(value["recipe"])])


def _masker_names(value: Any) -> str:
    """``sink+local`` for a masker list (or ``{maskers: [...]}``), with ``prefill-NAME`` for
    each of ``{prefill_maskers: [...]}``; ``config`` when there is no masker name to take."""
    maskers = value.get("maskers") if isinstance(value, dict) else value
    prefill = value.get("prefill_maskers") if isinstance(value, dict) else None
    names = [str(n) for n in _entry_names(maskers)]
    names += [f"prefill-{n}" for n in _entry_names(prefill)]
    return "+".join(names) or "config"


def _entry_names(maskers: Any) -> list[Any]:
    """The masker names of a ``[name or {name: params}, ...]`` list (none if not a list)."""
    if not isinstance(maskers, list):
        return []
    return [
        m if isinstance(m, str) else next(iter(m))
        for m in maskers
        if isinstance(m, (str, dict)) and m
    ]


def _config_entry(text: str) -> tuple[str, Any]:
    """``(config name, sparse_configs value)`` of one ``--config``."""
    flag = f"--config {text!r}"
    match = _NAME.match(text.strip())
    name, spec = (match.group(1), match.group(2).strip()) if match else (None, text.strip())
    if not spec:
        raise _error("--config", f"is empty; expected {CONFIG_HELP}")
    if spec == "dense":
        return name or "dense", "dense"
    if spec[0] not in "[{":
        value = _recipe_value(spec, flag)
        return name or _recipe_name(value, flag), value
    try:
        value = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise _error(flag, f"not valid JSON ({exc}); expected {CONFIG_HELP}") from None
    if name is not None:
        return name, value
    if isinstance(value, dict) and isinstance(value.get("recipe"), str):
        return _recipe_name(value, flag), value
    return _masker_names(value), value


def _benchmark_entry(text: str) -> Any:
    """``name`` or ``{name, subsets}`` of one ``--benchmark``."""
    first, colon, rest = text.partition(":")
    name, subsets_text = first, rest if colon else None
    if colon and "." in first:  # an import path pkg.module:Class[:subsets]
        cls, colon2, subsets = rest.partition(":")
        name, subsets_text = f"{first}:{cls}", subsets if colon2 else None
    if not name.strip():
        raise _error("--benchmark", "is empty; give a benchmark name like synthetic_ruler:4096")
    if subsets_text is None:
        return name
    names = [part.strip() for part in subsets_text.split(",")]
    if not all(names):
        raise _error(
            f"--benchmark {text!r}", "expected NAME:SUBSET[,SUBSET...] with no empty subset"
        )
    return {"name": name, "subsets": names}


def study_document(flags: StudyFlags) -> dict[str, Any]:
    """The study file's content (plain data, the keys of ``schema.py``) for ``flags``."""
    if not flags.models:
        raise _error("--model", "is required (without a study file): a hub id or model folder")
    if not flags.benchmarks:
        raise _error("--benchmark", "is required (without a study file), e.g. synthetic_ruler:4096")
    doc: dict[str, Any] = {"result_dir": flags.result_dir or DEFAULT_RESULT_DIR}
    doc["models"] = [_model_entry(m) for m in flags.models]
    configs: dict[str, Any] = {}
    for text in flags.configs or ["dense"]:
        name, value = _config_entry(text)
        if name in configs:
            raise _error(
                f"--config {text!r}",
                f"a second config named {name!r}; name one: --config OTHER_NAME={text}",
            )
        configs[name] = value
    doc["sparse_configs"] = configs
    doc["benchmarks"] = [_benchmark_entry(b) for b in flags.benchmarks]
    if flags.limit is not None:
        doc["request_kwargs"] = {"max_requests": flags.limit}
    if flags.address is not None and flags.backend != "ray":
        raise _error("--address", "is a Ray address: add --backend ray")
    executor: dict[str, Any] = {}
    if flags.gpus is not None:
        gpus = parse_gpus(flags.gpus, "", Source(f"{SOURCE}: --gpus"))
        executor["gpus"] = gpus or "cpu"
    for key in ("max_concurrent_runs", "backend", "address"):
        if getattr(flags, key) is not None:
            executor[key] = getattr(flags, key)
    if executor:
        doc["executor"] = executor
    return doc


def study_yaml(doc: dict[str, Any]) -> str:
    """The YAML text of a study document (what ``sah run --print-yaml`` writes)."""
    header = "# A study file: sah run THIS_FILE runs the same cells as the flags that wrote it.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100)


def spec_from_flags(flags: StudyFlags) -> tuple[ExperimentSpec, str]:
    """The checked study of ``flags`` and its YAML text; an error names the flag."""
    doc = study_document(flags)
    text = study_yaml(doc)
    try:
        return load_experiment_text(text, SOURCE), text
    except ExperimentError as exc:
        if exc.source != SOURCE:
            raise
        raise _error(_flag_of(exc.path, flags, doc), exc.message) from None


def _flag_of(path: str, flags: StudyFlags, doc: dict[str, Any]) -> str:
    """The flag a key path of the study document came from (``benchmarks[1].name`` ->
    ``--benchmark 'x:y'``), with the rest of the path when it says more."""
    for prefix, texts, flag in (
        ("models", flags.models, "--model"),
        ("benchmarks", flags.benchmarks, "--benchmark"),
    ):
        found = re.match(rf"^{prefix}\[(\d+)\](.*)$", path)
        if found:
            return _with_rest(f"{flag} {texts[int(found.group(1))]!r}", found.group(2))
    by_name = dict(zip(doc["sparse_configs"], flags.configs or ["dense"], strict=True))
    for name in sorted(by_name, key=len, reverse=True):
        prefix = f"sparse_configs.{name}"
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            return _with_rest(f"--config {by_name[name]!r}", path[len(prefix) :])
    if path.startswith("sparse_configs"):
        return "--config"
    if path.startswith("request_kwargs"):
        return "--limit"
    if path == "result_dir":
        return "--result-dir"
    if path.startswith("executor."):
        return _EXECUTOR_FLAGS.get(path.split(".")[1].split("[")[0], path)
    return path


def _with_rest(flag: str, rest: str) -> str:
    rest = rest.lstrip(".")
    return f"{flag} at {rest}" if rest else flag
