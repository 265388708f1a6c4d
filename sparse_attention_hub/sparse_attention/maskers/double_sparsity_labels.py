"""Double Sparsity's label cache: the keys' fake-quantised label channels, stored compactly.

The official fake quantisation (:func:`pseudo_quantize`) maps each label vector (r channels)
to ``2**bits`` levels between its min and max and back to fp32: ``level / scale + low``
(:func:`quantize` / :func:`dequantize`, the same fp32 ops). The cache stores each key's levels
(uint8 up to 8 bits, int16 up to 15) and its fp32 low and scale (:func:`encode`), from which
the fp32 labels are rebuilt bit for bit (:attr:`LabelCache.labels`). At Llama-3.1-8B's shape
and the defaults (H = 32 per-query-head lists, r = 16, 4 bits) that is 0.38x the bf16 K (fp32
labels would be 1.0x); unquantised labels (``label_bits`` 16) are stored in the keys' dtype
(0.5x), whose upcast is exact.

Scores (:meth:`LabelCache.scores_of`): q . label = (q . level) / scale + (sum of q) * low, the
same sum in another order (it differs from the product with the fp32 labels by fp32 rounding,
a few ulp; the official code computes all of it in fp16). Measured on the CPU at K = 32k,
H = 32, r = 16, one query: 1.4 ms for the product with stored fp32 labels, 2.3 ms this way over
4k-key chunks, 7.0 ms rebuilding the fp32 labels chunk by chunk and 23 ms rebuilding them at
once (which had doubled the whole decode step, 22.6 -> 46.0 ms, ``bench/attention_overhead.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Parts = tuple[torch.Tensor, ...]


def level_dtype(bits: int) -> torch.dtype:
    """The smallest dtype of the levels 0 .. 2**bits - 1 (bits <= 15)."""
    return torch.uint8 if bits <= 8 else torch.int16


def quantize(x: torch.Tensor, bits: int) -> Parts:
    """(levels (..., r) :func:`level_dtype`, low (..., 1) fp32, scale (..., 1) fp32) of the
    official min-max fake quantisation of ``x`` (..., r) fp32 to ``2**bits`` levels (bits <=
    15); a constant vector gets scale 1 and level 0."""
    levels = 2**bits - 1
    low, high = torch.aminmax(x, dim=-1, keepdim=True)  # (..., 1) each
    span = high - low
    scale = levels / torch.where(span == 0, torch.ones_like(span), span)
    out = x - low  # one new tensor, then in place
    out.mul_(scale).round_().clamp_(0, levels)
    return out.to(level_dtype(bits)), low, scale


def dequantize(levels: torch.Tensor, low: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(..., r) fp32 ``levels / scale + low``: the labels :func:`pseudo_quantize` returns (one
    fused op after the upcast: ``low + 1 * (levels / scale)`` rounds as the two ops do)."""
    labels = levels.float()
    return torch.addcdiv(low, labels, scale, out=labels)  # in place


def pseudo_quantize(x: torch.Tensor, bits: int) -> torch.Tensor:
    """The official per-vector fake quantisation of ``x`` (..., r): min-max over the last
    dimension to ``2**bits`` levels, rounded, dequantised (a constant vector is unchanged);
    ``bits`` >= 16 returns ``x``."""
    if bits >= 16:
        return x
    return dequantize(*quantize(x, bits))


def encode(picked: torch.Tensor, bits: int) -> Parts:
    """The cache parts of the label channels ``picked`` (B, Hc, n, r) in the keys' dtype:
    ``(levels, low, scale)`` of :func:`quantize` below 16 bits, else ``(picked,)`` (no
    quantisation; its fp32 upcast is the labels)."""
    if bits >= 16:
        return (picked,)
    return quantize(picked.float(), bits)


@dataclass(frozen=True)
class LabelCache:
    """The label cache of the keys: ``parts`` (each (B, Hc, n + room, ...)): (levels, low,
    scale), or (labels,) in any float dtype (see the module); the first ``length`` keys are
    the state's. A tensor given as ``parts`` is read as ``(labels,)``.

    The buffers have room past ``length`` (an eighth more, at least 256 keys), so a decode step
    writes its key's parts in place instead of copying the cache; they are reallocated (twice
    the keys) when full. A cut state shares the buffers: its next extension overwrites the keys
    that were cut, which no state holds any more (``MaskerStates`` replaces the entry).
    """

    parts: Parts
    length: int

    def __post_init__(self) -> None:
        if isinstance(self.parts, torch.Tensor):
            object.__setattr__(self, "parts", (self.parts,))

    @property
    def buffer(self) -> torch.Tensor:
        """The first part's buffer (B, Hc, n + room, ...)."""
        return self.parts[0]

    @property
    def labels(self) -> torch.Tensor:
        """(B, Hc, K, r) fp32 labels of the state's keys (a new tensor, or a view of fp32
        labels)."""
        return self.labels_of(0, self.length)

    def scores_of(self, q: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """(B, Hc, R, stop - start) fp32 ``q`` (B, Hc, R, r) times the labels of the keys
        [start, stop), without rebuilding them from stored levels: with label = low + level /
        scale per key, q . label = (q . level) / scale + (sum of q) * low (one upcast of the
        levels and one fused op on (R, keys), not two passes over (keys, r) fp32 labels)."""
        views = [part[:, :, start:stop] for part in self.parts]
        if len(views) == 1:
            return q @ views[0].float().transpose(-1, -2)
        levels, low, scale = views  # (B, Hc, n, r), (B, Hc, n, 1) twice
        dots = q @ levels.float().transpose(-1, -2)  # (B, Hc, R, n)
        offset = q.sum(-1, keepdim=True) * low.transpose(-1, -2)  # (B, Hc, R, n)
        return offset.addcdiv_(dots, scale.transpose(-1, -2))

    def labels_of(self, start: int, stop: int) -> torch.Tensor:
        """(B, Hc, stop - start, r) fp32 labels of the state's keys [start, stop)."""
        views = [part[:, :, start:stop] for part in self.parts]
        return views[0].float() if len(views) == 1 else dequantize(*views)

    @staticmethod
    def of(parts: Parts | torch.Tensor, room: int | None = None) -> LabelCache:
        """A cache of ``parts`` (each (B, Hc, n, ...)) with ``room`` free key slots after."""
        parts = (parts,) if isinstance(parts, torch.Tensor) else parts
        n = parts[0].shape[2]
        room = max(n // 8, 256) if room is None else room
        buffers = []
        for part in parts:
            buffer = part.new_empty((*part.shape[:2], n + room, *part.shape[3:]))
            buffer[:, :, :n] = part
            buffers.append(buffer)
        return LabelCache(tuple(buffers), n)

    def extended(self, new: Parts | torch.Tensor) -> LabelCache:
        """This cache plus the parts ``new`` (each (B, Hc, n, ...)) of the next keys."""
        new = (new,) if isinstance(new, torch.Tensor) else new
        end = self.length + new[0].shape[2]
        writable = not self.buffer.is_inference() or torch.is_inference_mode_enabled()
        if end > self.buffer.shape[2] or not writable:
            joined = tuple(
                torch.cat([part[:, :, : self.length], more], dim=2)
                for part, more in zip(self.parts, new, strict=True)
            )
            return LabelCache.of(joined, room=end)
        for part, more in zip(self.parts, new, strict=True):
            part[:, :, self.length : end] = more
        return LabelCache(self.parts, end)

    def cut(self, start: int, stop: int) -> LabelCache:
        """The keys [start, stop) (sharing the buffers)."""
        return LabelCache(tuple(part[:, :, start:] for part in self.parts), stop - start)


__all__ = ["LabelCache", "dequantize", "encode", "level_dtype", "pseudo_quantize", "quantize"]
