"""Cheap caller-location inference: ``module.Class.method`` or ``module.function``.

The location is computed once per code object from the frame's module ``__name__`` and the
code's qualified name (``co_qualname``, Python 3.11+; on 3.10 the function name, prefixed by the
class of ``self``/``cls`` when there is one), then cached. A cache hit is one dict lookup keyed
by ``id(code)``; the entry keeps the code object alive, so the id cannot be reused while cached.
"""

from __future__ import annotations

import sys
from types import CodeType, FrameType

_CACHE: dict[int, tuple[CodeType, str]] = {}
_CACHE_LIMIT = 65536


def location_of(frame: FrameType) -> str:
    """Return the cached ``module.qualname`` location for ``frame``'s code object."""
    code = frame.f_code
    entry = _CACHE.get(id(code))
    if entry is not None and entry[0] is code:
        return entry[1]
    location = _compute(frame)
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[id(code)] = (code, location)
    return location


def caller_location(depth: int = 1) -> str:
    """Return the location of the frame ``depth`` levels above the caller of this function."""
    return location_of(sys._getframe(depth + 1))


def _compute(frame: FrameType) -> str:
    module = frame.f_globals.get("__name__") or "unknown"
    code = frame.f_code
    qualname = getattr(code, "co_qualname", None)
    if qualname is None:  # Python 3.10
        qualname = code.co_name
        owner = frame.f_locals.get("self", frame.f_locals.get("cls"))
        if owner is not None:
            cls = owner if isinstance(owner, type) else type(owner)
            qualname = f"{cls.__name__}.{qualname}"
    if qualname == "<module>":
        return str(module)
    return f"{module}.{qualname}"
