"""What a model is, independent of where it is: names cell folders and enters fingerprints.

A hub id is its own identity. A local model folder is ``<folder name>-<8 hex digits>``: the
digits are a hash of what makes the model, not of its path, so a results directory that is
moved, or run from another working directory, still matches its cells:

- a tiny model (``sparse_attention_hub.testing``): its spec file (arch, seed, sizes);
- any other folder: its config.json and weight index (``*.index.json``), or, without an
  index, the names and sizes of its weight files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

TINY_SPEC_FILE = "sah_tiny_model.json"  # written by sparse_attention_hub.testing.make_tiny_model
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
HASH_DIGITS = 8


def _content_files(folder: Path) -> list[Path]:
    """The files whose bytes make the identity of a local model folder."""
    spec = folder / TINY_SPEC_FILE
    if spec.is_file():
        return [spec]
    files = [folder / "config.json"] if (folder / "config.json").is_file() else []
    return files + sorted(folder.glob("*.index.json"))


def content_hash(folder: str | os.PathLike[str]) -> str:
    """sha256 (hex) of a local model folder's identifying content (see the module doc)."""
    root = Path(folder)
    digest = hashlib.sha256()
    files = _content_files(root)
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes() + b"\0")
    if not any(p.name.endswith(".index.json") or p.name == TINY_SPEC_FILE for p in files):
        for weight in sorted(p for p in root.iterdir() if p.suffix in WEIGHT_SUFFIXES):
            digest.update(f"{weight.name}:{weight.stat().st_size}\0".encode())
    return digest.hexdigest()


def is_local_model(model_name: str) -> bool:
    """Whether ``model_name`` names an existing local folder (rather than a hub id)."""
    try:
        return Path(model_name).expanduser().is_dir()
    except (OSError, ValueError):  # a name too long for a path, a NUL byte: not a folder
        return False


def model_identity(model_name: str) -> str:
    """``model_name`` for a hub id; ``<folder name>-<hash>`` for a local model folder."""
    if not is_local_model(model_name):
        return model_name
    folder = Path(model_name).expanduser().resolve()
    return f"{folder.name}-{content_hash(folder)[:HASH_DIGITS]}"
