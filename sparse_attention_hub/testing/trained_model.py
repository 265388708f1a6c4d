"""The shipped trained tiny model: where it lies, and a copy of it where a study wants it.

The weights in ``testing/trained_retrieval/`` were written by
``sah make-tiny-model DIR --trained`` (:mod:`.train_retrieval_model`); ``training.json`` beside
them records the exact command, the seed, the cost and the accuracies.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

TRAINED_MODEL_PACKAGE_DIR = "trained_retrieval"


def trained_model_dir() -> str:
    """The directory of the shipped trained model (``from_pretrained`` loads it offline)."""
    root = resources.files("sparse_attention_hub.testing").joinpath(TRAINED_MODEL_PACKAGE_DIR)
    path = Path(str(root))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the trained tiny model is missing from the package ({path}); reinstall the "
            "package, or rebuild it with `sah make-tiny-model DIR --trained`"
        )
    return str(path)


def trained_model_record() -> dict[str, Any]:
    """``training.json`` of the shipped model: command, seed, config, cost, accuracies."""
    record = json.loads((Path(trained_model_dir()) / "training.json").read_text("utf-8"))
    if not isinstance(record, dict):
        raise ValueError("training.json of the trained tiny model is not a JSON object")
    return record


def _same_files(source: Path, target: Path) -> bool:
    for item in source.iterdir():
        if item.is_file():
            other = target / item.name
            if not other.is_file() or other.read_bytes() != item.read_bytes():
                return False
    return True


def copy_trained_model(path: str | os.PathLike[str]) -> str:
    """Copy the shipped trained model to ``path`` (nothing is rewritten if it is there).

    Written into a temporary sibling and moved in, so a concurrent reader never sees half a
    model (config.json goes in last).
    """
    source = Path(trained_model_dir())
    target = Path(path).expanduser().resolve()
    if target.is_dir() and _same_files(source, target):
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for item in source.iterdir():
            if item.is_file():
                shutil.copyfile(item, tmp / item.name)
        target.mkdir(exist_ok=True)
        (target / "config.json").unlink(missing_ok=True)
        for item in sorted(tmp.iterdir(), key=lambda p: p.name == "config.json"):
            os.replace(item, target / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(target)
