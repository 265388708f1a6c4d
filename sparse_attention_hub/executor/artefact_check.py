"""Know before the GPUs start: every artefact file a masker reads, checked once, up front.

A masker config names its artefact files in ``artefact_fields`` (Double Sparsity's
``channel_file``, HashAttention's ``weights_file``) and checks them with
``MaskerConfig.artefact_problems``: the file exists, is readable, and reads as the masker
reads it (format, values); where the model's ``config.json`` is at hand (a local model folder
or the HuggingFace cache: no download, no weights loaded) also its shape against the model's
layers, heads and head size, on the layers that run the masker (``dense_layers`` excluded).

The executor runs :func:`check_artefacts` in the parent before any worker starts and raises
:class:`ArtefactError` listing every problem; ``sah run --dry-run`` lists the cells first,
then these lines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sparse_attention_hub.executor.preflight import PreflightError
from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape

log = logging.getLogger(__name__)


class ArtefactError(PreflightError):
    """Artefact files of the matrix cannot serve its cells; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        ValueError.__init__(
            self,
            f"{len(self.problems)} problem(s) with the artefact files the maskers read, so no "
            f"worker was started:\n{lines}",
        )


@dataclass
class ArtefactReport:
    """One line per (sparse config, model) whose artefacts were checked, and the problems."""

    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ArtefactError(self.problems)


def model_shape(name: str, revision: str | None = None) -> ModelShape | None:
    """The attention shape in the ``config.json`` of model ``name`` (a local folder, or the
    HuggingFace cache; nothing is downloaded), or None when it is not at hand."""
    from sparse_attention_hub.executor.model_limits import read_model_config

    try:
        data = read_model_config(name, revision, timeout=0.0, download=False)
    except Exception:  # not at hand (or not a repository id): the shape is unknown
        return None
    return ModelShape.from_config_dict(data) if isinstance(data, dict) else None


def _masker_layers(config: Any, shape: ModelShape | None) -> list[int] | None:
    """The layers of the model that run the maskers (all but ``dense_layers``), or None."""
    if shape is None:
        return None
    dense = set(getattr(config, "dense_layers", None) or [])
    return [i for i in range(shape.layers) if i not in dense]


def check_artefacts(stubs: list[Any]) -> ArtefactReport:
    """Check the artefact files of every (model, sparse config) pair of the cells ``stubs``
    once each; never raises for a bad file (the report lists it)."""
    report = ArtefactReport()
    shapes: dict[tuple[str, str | None], ModelShape | None] = {}
    seen: set[tuple[str, str]] = set()
    for stub in stubs:
        config = stub.sparse_attention_config
        maskers = [m for m in getattr(config, "masker_configs", None) or [] if m.artefact_fields]
        if not maskers or (stub.model_name, stub.sparse_config_name) in seen:
            continue
        seen.add((stub.model_name, stub.sparse_config_name))
        revision = (stub.adapter_config.model_kwargs or {}).get("revision")
        key = (stub.model_name, revision)
        if key not in shapes:
            shapes[key] = model_shape(stub.model_name, revision)
        shape = shapes[key]
        where = f"sparse config {stub.sparse_config_name!r} on {stub.model_name}"
        problems = [
            problem
            for masker in maskers
            for problem in masker.artefact_problems(shape, _masker_layers(config, shape))
        ]
        report.problems += [f"{where}: {problem}" for problem in problems]
        how = "checked against the model's config.json" if shape else "checked (the model's "
        how += "" if shape else "config.json is not at hand: shapes not checked)"
        report.lines.append(("BAD     " if problems else "ok      ") + f"{where}: artefacts {how}")
    return report


def format_artefacts(report: ArtefactReport) -> str:
    """``artefacts: 1 problem(s)`` (or ``every artefact file is fine``), one line per
    (sparse config, model), then the problems."""
    head = f"{len(report.problems)} problem(s)" if report.problems else "every file reads"
    lines = [f"artefacts: {head}"] + [f"  {line}" for line in report.lines]
    return "\n".join(lines + [f"  - {problem}" for problem in report.problems])


__all__ = ["ArtefactError", "ArtefactReport", "check_artefacts", "format_artefacts", "model_shape"]
