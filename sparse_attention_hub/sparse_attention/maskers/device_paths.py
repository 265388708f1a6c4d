"""Which path a masker takes where reading a value back to the host costs nothing.

On an accelerator a value read to the host (``.item()``, a boolean-mask index, ``nonzero``,
a top-k whose k depends on the data) makes the host wait for the device every layer and step,
so the decode path of every masker avoids them there, at the price of more work (a full sort
of each row instead of a top-k of the size it needs). On a CPU such a read waits for nothing
and the data-dependent path is the cheaper one. Maskers ask :func:`host_reads_free`; the
op-count test (``tests/sparse_attention/test_op_counts.py``) turns :data:`CPU_READS_FREE` off to
check, on a CPU, the path an accelerator runs.

The same flag picks chunk sizes: on an accelerator a chunked computation takes one chunk when
its budget allows (a fixed number of kernel launches per call at any K); on a CPU an op costs
microseconds to start, and a chunk that stays in the cache between its ops is the faster one
(:func:`chunk_bytes`).
"""

from __future__ import annotations

import torch

#: Take the data-dependent (host-reading) path on a CPU.
CPU_READS_FREE = True


#: Bytes of one chunk on a CPU (:func:`chunk_bytes`): a few MiB, about a core's cache.
CPU_CHUNK_BYTES = 4 << 20


def host_reads_free(tensor: torch.Tensor) -> bool:
    """Whether reading values of ``tensor`` to the host costs no wait (a CPU tensor)."""
    return CPU_READS_FREE and tensor.device.type == "cpu"


def chunk_bytes(tensor: torch.Tensor, budget: int) -> int:
    """Bytes of one chunk of a computation on ``tensor``'s device within ``budget``: the budget
    on an accelerator, at most ``CPU_CHUNK_BYTES`` on a CPU (see the module)."""
    return min(budget, CPU_CHUNK_BYTES) if host_reads_free(tensor) else budget


__all__ = ["CPU_CHUNK_BYTES", "CPU_READS_FREE", "chunk_bytes", "host_reads_free"]
