"""The ``sparse_config`` model argument of the lm-eval model ``sah``.

Accepted forms (the same entries as a study file's ``sparse_configs``, without sweeps):

- absent, ``None``, ``"dense"`` or ``[]``: the model's own attention everywhere (no research
  attention), as ``dense`` in a study file;
- a recipe name (``sah list recipes``), e.g. ``"quest"``: the recipe with its defaults;
- a path to a ``.yaml`` / ``.yml`` / ``.json`` file holding one of the forms below;
- a masker list ``[{"sink": {"sink_size": 4}}, {"local": {"window_size": 16}}]`` (a bare
  masker name is a masker with its defaults);
- ``{"maskers": [...], "dense_layers": [0, 1]}``, with ``"prefill_maskers": [...]`` and
  ``"prefill_block_size"`` for a sparse prefill (``prefill_maskers`` alone: dense decode);
- a recipe with parameters ``{"recipe": "quest", "heavy_size": 0.05}``.

On lm-eval's command line the structured forms are Python/JSON literals inside
``--model_args``, e.g. ``sparse_config={'recipe':'quest','heavy_size':0.05}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

DENSE = "dense"
FILE_SUFFIXES = (".yaml", ".yml", ".json")
_FORMS = (
    "'dense', a recipe name, a .yaml/.json file, a masker list [{name: {param: value}}], "
    "{'maskers': [...], 'dense_layers': [...], 'prefill_maskers': [...]} or "
    "{'recipe': name, param: value}"
)


def parse_sparse_config(value: Any) -> Any:
    """The ResearchAttentionConfig that ``value`` names, or None for the model's own attention.

    Raises:
        ValueError: a form not listed in the module docstring, an unknown recipe, masker or
            parameter, or a file that cannot be read (naming ``sparse_config`` and the value).
    """
    if value is None or value == DENSE or value == []:
        return None
    if isinstance(value, str):
        return _from_string(value)
    try:
        return _from_data(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sparse_config={value!r}: {exc}") from None


def _from_string(text: str) -> Any:
    from sparse_attention_hub.sparse_attention.recipes import available_recipes

    stripped = text.strip()
    if stripped in available_recipes():
        return _from_data({"recipe": stripped})
    if stripped.endswith(FILE_SUFFIXES):
        return _from_file(Path(stripped).expanduser())
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ValueError(f"sparse_config={text!r} is not valid JSON: {exc}") from None
        return parse_sparse_config(data)
    raise ValueError(
        f"sparse_config={text!r} is neither 'dense', a recipe ({', '.join(available_recipes())}) "
        f"nor a file ending in {'/'.join(FILE_SUFFIXES)}; allowed: {_FORMS}"
    )


def _from_file(path: Path) -> Any:
    if not path.is_file():
        raise ValueError(f"sparse_config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"sparse_config file {str(path)!r} cannot be parsed: {exc}") from None
    if isinstance(data, str) and data.strip().endswith(FILE_SUFFIXES):
        raise ValueError(f"sparse_config file {str(path)!r} names another file: give the config")
    return parse_sparse_config(data)


def _from_data(data: Any) -> Any:
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

    if isinstance(data, list):
        data = {"maskers": data}
    if not isinstance(data, Mapping):
        raise ValueError(f"expected {_FORMS}, got {type(data).__name__}")
    if "recipe" in data:
        params = dict(data)
        name = params.pop("recipe")
        return ResearchAttentionConfig.from_recipe(name, **params)
    if "maskers" not in data and "prefill_maskers" not in data:
        raise ValueError(f"expected {_FORMS}, got a mapping with keys {sorted(map(str, data))}")
    lists = {key: _named(data.get(key) or []) for key in ("maskers", "prefill_maskers")}
    return ResearchAttentionConfig.from_dict({**data, **lists})


def _named(maskers: Any) -> Any:
    """A masker list with each bare name ``"sink"`` as ``{"sink": {}}`` (other values as given)."""
    if not isinstance(maskers, list):
        return maskers
    return [{entry: {}} if isinstance(entry, str) else entry for entry in maskers]
