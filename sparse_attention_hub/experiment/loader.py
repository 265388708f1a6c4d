"""Load an experiment file: read it, check its schema, check names against the registries."""

from __future__ import annotations

import os
from pathlib import Path

from sparse_attention_hub.experiment.checks import ExperimentError, Source, load_yaml_text
from sparse_attention_hub.experiment.schema import parse_experiment
from sparse_attention_hub.experiment.spec import ExperimentSpec


def read_experiment_file(path: str | os.PathLike[str]) -> str:
    """The text of an experiment file; a missing or unreadable file is an ExperimentError."""
    name = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExperimentError(name, "", "no such file") from None
    except IsADirectoryError:
        raise ExperimentError(name, "", "is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(name, "", f"cannot read it ({exc})") from None


def load_experiment_text(
    text: str, source: str = "<string>", validate: bool = True
) -> ExperimentSpec:
    """Parse YAML text into an :class:`ExperimentSpec`.

    With ``validate`` (the default) masker names and parameters, benchmark names and subsets
    and metric names are also checked against the library's registries.
    """
    spec = parse_experiment(load_yaml_text(text, Source(source)), source)
    if validate:
        from sparse_attention_hub.experiment.validate import validate_spec

        validate_spec(spec)
    return spec


def load_experiment(path: str | os.PathLike[str], validate: bool = True) -> ExperimentSpec:
    """Read and check an experiment file (see ``schema.py`` for its keys)."""
    return load_experiment_text(read_experiment_file(path), str(path), validate=validate)
