"""Code from outside the package: objects named by import path, and Python entry points.

An import path is ``"package.module:Name"`` (``Name`` may be dotted: ``Outer.Inner``); the
module is imported when the path is first resolved, in whichever process resolves it. An
installed distribution can also declare entry points in a group such as
``sparse_attention_hub.maskers``; :func:`load_entry_points` loads every one of them.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

logger = logging.getLogger(__name__)


def is_import_path(name: str) -> bool:
    """Whether ``name`` is written as an import path ``package.module:Name``."""
    return ":" in name


def load_import_path(path: str, what: str) -> Any:
    """The object at ``path`` (``"package.module:Name"``).

    Raises:
        ValueError: a malformed path, or an import / attribute error, named with ``what``
            (e.g. "masker"), the path and the original error.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise ValueError(
            f"{what} import path {path!r} must look like 'package.module:Name' "
            "(one colon between the module and the name)"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # any error of user code at import time
        raise ValueError(f"cannot import {what} {path!r}: {type(exc).__name__}: {exc}") from exc
    return obj


def load_entry_points(group: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Load every entry point of ``group``.

    Returns:
        (objects by entry-point name, error messages by entry-point name for the ones that
        failed to load; each failure is also logged as a warning).
    """
    loaded: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for point in entry_points(group=group):
        try:
            loaded[point.name] = point.load()
        except Exception as exc:  # a broken plugin must not break the others
            failed[point.name] = (
                f"cannot load entry point {point.name!r} ({point.value}) of group {group!r}: "
                f"{type(exc).__name__}: {exc}"
            )
            logger.warning("%s", failed[point.name])
    return loaded, failed
