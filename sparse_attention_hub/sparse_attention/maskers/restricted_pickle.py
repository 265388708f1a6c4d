"""Read a pickle of tensors, arrays and plain containers without running code from the file.

Unpickling calls whatever global the file names (``os.system``, ``builtins.exec``, ...), so a
crafted ``.pkl`` runs code the moment it is loaded. The published HashAttention weights are
pickles in the reference framework's layout (``{layer: {"query_matrix": [tensor, ...],
...}}``, written with ``pickle.dump``), and a converter is exactly where files of unknown
origin arrive. :class:`RestrictedUnpickler` resolves only the globals such a file needs and
refuses every other one with :class:`RefusedPickleGlobal`, naming the file and the global.

Why not ``torch.load(weights_only=True)``: that is a restricted unpickler for torch's own
formats (``torch.save``: a zip archive, or the legacy stream of several pickles whose
storages are persistent ids). A plain ``pickle.dump`` of tensors is neither: each storage is
pickled as ``torch.storage._load_from_bytes(bytes)``, and torch's own ``_load_from_bytes``
calls ``torch.load(weights_only=False)`` on those bytes, a full unpickler inside the file. So
this module is a ``pickle.Unpickler`` subclass, and it maps ``_load_from_bytes`` to a
function that reads the bytes with ``torch.load(weights_only=True)``.

What a plain pickle of tensors and arrays names (checked on torch 2 and numpy 2, protocols 2
to 5) and what is allowed:

- tensors: ``torch._utils._rebuild_tensor``, ``_rebuild_tensor_v2``, ``_rebuild_tensor_v3``,
  ``_rebuild_parameter``; storages: ``torch.storage._load_from_bytes`` (replaced, see above);
  ``torch.Size``, ``torch.device`` and the dtypes (``torch.float32``, ...);
- arrays: numpy's ``_reconstruct``, ``scalar`` and ``_frombuffer`` (under ``numpy._core``
  and the numpy 1 name ``numpy.core``), ``numpy.ndarray``, ``numpy.dtype``;
- containers: ``collections.OrderedDict``, ``builtins`` ``set``, ``frozenset``,
  ``bytearray``, ``complex``, and ``_codecs.encode`` for latin-1 only (protocol 2 writes
  ``bytes`` through it). dict, list, tuple, str, numbers need no global.

Opcodes that refer to objects outside the stream (persistent ids) are refused by
``pickle.Unpickler`` itself, as no ``persistent_load`` is defined.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

#: The one codec ``_codecs.encode`` may use (protocol 2 writes bytes as latin-1 text).
_LATIN1 = ("latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1")


class RefusedPickleGlobal(pickle.UnpicklingError, ValueError):
    """A pickle names a global outside the allowed set (it may run code when loaded)."""


def _encode_latin1(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to latin-1, the codec protocol 2 writes bytes with."""
    if not isinstance(text, str) or str(encoding).lower() not in _LATIN1:
        raise pickle.UnpicklingError(
            f"_codecs.encode is allowed only for latin-1 text, got encoding {encoding!r}"
        )
    return text.encode("latin-1", errors)


def _storage_from_bytes(data: bytes) -> Any:
    """A storage pickled as ``torch.storage._load_from_bytes(data)``, read with
    ``torch.load(weights_only=True)`` instead of torch's full unpickler."""
    import torch

    if not isinstance(data, bytes | bytearray):
        raise pickle.UnpicklingError("a pickled storage must be bytes")
    return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")


def _torch_globals() -> dict[tuple[str, str], Any]:
    import torch
    import torch._utils as tu

    allowed: dict[tuple[str, str], Any] = {
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
    }
    rebuild = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter")
    for name in rebuild:
        if hasattr(tu, name):
            allowed[("torch._utils", name)] = getattr(tu, name)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[("torch", name)] = getattr(torch, name)
    return allowed


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core import multiarray, numeric  # numpy 2
    except ImportError:  # numpy 1
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]

    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for package in ("numpy._core", "numpy.core"):  # numpy 2 and numpy 1 names
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer  # type: ignore[attr-defined]
    return allowed


def allowed_globals() -> dict[tuple[str, str], Any]:
    """``{(module, name): object}``: every global a weights pickle may name (see module)."""
    import collections

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _encode_latin1,
    }
    for module in ("builtins", "__builtin__"):  # __builtin__: a Python 2 pickle's name
        for name, obj in (
            ("set", set),
            ("frozenset", frozenset),
            ("bytearray", bytearray),
            ("complex", complex),
        ):
            allowed[(module, name)] = obj
    allowed.update(_torch_globals())
    allowed.update(_numpy_globals())
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only :func:`allowed_globals` and raises
    :class:`RefusedPickleGlobal` (naming ``source`` and the global) for any other."""

    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file)
        self.source = source
        self._allowed = allowed_globals()

    def find_class(self, module: str, name: str) -> Callable[..., Any]:
        found = self._allowed.get((module, name))
        if found is None:
            raise RefusedPickleGlobal(
                f"{self.source}: refused to unpickle the global {module}.{name}: a weights "
                "pickle holds only tensors, arrays and plain containers, and this global may "
                "run code from the file. Loading stopped before it was called; if you trust "
                "the file, load it with allow_pickle: true in the masker's config"
            )
        return found


def restricted_load(path: str | Path) -> Any:
    """The object pickled in ``path``, read with :class:`RestrictedUnpickler`.

    Raises:
        RefusedPickleGlobal: the file names a global outside the allowed set.
        ValueError: the file is not a readable pickle (naming the file).
    """
    source = str(path)
    with open(path, "rb") as handle:
        try:
            return RestrictedUnpickler(handle, source).load()
        except RefusedPickleGlobal:
            raise
        except Exception as exc:  # a malformed stream raises many types (EOF, memo, struct)
            raise ValueError(f"{source}: not a readable pickle of tensors ({exc})") from exc


__all__ = ["RefusedPickleGlobal", "RestrictedUnpickler", "allowed_globals", "restricted_load"]
