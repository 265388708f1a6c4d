"""``Mask``: which keys each query attends to, and with what inclusion probability.

A mask has shape (B, H, Q, K). Entry ``p`` is the probability with which key ``k`` was
included for query ``q`` of head ``h``: ``0`` means not attended, ``p`` in (0, 1] means attended
with weight ``1 / p`` (so a sampled subset gives an unbiased estimate of the dense sums).

Drawn for one (batch, head), ``#`` = 1, ``+`` = 0 < p < 1, ``.`` = 0 (see :meth:`Mask.render`)::

    sink(2) + local(3), Q=4, K=10     then random sampling of the rest
    ##..###...                        ##..###.+.
    ##...###..                        ##+..###..
    ##....###.                        ##.+..###+
    ##.....###                        ##+....###

Forms:

- dense (the default, fast on accelerators): a tensor broadcastable to (B, H, Q, K), kept as
  ``bool`` while every active entry has p = 1 (sink, window, top-k: a quarter of the memory
  traffic) and as float probabilities once an entry has p < 1 (sampling). Patterns shared by
  all heads stay small: a sink is stored as (1, 1, 1, K), a window as (1, 1, Q, K), until a
  per-head masker (top-k, sampling) needs the full tensor;
- full / empty: a flag only, so the full-attention control and the first masker of a chain do
  not allocate a (B, H, Q, K) tensor they do not need;
- row indices (B, H, Q, k) with optional probabilities (:meth:`from_row_indices`,
  :meth:`to_row_indices`), handy for maskers that pick k keys per row;
- flat CSR-style indices (:meth:`from_flat_indices`, :meth:`to_flat_indices`): positions into the
  flattened (B * H * Q * K) tensor, row by row, with a row pointer of length B * H * Q + 1.

Masks are immutable: every operation returns a new mask and never edits or aliases the tensor
of the mask it started from.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sparse_attention_hub.sparse_attention.mask_tensors import (
    as_4d,
    check_probabilities,
    row_values,
    scatter_max_,
)

_EMPTY, _FULL, _DENSE = "empty", "full", "dense"


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4 or any(s < 0 for s in shape):
        raise ValueError(f"Mask shape must be (B, H, Q, K) of non-negative ints, got {shape}")
    return shape  # type: ignore[return-value]


class Mask:
    """An immutable (B, H, Q, K) mask of inclusion probabilities. Build it with the classmethods.

    ``dtype`` is the float dtype of :meth:`to_dense`; the stored tensor may be ``bool``
    (every active entry at p = 1) or that float dtype, with any dimension of size 1 standing
    for all of that dimension (broadcasting).
    """

    __slots__ = ("_dense", "_kind", "device", "dtype", "shape")

    def __init__(
        self,
        shape: Sequence[int],
        kind: str,
        dense: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        """Internal: use :meth:`create_empty`, :meth:`create_full`, :meth:`from_dense`, ..."""
        self.shape = _check_shape(shape)
        self._kind = kind
        self._dense = dense
        if dense is not None:
            assert dense.dim() == 4 and all(
                d in (1, s) for d, s in zip(dense.shape, self.shape, strict=True)
            ), f"stored {tuple(dense.shape)} does not broadcast to {self.shape}"
            device = dense.device
            if dense.is_floating_point():
                dtype = dense.dtype
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    # ----------------------------------------------------------------- constructors
    @classmethod
    def create_empty(
        cls,
        shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Mask:
        """A mask with no active entry (no tensor is allocated until one is needed)."""
        return cls(shape, _EMPTY, dtype=dtype, device=device)

    @classmethod
    def create_full(
        cls,
        shape: Sequence[int],
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Mask:
        """A mask with every entry active at p = 1: dense attention (no tensor allocated)."""
        return cls(shape, _FULL, dtype=dtype, device=device)

    @classmethod
    def from_dense(cls, probabilities: torch.Tensor, copy: bool = True) -> Mask:
        """A mask from a (B, H, Q, K) tensor: ``bool`` (True = p 1) or probabilities in [0, 1].

        ``copy=False`` takes ownership of a tensor the caller will not touch again (maskers use
        it for tensors they just built); the default copies (and checks the range), so the
        mask never aliases the caller's tensor.
        """
        if probabilities.dim() != 4:
            raise ValueError(
                f"probabilities must have shape (B, H, Q, K), got {tuple(probabilities.shape)}"
            )
        if probabilities.dtype != torch.bool and not probabilities.is_floating_point():
            probabilities = probabilities.to(torch.float32)
        elif copy:
            probabilities = probabilities.clone()
        if copy and probabilities.is_floating_point():
            check_probabilities(probabilities)
        return cls(probabilities.shape, _DENSE, dense=probabilities)

    @classmethod
    def from_row_indices(
        cls,
        shape: Sequence[int],
        indices: torch.Tensor,
        probabilities: torch.Tensor | float | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Mask:
        """A mask from per-row key indices.

        Args:
            shape: (B, H, Q, K).
            indices: (B, H, Q, k) integer key indices; repeated indices add up (clamped at 1).
            probabilities: (B, H, Q, k) probabilities of those entries, a scalar, or None for 1.
                Entries with probability 0 are padding and change nothing.
        """
        shape = _check_shape(shape)
        if indices.dim() != 4 or tuple(indices.shape[:3]) != shape[:3]:
            raise ValueError(
                f"indices must have shape (B, H, Q, k) = {shape[:3]} + (k,), "
                f"got {tuple(indices.shape)}"
            )
        indices = indices.long()
        if isinstance(probabilities, torch.Tensor):
            check_probabilities(probabilities)
        if probabilities is None:
            dense = torch.zeros(shape, dtype=torch.bool, device=indices.device)
            return cls(shape, _DENSE, dense=dense.scatter_(-1, indices, True), dtype=dtype)
        src = row_values(indices, probabilities, dtype)
        dense = torch.zeros(shape, dtype=dtype, device=indices.device)
        dense.scatter_add_(-1, indices, src).clamp_(max=1.0)
        return cls(shape, _DENSE, dense=dense)

    @classmethod
    def from_flat_indices(
        cls,
        shape: Sequence[int],
        indices: torch.Tensor,
        ptr: torch.Tensor | None = None,
        data: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Mask:
        """A mask from CSR-style flat indices.

        Args:
            shape: (B, H, Q, K).
            indices: (nnz,) positions into the flattened (B * H * Q * K) tensor.
            ptr: (B * H * Q + 1,) row pointers: row r owns indices[ptr[r]:ptr[r + 1]]. Optional
                (the positions already say which row they are in); when given it is checked.
            data: (nnz,) probabilities, or None for 1.
        """
        shape = _check_shape(shape)
        numel = shape[0] * shape[1] * shape[2] * shape[3]
        indices = indices.long().reshape(-1)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= numel):
            raise ValueError(f"flat indices must lie in [0, {numel}) for shape {shape}")
        if ptr is not None:
            rows = shape[0] * shape[1] * shape[2]
            if ptr.numel() != rows + 1 or int(ptr[-1]) != indices.numel():
                raise ValueError(
                    f"ptr must have B*H*Q + 1 = {rows + 1} entries ending at nnz = "
                    f"{indices.numel()}, got {ptr.numel()} entries ending at {int(ptr[-1])}"
                )
        if data is not None:
            check_probabilities(data)
        if data is None:
            flat = torch.zeros(numel, dtype=torch.bool, device=indices.device)
            flat[indices] = True
            return cls(shape, _DENSE, dense=flat.view(shape), dtype=dtype)  # (B, H, Q, K)
        src = row_values(indices, data, dtype)
        flat = torch.zeros(numel, dtype=dtype, device=indices.device)
        flat.scatter_add_(0, indices, src).clamp_(max=1.0)
        return cls(shape, _DENSE, dense=flat.view(shape))  # (B, H, Q, K)

    # ----------------------------------------------------------------- conversions
    def to_dense(self) -> torch.Tensor:
        """A new (B, H, Q, K) tensor of probabilities in ``self.dtype`` (free to edit)."""
        if self._dense is not None:
            return self._materialize(self.dtype)
        fill = 1.0 if self._kind == _FULL else 0.0
        return torch.full(self.shape, fill, dtype=self.dtype, device=self.device)

    def dense_view(self) -> torch.Tensor | None:
        """The stored tensor, ``bool`` or float, broadcastable to (B, H, Q, K) (it may have
        dimensions of size 1), or None for a full/empty flag.

        For hot paths that must not copy: read only, never write into it.
        """
        return self._dense

    @property
    def is_binary(self) -> bool:
        """True when every active entry has p = 1 (known without looking at values)."""
        return self._dense is None or self._dense.dtype == torch.bool

    def to_row_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, probabilities), both (B, H, Q, k) with k the largest active count of a row.

        Rows with fewer active entries are padded with probability 0 (index 0), which
        :meth:`from_row_indices` ignores, so the round trip is exact.
        """
        dense = self.to_dense()
        k = int((dense > 0).sum(-1).max()) if dense.numel() else 0
        probs, idx = torch.topk(dense, k, dim=-1, sorted=True)
        idx = idx.masked_fill(probs == 0, 0)
        return idx, probs

    def to_flat_indices(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(indices (nnz,), ptr (B*H*Q + 1,), data (nnz,)): the CSR-style form, rows in order."""
        flat = self.to_dense().reshape(-1)  # (B*H*Q*K,)
        indices = torch.nonzero(flat, as_tuple=False).reshape(-1)
        rows = self.shape[0] * self.shape[1] * self.shape[2]
        per_row = (flat.view(rows, self.shape[3]) > 0).sum(-1)  # (B*H*Q,)
        ptr = torch.zeros(per_row.numel() + 1, dtype=torch.long, device=flat.device)
        ptr[1:] = torch.cumsum(per_row, 0)
        return indices, ptr, flat[indices]

    # ----------------------------------------------------------------- operations
    def merge(self, other: Mask) -> Mask:
        """A new mask: the entry-wise sum of both masks, clamped at 1."""
        if self.shape != other.shape:
            raise ValueError(f"cannot merge masks of shapes {self.shape} and {other.shape}")
        if self._kind == _FULL or other._kind == _FULL:
            return Mask.create_full(self.shape, self.dtype, self.device)
        if other._dense is None:
            return self._copy()
        if self._dense is None:
            return other._copy()
        if self.is_binary and other.is_binary:
            return Mask(self.shape, _DENSE, torch.logical_or(self._dense, other._dense), self.dtype)
        dense = torch.add(self._probabilities(), other._probabilities()).clamp_(max=1.0)
        return Mask(self.shape, _DENSE, dense=dense)

    def with_active(self, where: torch.Tensor) -> Mask:
        """A new mask with p = 1 wherever ``where`` (bool, broadcastable to (B, H, Q, K)) holds.

        Entries elsewhere are unchanged, so this only ever adds (merge semantics).
        """
        if self._kind == _FULL:
            return Mask.create_full(self.shape, self.dtype, self.device)
        where = as_4d(where, self.shape)
        if self._dense is None:  # stays as small as ``where`` (a copy: never alias it)
            return Mask(self.shape, _DENSE, where.to(torch.bool, copy=True), self.dtype)
        if self.is_binary:
            return Mask(self.shape, _DENSE, torch.logical_or(self._dense, where), self.dtype)
        return Mask(self.shape, _DENSE, torch.where(where, 1.0, self._dense), self.dtype)

    def with_active_indices(
        self, indices: torch.Tensor, probabilities: torch.Tensor | float | None = None
    ) -> Mask:
        """A new mask with the (B, H, Q, k) ``indices`` made active.

        ``probabilities``: None (p = 1), a (B, H, Q, k) ``bool`` tensor saying which picks to
        add at p = 1, or float probabilities (a tensor or a scalar). Each entry becomes
        max(old p, new p), so a pick with probability 0 / False changes nothing.
        """
        if self._kind == _FULL:
            return Mask.create_full(self.shape, self.dtype, self.device)
        flags: torch.Tensor | bool | None = None
        if probabilities is None:
            flags = True
        elif isinstance(probabilities, torch.Tensor) and probabilities.dtype == torch.bool:
            flags = probabilities
        if flags is not None and self.is_binary:
            base = self._materialize(torch.bool)  # a new full (B, H, Q, K) tensor
            return Mask(self.shape, _DENSE, scatter_max_(base, indices, flags), self.dtype)
        src = row_values(indices, probabilities, self.dtype)
        base = self._materialize(self.dtype)
        return Mask(self.shape, _DENSE, scatter_max_(base, indices, src))

    def restricted(self, where: torch.Tensor) -> Mask:
        """A new mask with every entry outside ``where`` (bool, broadcastable to (B, H, Q, K))
        set to 0. Maskers only add; the research attention uses this for the keys an eviction
        removed from the cache."""
        where = as_4d(where, self.shape)
        if self._kind == _EMPTY:
            return self._copy()
        if self._kind == _FULL:
            return Mask(self.shape, _DENSE, where.to(torch.bool, copy=True), self.dtype)
        assert self._dense is not None
        if self.is_binary:
            return Mask(self.shape, _DENSE, torch.logical_and(self._dense, where), self.dtype)
        return Mask(self.shape, _DENSE, torch.where(where, self._dense, 0.0), self.dtype)

    def active(self) -> torch.Tensor | None:
        """A bool tensor broadcastable to (B, H, Q, K) of active entries (read only: it may be
        the stored tensor), or None for a full/empty flag."""
        if self._dense is None or self._dense.dtype == torch.bool:
            return self._dense
        return self._dense > 0

    def density(self) -> torch.Tensor:
        """Active entries over all entries, as a 0-dim float32 tensor (no device sync)."""
        if self._dense is None:
            value = 1.0 if self._kind == _FULL else 0.0
            return torch.tensor(value, dtype=torch.float32, device=self.device)
        if self._dense.numel() == 0:
            return torch.zeros((), dtype=torch.float32, device=self.device)
        count = torch.count_nonzero(self._dense).to(torch.float32)
        return count / self._dense.numel()  # a broadcast dimension repeats the same fraction

    def is_full(self) -> bool:
        """Whether every entry is active with p = 1 (synchronises for a dense mask)."""
        if self._dense is None:
            return self._kind == _FULL or 0 in self.shape
        if self.is_binary:
            return bool(self._dense.all())
        return bool((self._dense == 1).all())

    def is_empty(self) -> bool:
        """Whether no entry is active (synchronises for a dense mask)."""
        if self._dense is None:
            return self._kind == _EMPTY or 0 in self.shape
        return not bool(self._dense.any())

    @property
    def is_full_flag(self) -> bool:
        """True when the mask is known to be full without looking at a tensor (cheap)."""
        return self._kind == _FULL

    @property
    def is_empty_flag(self) -> bool:
        """True when the mask is known to be empty without looking at a tensor (cheap)."""
        return self._kind == _EMPTY

    def render(self, batch: int = 0, head: int = 0) -> str:
        """The (Q, K) grid of one (batch, head): ``#`` p = 1, ``+`` 0 < p < 1, ``.`` p = 0."""
        grid = self.to_dense()[batch, head]
        chars = [["#" if p >= 1 else "+" if p > 0 else "." for p in row] for row in grid.tolist()]
        return "\n".join("".join(row) for row in chars)

    def _probabilities(self) -> torch.Tensor:
        """The stored tensor as float probabilities (may be the stored tensor: read only)."""
        assert self._dense is not None
        return self._dense.to(self.dtype)

    def _materialize(self, dtype: torch.dtype) -> torch.Tensor:
        """A new, full-size (B, H, Q, K) tensor of this mask in ``dtype`` (bool or float)."""
        out = torch.empty(self.shape, dtype=dtype, device=self.device)
        if self._dense is None:
            return out.fill_(self._kind == _FULL)
        return out.copy_(self._dense)  # broadcasts and converts in one pass

    def _copy(self) -> Mask:
        dense = None if self._dense is None else self._dense.clone()
        return Mask(self.shape, self._kind, dense=dense, dtype=self.dtype, device=self.device)

    def __repr__(self) -> str:
        form = "bool" if self._kind == _DENSE and self.is_binary else self._kind
        return f"Mask(shape={self.shape}, form={form}, dtype={self.dtype})"
