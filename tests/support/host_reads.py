"""The aten ops that make the host wait for the device, counted over one masker call."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparse_attention_hub.sparse_attention import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    MaskerConfig,
    SinkMaskerConfig,
    create_masker,
)

#: A value read to the host (``.item()``, ``bool()``, ``int()``) or an output sized by the data.
HOST_READS = ("aten._local_scalar_dense", "aten.nonzero", "aten.masked_select")


class OpLog(TorchDispatchMode):
    """Counts every aten op run inside the ``with`` block by name (``ops``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    def host_reads(self) -> dict[str, int]:
        """The ops of :data:`HOST_READS` that ran, with their counts."""
        return {op: n for op, n in self.ops.items() if op.startswith(HOST_READS)}


def decode_call_ops(config: MaskerConfig, k_len: int = 512, h: int = 4, h_kv: int = 2) -> Any:
    """The :class:`OpLog` of one decode call of ``config``'s masker (one query row at the last
    key, after a sink of 4 and a window of 8, its state built beforehand)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, h, 1, 16, generator=g) * 4
    k, v = torch.randn(2, 1, h_kv, k_len, 16, generator=g)
    inputs = AttentionInputs(q, k, v, None, layer_idx=0, query_start=k_len - 1)
    previous = Mask.create_empty(inputs.mask_shape)
    for base in (SinkMaskerConfig(4), LocalMaskerConfig(8)):
        previous = create_masker(base).add_mask(inputs, previous)
    masker = create_masker(config)
    if masker.is_stateful:
        inputs = dataclasses.replace(inputs, state=masker.build_state(inputs))  # type: ignore[attr-defined]
    with OpLog() as log:
        masker.add_mask(inputs, previous)
    return log
