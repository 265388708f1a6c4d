"""The sparse prefill's attention: ``flex_attention`` over one ``BlockMask``, compiled.

``flex_attention`` is compiled once per process (``torch.compile(..., dynamic=False)``; torch
caches a kernel per shape and mask structure, and reuses it across calls and layers: the
block tables and positions are tensors, not constants). A compiled call is padded to a shape
bucket (:func:`bucket_length`: at most 8 lengths per octave, under 1/8 of padding), so a
benchmark whose contexts all differ in length compiles a few kernels, not one per sample;
the compile cache's limit is raised for these calls only (torch's default of 8 kernels would
silently fall back to the eager path, which materialises the scores). The first compiled call's time is
logged once (``logging``). Where compilation fails (no C compiler, an unsupported backend) the
engine falls back to eager ``flex_attention`` for the rest of the process with one warning: the
eager path materialises the (B, H, Q, K) scores. ``SAH_FLEX_EAGER=1`` forces eager (tests on
tiny shapes).

Model arguments: ``scale``; Gemma-2's ``softcap`` as a ``score_mod`` (``softcap * tanh(s /
softcap)`` of the scaled score); GPT-OSS's per-head sink logits from the log-sum-exp (``out *
sigmoid(lse - sink)``, the renormalisation of a softmax with one more logit per head and no
value); GQA with ``enable_gqa`` (K/V are not repeated). On a GPU a block size that is not a
multiple of the kernel's default tiles (128 x 64 in 16-bit) gets tiles that divide it
(:func:`gpu_kernel_options`); a block size that is not a multiple of 16 is refused there (not
yet run on a GPU). Compiled flex on CPU does not return
the log-sum-exp, so a CPU call with sinks runs eager (logged once). The prefill is inference
only: it runs under ``torch.no_grad``.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch.nn.attention.flex_attention import BlockMask, flex_attention

logger = logging.getLogger(__name__)

#: Set to 1 to run flex_attention eagerly (no compilation), e.g. for tests on tiny shapes.
EAGER_ENV = "SAH_FLEX_EAGER"

_compiled: Callable[..., Any] | None = None
_compile_failed = False
_compile_logged = False
_eager_sinks_logged = False


#: The compiled kernels kept per process (shapes x mask structures) before torch recompiles.
RECOMPILE_LIMIT = 256


def bucket_length(length: int, block_size: int) -> int:
    """``length`` rounded up to its shape bucket: a multiple of ``max(block_size,
    2**(bits(length) - 4))``, i.e. of about 1/16 to 1/8 of ``length`` (8 buckets per octave)."""
    step = max(block_size, 2 ** max(0, length.bit_length() - 4))
    return -(-length // step) * step


def _limits() -> dict[str, int]:
    """The dynamo config keys of the compile cache's limits in this torch release."""
    from torch._dynamo import config

    names = ("recompile_limit", "cache_size_limit")  # the second before torch 2.7
    name = next(n for n in names if hasattr(config, n))
    return {name: RECOMPILE_LIMIT}


def _compiled_flex() -> Callable[..., Any]:
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(flex_attention, dynamic=False)
    return _compiled


def _is_compile_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def _eager(*args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():  # flex warns on every eager call: we warned once
        warnings.simplefilter("ignore", UserWarning)
        return flex_attention(*args, **kwargs)


def use_compiled(device: torch.device, needs_lse: bool) -> bool:
    """Whether this call runs the compiled kernel (see the module doc)."""
    global _eager_sinks_logged
    if _compile_failed or os.environ.get(EAGER_ENV, "") == "1":
        return False
    if needs_lse and device.type == "cpu":
        if not _eager_sinks_logged:
            logger.info("sparse prefill: compiled flex on CPU has no log-sum-exp; sinks run eager")
            _eager_sinks_logged = True
        return False
    return True


def _run(compiled: bool, *args: Any, **kwargs: Any) -> Any:
    """One flex_attention call, compiled (falling back to eager for good on a compile error)."""
    global _compile_failed, _compile_logged
    if not compiled:
        return _eager(*args, **kwargs)
    start = time.perf_counter()
    try:
        import torch._dynamo

        with torch._dynamo.config.patch(_limits()):
            result = _compiled_flex()(*args, **kwargs)
    except Exception as exc:
        if not _is_compile_error(exc):
            raise
        _compile_failed = True
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning(
            "sparse prefill: flex_attention could not be compiled (%s); using eager flex, which "
            "materialises the (B, H, Q, K) scores",
            first_line[:200],
        )
        return _eager(*args, **kwargs)
    if not _compile_logged:
        _compile_logged = True
        logger.info(
            "sparse prefill: first compiled flex_attention call (compilation included) took %.1f s",
            time.perf_counter() - start,
        )
    return result


def softcap_score_mod(softcap: float) -> Callable[..., torch.Tensor]:
    """``score_mod``: Gemma-2's ``softcap * tanh(score / softcap)`` of the scaled score."""

    def score_mod(
        score: torch.Tensor, b: torch.Tensor, h: torch.Tensor, q: torch.Tensor, kv: torch.Tensor
    ) -> torch.Tensor:
        return torch.tanh(score / softcap) * softcap

    return score_mod


def flex_prefill(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    block_mask: BlockMask,
    scale: float,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    compiled: bool | None = None,
) -> torch.Tensor:
    """Attention of query (B, H, Q, D) over key (B, Hkv, K, D), value (B, Hkv, K, Dv) on the
    pairs of ``block_mask``: (B, Q, H, Dv) in the query dtype. ``sinks`` (H,) per-head logits.
    A row with no computed pair gives 0 (and only its sink with sinks). A ``block_mask`` built
    for longer (padded, see ``build_block_mask``) lengths pads Q, K and V with zeros to them.
    ``compiled``: None = :func:`use_compiled`."""
    needs_lse = sinks is not None
    if compiled is None:
        compiled = use_compiled(query.device, needs_lse)
    options = gpu_kernel_options(block_mask.BLOCK_SIZE) if compiled and query.is_cuda else None
    q_len = int(query.shape[2])
    q_pad, k_pad = (int(n) for n in block_mask.seq_lengths)
    query = _pad_rows(query, q_pad)
    key, value = _pad_rows(key, k_pad), _pad_rows(value, k_pad)
    kwargs: dict[str, Any] = {
        "score_mod": None if softcap is None else softcap_score_mod(float(softcap)),
        "block_mask": block_mask,
        "scale": float(scale),
        "enable_gqa": key.shape[1] != query.shape[1],
    }
    if options is not None:
        kwargs["kernel_options"] = options
    if needs_lse:
        kwargs.update(_lse_request())
    with torch.no_grad():
        result = _run(compiled, query, key, value.to(query.dtype), **kwargs)
        if needs_lse:
            assert sinks is not None
            out, aux = result
            lse = getattr(aux, "lse", aux).float()  # (B, H, Q), natural log
            weight = torch.sigmoid(lse - sinks.float().reshape(1, -1, 1))  # (B, H, Q)
            out = (out.float() * weight[..., None]).to(query.dtype)
        else:
            out = result
    return out[:, :, :q_len].transpose(1, 2)  # (B, Q, H, Dv)


#: The tiles of the GPU kernel's default configuration in 16-bit (Q rows, K columns): a
#: BlockMask block must be a multiple of them (torch's flex template refuses it otherwise).
DEFAULT_TILES = (128, 64)
#: Triton's smallest tile of a matrix product.
MIN_TILE = 16


def gpu_kernel_options(block_size: tuple[int, int]) -> dict[str, int] | None:
    """``kernel_options`` of a compiled GPU call on a BlockMask of ``block_size`` (Q, KV)
    tokens: None for multiples of the default tiles (128 x 64); else tiles that divide the
    blocks (the largest power of two dividing each, at most 64), so a block of 64, 32 or 48
    compiles instead of failing into the eager path (which materialises the scores).

    Raises:
        ValueError: a block that is not a multiple of 16 (Triton's smallest tile), naming
            ``prefill_block_size`` and what is allowed.
    """
    q_block, kv_block = (int(b) for b in block_size)
    if q_block % DEFAULT_TILES[0] == 0 and kv_block % DEFAULT_TILES[1] == 0:
        return None
    tiles = [b & -b for b in (q_block, kv_block)]  # the largest power of two dividing each
    if min(tiles) < MIN_TILE:
        raise ValueError(
            f"the sparse prefill on a GPU needs blocks that are multiples of {MIN_TILE} tokens "
            f"(the kernel's smallest tile), got {q_block} x {kv_block}; set "
            "ResearchAttentionConfig.prefill_block_size to a multiple of 16 (default 128)"
        )
    return {"BLOCK_M": min(tiles[0], 64), "BLOCK_N": min(tiles[1], 64)}


def _lse_request() -> dict[str, Any]:
    """The flex_attention argument that returns the log-sum-exp: ``return_aux`` (torch >= 2.9;
    its result's ``.lse``) or ``return_lse`` (earlier releases; the tensor itself)."""
    try:
        from torch.nn.attention.flex_attention import AuxRequest
    except ImportError:
        return {"return_lse": True}
    return {"return_aux": AuxRequest(lse=True)}


def _pad_rows(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, length, D): ``x`` (B, H, n, D) with zero rows appended (itself when n = length)."""
    extra = length - int(x.shape[2])
    return x if extra <= 0 else torch.nn.functional.pad(x, (0, 0, 0, extra))
