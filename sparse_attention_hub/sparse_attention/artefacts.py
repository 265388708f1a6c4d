"""What a cell ran with beyond its config: the content hashes of the offline artefacts a
research-attention config reads, and the revisions of its maskers.

A masker config names its artefact fields in ``MaskerConfig.artefact_fields`` (Double
Sparsity's ``channel_file``, HashAttention's ``weights_file``). The path alone does not say
what a cell ran with: recalibrating into the same file changes the method. The executor puts
these hashes in the cell fingerprint so such a cell runs again instead of being reused.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any


def artefact_digests(config: Any) -> dict[str, str]:
    """``{"<i>.<field>": sha256 of the file}`` for every artefact field of the masker configs
    of ``config`` (a ResearchAttentionConfig or None); a missing file hashes as "missing"
    (validation reports it by name before any cell runs)."""
    digests: dict[str, str] = {}
    for index, masker_config in enumerate(getattr(config, "masker_configs", None) or []):
        for field in getattr(masker_config, "artefact_fields", ()):
            value = getattr(masker_config, field, None)
            if value:
                digests[f"{index}.{field}"] = file_digest(str(value))
    return digests


def masker_revisions(config: Any) -> dict[str, int]:
    """``{"<i>.<class>": revision}`` for every masker config of ``config`` (a
    ResearchAttentionConfig or None) whose ``revision`` is above 0: a fix that changes what a
    masker selects bumps it, and the executor re-runs the cells computed before the fix."""
    revisions: dict[str, int] = {}
    for index, masker_config in enumerate(getattr(config, "masker_configs", None) or []):
        revision = int(getattr(masker_config, "revision", 0))
        if revision > 0:
            revisions[f"{index}.{type(masker_config).__name__}"] = revision
    return revisions


def file_digest(path: str) -> str:
    """sha256 hex digest of the file at ``path`` ("missing" when it cannot be read); cached
    per (path, size, mtime) so a matrix of hundreds of cells hashes each file once."""
    resolved = Path(path).expanduser().resolve()
    try:
        stat = os.stat(resolved)
    except OSError:
        return "missing"
    return _digest(str(resolved), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return "missing"
    return digest.hexdigest()
