"""Offline channel calibration for Double Sparsity (``sah calibrate double-sparsity``).

The official statistic (andy-yang-1/DoubleSparse, ``config/offline_calibration.py``,
``get_q_hook`` / ``get_k_hook``): forward hooks on every ``q_proj`` and ``k_proj`` read the
projection outputs, i.e. q and k *before* RoPE; per 512-token block of calibration text the
mean over tokens of |q| is taken for every head and channel, these are summed over blocks, and
each head's channels are ranked by it, largest first. "q" ranks per query head, "k" the same on
k per KV head. The result is written in the official JSON layout that the ``double_sparsity``
masker reads (``model.layers.{i}.self_attn.q_proj`` / ``k_proj`` -> per-head lists).

Differences from the official script, all written down here:

- The official "qk" statistic (``get_qk_hook``) is not reproduced: it is known to be broken
  (its ``name not in output_dict`` test never matches the ``.qk_proj`` key, so every block
  overwrites the previous one, and it mixes heads). Files written here hold ``q_proj`` and
  ``k_proj`` only; the masker still reads ``qk_proj`` from official files.
- Calibration text: the official script streams ``mit-han-lab/pile-val-backup`` (256 samples
  of at most 512 tokens, concatenated, cut into 512-token blocks). Here it is the texts of
  ``--texts`` (or a built-in text, so the step runs offline), concatenated and cut into
  ``block_size`` blocks up to ``num_tokens`` tokens; a text shorter than one block gives one
  shorter block.
- Layer keys are written as ``model.layers.{i}.self_attn.*`` for the layer index found in
  the module name, whatever the model's own module prefix, because that is what the masker
  reads. Ties in the statistic are ranked by channel index (a stable sort).
- The sums are accumulated in fp32 whatever the model's dtype.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sparse_attention_hub.offline.calibration_text import DEFAULT_CALIBRATION_TEXT
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
    layer_key,
    write_channel_file,
)

logger = logging.getLogger(__name__)

#: The official block length.
BLOCK_SIZE = 512
SELECTIONS = ("q", "k")
_PROJECTION = re.compile(r"(?:^|\.)layers\.(\d+)\.(?:self_attn|attention|attn)\.(q|k)_proj$")


def calibration_blocks(
    tokenizer: Any, texts: Sequence[str], num_tokens: int, block_size: int = BLOCK_SIZE
) -> list[torch.Tensor]:
    """The texts' token ids concatenated and cut into (1, block_size) blocks, at most
    ``num_tokens`` tokens in all (one shorter block when there are fewer than block_size)."""
    if num_tokens < 1 or block_size < 1:
        raise ValueError(f"num_tokens={num_tokens} and block_size={block_size} must be >= 1")
    ids: list[int] = []
    for text in texts:
        ids += tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) >= num_tokens:
            break
    ids = ids[:num_tokens]
    if not ids:
        raise ValueError("the calibration texts encode to no token")
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        logger.warning(
            "only %d calibration tokens: one block shorter than %d", len(ids), block_size
        )
        return [torch.tensor([ids])]
    if len(ids) < num_tokens:
        logger.warning("the calibration texts give %d tokens, fewer than %d", len(ids), num_tokens)
    return [torch.tensor([ids[i * block_size : (i + 1) * block_size]]) for i in range(n_blocks)]


def _head_sizes(config: Any) -> tuple[int, int, int]:
    """(H, Hkv, D) of a transformers model config."""
    heads = int(config.num_attention_heads)
    head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return heads, int(kv_heads), int(head_dim)


@torch.no_grad()
def channel_statistics(
    model: Any, blocks: Sequence[torch.Tensor], selections: Sequence[str] = SELECTIONS
) -> dict[tuple[int, str], torch.Tensor]:
    """{(layer, "q" | "k"): (heads, D) fp32} the sum over ``blocks`` of the per-block mean
    |projection output| of every head and channel (pre-RoPE q per query head, k per KV head)."""
    heads, kv_heads, head_dim = _head_sizes(model.config)
    sums: dict[tuple[int, str], torch.Tensor] = {}

    def hook(key: tuple[int, str], rows: int) -> Any:
        def record(module: Any, args: Any, output: Any) -> None:
            y = output[0] if isinstance(output, tuple) else output
            stat = y.detach().float().reshape(-1, rows, head_dim).abs().mean(0).cpu()  # (rows, D)
            sums[key] = stat if key not in sums else sums[key] + stat

        return record

    handles = []
    for name, module in model.named_modules():
        match = _PROJECTION.search(name)
        if match and match.group(2) in selections:
            layer, which = int(match.group(1)), match.group(2)
            rows = heads if which == "q" else kv_heads
            handles.append(module.register_forward_hook(hook((layer, which), rows)))
    if not handles:
        raise ValueError(
            f"{type(model).__name__}: no '<...>.layers.<i>.self_attn.q_proj / k_proj' module to "
            "calibrate (Double Sparsity calibration needs separate q and k projections)"
        )
    device = next(model.parameters()).device
    try:
        for block in tqdm(blocks, desc="double-sparsity calibration", unit="block"):
            model(input_ids=block.to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return sums


def rank_channels(
    sums: dict[tuple[int, str], torch.Tensor],
) -> dict[str, list[list[int]]]:
    """The official table: each head's channels sorted by the statistic, largest first
    (ties by channel index)."""
    table: dict[str, list[list[int]]] = {}
    for (layer, which), stat in sorted(sums.items()):
        order = torch.sort(stat, dim=-1, descending=True, stable=True).indices  # (rows, D)
        table[layer_key(layer, which)] = order.tolist()
    return table


def calibrate_double_sparsity(
    model_name: str,
    out: str | Path,
    texts: Sequence[str] | None = None,
    num_tokens: int = 65_536,
    selections: Sequence[str] = SELECTIONS,
    device: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> Path:
    """Calibrate the channels of ``model_name`` (hub id or local folder) and write ``out``.

    Args:
        texts: calibration texts; None = the built-in text (offline).
        num_tokens: at most this many tokens, in 512-token blocks.
        selections: "q" and/or "k" lists to write.
    """
    from sparse_attention_hub.adapters.hf_loading import (
        check_model_source,
        load_model,
        load_tokenizer,
        prepare_model_kwargs,
        resolve_device,
    )

    bad = [s for s in selections if s not in SELECTIONS]
    if bad or not selections:
        raise ValueError(f"selections must be a non-empty subset of {SELECTIONS}, got {selections}")
    check_model_source(model_name)
    kwargs = prepare_model_kwargs(model_kwargs)
    tokenizer = load_tokenizer(model_name, None, kwargs)
    blocks = calibration_blocks(tokenizer, texts or [DEFAULT_CALIBRATION_TEXT], num_tokens)
    model = load_model(model_name, kwargs, resolve_device(device))
    logger.info(
        "calibrating %s on %d block(s) of <= %d tokens", model_name, len(blocks), BLOCK_SIZE
    )
    table = rank_channels(channel_statistics(model, blocks, selections))
    path = write_channel_file(out, table)
    logger.info("wrote %d channel lists to %s", len(table), path)
    return path


__all__ = [
    "BLOCK_SIZE",
    "calibrate_double_sparsity",
    "calibration_blocks",
    "channel_statistics",
    "rank_channels",
]
