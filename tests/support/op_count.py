"""Count the aten ops of one attention call, and flag the ones that make the host wait.

:class:`OpCounter` is a ``TorchDispatchMode``: it sees every aten op as dispatched below
autograd (composite ops already decomposed, e.g. ``matmul`` as ``bmm``/``mm``), which is what a
GPU launches, one kernel or more per op. It records the ops that wait for the device
(:func:`sync_reason`): a device-to-host read (``.item()``, ``int(t)``, ``bool(t)``: all
``aten._local_scalar_dense``), an output whose size depends on the values (``nonzero``,
``masked_select``, boolean-mask indexing, ``unique``, ``bincount``, ``repeat_interleave`` with
a tensor of repeats and no ``output_size``), and ops that return a host bool (``equal``,
``allclose``). ``Tensor.tolist()`` reads the data without dispatching an op: it is not seen.

:func:`decode_call` builds one decode call of one layer for a masker example: a research
attention over ``[Sink(16), Local(16), config]``, a first call (Q=1) over K-1 keys that builds
the state of a stateful masker, then the counted call (Q=1) over all K keys, which extends it
by one key. Small heads and head size (H=4, Hkv=2, D=16) and bf16 K/V (the upcast path a GPU
runs) let K=128k run in seconds on a CPU.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparse_attention_hub.sparse_attention import ResearchAttention
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    Masker,
    MaskerConfig,
    SinkMaskerConfig,
    create_masker,
    masker_class,
)
from sparse_attention_hub.sparse_attention.maskers.examples import (
    ARTEFACT_EXAMPLES,
    example_masker_configs,
)
from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape

#: Ops that always wait for the device (their result size or value is read on the host).
SYNC_OPS = frozenset(
    {
        "aten._local_scalar_dense",  # .item(), int(t), float(t), bool(t)
        "aten.nonzero",  # also torch.where(cond), argwhere
        "aten.masked_select",
        "aten._unique2",
        "aten.unique_dim",
        "aten.unique_consecutive",
        "aten.bincount",  # reads max() for its length
        "aten.equal",
        "aten.allclose",
        "aten.is_nonzero",
    }
)

#: The decode shape: one layer, B=1, H=4 query heads over Hkv=2 KV heads, D=16, bf16 K/V.
DECODE_SHAPE = ModelShape(layers=1, heads=4, kv_heads=2, head_dim=16)


def sync_reason(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """Why ``func(*args, **kwargs)`` makes the host wait for the device, or None if it does not."""
    name = str(func.overloadpacket)  # e.g. "aten.nonzero"
    if name in SYNC_OPS:
        return name
    if name in ("aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_"):
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        for index in indices or ():
            if isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8):
                return f"{name} with a boolean mask (nonzero)"
    # repeat_interleave(self, repeats_tensor) decomposes into this overload: its length is
    # repeats.sum(), read on the host unless the caller passes output_size.
    if str(func) == "aten.repeat_interleave.Tensor" and kwargs.get("output_size") is None:
        return "aten.repeat_interleave without output_size"
    return None


class OpCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside ``with OpCounter() as ops:``.

    Attributes:
        counts: op overload packet name (``"aten.mm"``) -> calls.
        syncs: the reason of every op that waited for the device, in order.
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.syncs: list[str] = []

    @property
    def total(self) -> int:
        """All ops counted."""
        return sum(self.counts.values())

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        self.counts[str(func.overloadpacket)] += 1
        reason = sync_reason(func, args, kwargs)
        if reason is not None:
            self.syncs.append(reason)
        return func(*args, **kwargs)


def count_ops(fn: Callable[[], object]) -> OpCounter:
    """The ops ``fn()`` dispatches (under ``torch.no_grad()``)."""
    with torch.no_grad(), OpCounter() as ops:
        fn()
    return ops


def example_configs(folder: Path, shape: ModelShape = DECODE_SHAPE) -> list[MaskerConfig]:
    """Every example config of every registered masker (``maskers.examples``); the artefact
    maskers write their artefacts for ``shape`` under ``folder``."""
    configs = example_masker_configs()
    for name in sorted(ARTEFACT_EXAMPLES):
        configs.extend(ARTEFACT_EXAMPLES[name](shape, folder / name))
    return configs


def example_ids(shape: ModelShape = DECODE_SHAPE) -> list[str]:
    """``<masker name>-<n>`` for each of :func:`example_configs`, in the same order (no
    artefact is written: for test ids at collection time)."""
    names = [masker_class(c).name for c in example_masker_configs()]
    names += [name for name in sorted(ARTEFACT_EXAMPLES) for _ in range(_artefact_count(name))]
    seen: collections.Counter[str] = collections.Counter()
    ids = []
    for name in names:
        ids.append(f"{name}-{seen[name]}")
        seen[name] += 1
    return ids


def _artefact_count(name: str) -> int:
    """How many example configs the artefact builder of ``name`` returns."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return len(ARTEFACT_EXAMPLES[name](DECODE_SHAPE, Path(folder)))


@dataclasses.dataclass
class DecodeCall:
    """One prepared decode call: ``run()`` is the counted call (Q=1 over ``keys`` keys)."""

    attention: ResearchAttention
    run: Callable[[], object]
    keys: int


def decode_call(
    config: MaskerConfig,
    k_len: int,
    shape: ModelShape = DECODE_SHAPE,
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 0,
) -> DecodeCall:
    """A research attention over ``[Sink(16), Local(16), config]`` whose state (if any) is
    built on ``k_len - 1`` keys by a first Q=1 call; ``run()`` is the next decode call."""
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(1, shape.heads, 2, shape.head_dim, generator=g) * 4).to(dtype)
    k = torch.randn(1, shape.kv_heads, k_len, shape.head_dim, generator=g).to(dtype)
    v = torch.randn(1, shape.kv_heads, k_len, shape.head_dim, generator=g).to(dtype)
    attention = ResearchAttention(
        [
            *_create([SinkMaskerConfig(sink_size=16), LocalMaskerConfig(window_size=16)]),
            *_create([config]),
        ]
    )

    def call(step: int) -> object:
        keys = k_len - 1 + step
        return attention.custom_attention(
            None,
            q[:, :, step : step + 1],
            k[:, :, :keys],
            v[:, :, :keys],
            None,
            layer_idx=0,
            query_start=keys - 1,
        )

    with torch.no_grad():
        call(0)  # builds the state on k_len - 1 keys
    return DecodeCall(attention, lambda: call(1), k_len)


def _create(configs: list[MaskerConfig]) -> list[Masker]:
    return [create_masker(c) for c in configs]
