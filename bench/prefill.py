"""The sparse prefill's speed: the engine's compiled flex prefill against SDPA, and each
prefill masker's time and density, on one Llama-3.1-8B attention layer.

One layer's context prefill (32 query heads, 8 KV heads, head_dim 128, bf16; ``--heads`` keeps
the 4:1 grouping unless ``--kv-heads`` says otherwise) of random queries, keys and values at
each of ``--lengths`` (8k and 16k), on ``--device`` (CPU by default), batch 1. The arms:

- ``sdpa``: ``scaled_dot_product_attention(is_causal=True, enable_gqa=True)``, the baseline;
- ``flex_dense``: the engine's dense prefill, every causal block, through ``SparsePrefill``
  (the call ``ResearchAttention.prefill_attention`` makes on a dense layer);
- every registered prefill masker (read from the registry, so a new method is covered), each
  with its config's defaults; a config field without a default takes :data:`ARM_PARAMS`
  (``block_top_k`` at 10 % of the causal blocks: the oracle of the issue-26 target).

A masker arm times its ``select()`` apart (``select_s``) from its attention (``attention_s``:
the same ``SparsePrefill`` call on the selection made beforehand, BlockMask build and kernel);
``block_mask_s`` is the BlockMask build alone (``build_block_mask``). ``time_s`` is their sum.
Steady times are medians of ``--repeats`` calls after the first call, whose time
(``first_call_s``, compilation included) is reported apart (``compile_s`` = first call -
steady). Density: computed / causal pairs, the engine's ``prefill_density`` metric function
(``computed_pairs``) on the arm's BlockMask.

Targets (issue 26), per length: flex dense / SDPA <= 1.5; ``block_top_k`` attention at 10 % /
flex dense <= 0.35 (the attention alone: the oracle's exact-score selection costs more than
dense attention by construction; its ``time_over_flex_dense`` is reported too).

    .venv/bin/python bench/prefill.py [--lengths 8192 16384] [--heads 32] [--repeats 3]

The last line printed is one JSON object; readable lines go to the log before it.
``SAH_FLEX_EAGER=1`` runs flex eagerly (tiny shapes only: eager flex materialises the scores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from sparse_attention_hub.sparse_attention.prefill import engine
from sparse_attention_hub.sparse_attention.prefill.attention import SparsePrefill, prefill_inputs
from sparse_attention_hub.sparse_attention.prefill.base import (
    PrefillInputs,
    PrefillMasker,
    PrefillMaskerConfig,
    PrefillSelection,
)
from sparse_attention_hub.sparse_attention.prefill.block_mask import build_block_mask, geometry_of
from sparse_attention_hub.sparse_attention.prefill.metrics import computed_pairs
from sparse_attention_hub.sparse_attention.prefill.registry import (
    available_prefill_maskers,
    create_prefill_masker,
    prefill_config_from_dict,
)
from sparse_attention_hub.sparse_attention.research_config import DEFAULT_SCORE_BUDGET_BYTES

log = logging.getLogger("prefill")

SDPA, FLEX_DENSE, ORACLE = "sdpa", "flex_dense", "block_top_k"
TARGETS = {"flex_dense_over_sdpa": 1.5, "block_top_k_over_flex_dense": 0.35}

#: Parameters of the config fields that have no default (the rest keep their defaults).
ARM_PARAMS: dict[str, dict[str, Any]] = {
    "sink": {"sink_size": 128},
    "local": {"window_size": 1024},
    "block_top_k": {"block_budget": 0.1},
}


def arm_config(name: str) -> PrefillMaskerConfig:
    """The config of registered prefill masker ``name``: its defaults plus :data:`ARM_PARAMS`
    (ValueError from the registry for a masker with a required field and no entry here)."""
    return prefill_config_from_dict(name, ARM_PARAMS.get(name, {}))


@dataclasses.dataclass(frozen=True)
class _FixedConfig(PrefillMaskerConfig):
    pass


class FixedSelection(PrefillMasker):
    """A masker that returns a selection made beforehand (the attention timed without it)."""

    config_class: ClassVar[type[PrefillMaskerConfig]] = _FixedConfig

    def __init__(self, selection: PrefillSelection) -> None:
        super().__init__(_FixedConfig())
        self.selection = selection

    def select(self, inputs: PrefillInputs) -> PrefillSelection:
        return self.selection


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """(seconds, result) of one call, synchronised on an accelerator."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def first_and_median(fn: Callable[[], Any], repeats: int, device: torch.device) -> dict[str, Any]:
    """``first_call_s`` (compilation included), ``steady_s`` (median of ``repeats`` calls),
    ``result`` (of the first call)."""
    first, result = timed(fn, device)
    steady = statistics.median(timed(fn, device)[0] for _ in range(repeats))
    return {"first_call_s": first, "steady_s": steady, "result": result}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer's prefill call: query (1, H, L, D), key, value (1, Hkv, L, D)."""

    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    block_size: int
    budget_bytes: int = DEFAULT_SCORE_BUDGET_BYTES

    @property
    def kwargs(self) -> dict[str, Any]:
        return {"layer_idx": 0, "query_start": 0}

    def inputs(self) -> PrefillInputs:
        return prefill_inputs(
            self.query, self.key, None, self.kwargs, self.block_size, self.budget_bytes
        )

    def prefill(self, maskers: Sequence[PrefillMasker], dense: bool = False) -> torch.Tensor:
        sparse = SparsePrefill(maskers, self.block_size, self.budget_bytes)
        return sparse.attention(self.query, self.key, self.value, None, self.kwargs, dense=dense)


def make_layer(args: argparse.Namespace, length: int, device: torch.device) -> Layer:
    """Random bf16 (``--dtype``) inputs of one layer at ``length`` tokens."""
    gen = torch.Generator().manual_seed(0)
    dtype = getattr(torch, args.dtype)
    kv_heads = args.kv_heads or max(1, args.heads // 4)

    def rand(heads: int) -> torch.Tensor:
        return torch.randn(1, heads, length, args.head_dim, generator=gen).to(device, dtype)

    return Layer(rand(args.heads), rand(kv_heads), rand(kv_heads), args.block_size)


def density_of(layer: Layer, selections: list[PrefillSelection]) -> float:
    """Computed / causal pairs of the BlockMask of ``selections`` (``computed_pairs``)."""
    geometry = geometry_of(layer.inputs())
    block_mask, full, partial = build_block_mask(selections, geometry, layer.query.device)
    assert block_mask.mask_mod is not None
    computed, causal = computed_pairs(
        geometry, full, partial, block_mask.mask_mod, layer.budget_bytes
    )
    return float(computed) / max(1, int(causal))


def time_sdpa(layer: Layer, repeats: int) -> dict[str, Any]:
    """The baseline: SDPA's causal kernel on the same inputs (K/V not repeated)."""

    def run() -> torch.Tensor:
        with torch.no_grad():
            return torch.nn.functional.scaled_dot_product_attention(
                layer.query, layer.key, layer.value, is_causal=True, enable_gqa=True
            )

    times = first_and_median(run, repeats, layer.query.device)
    return {"first_call_s": round(times["first_call_s"], 4), "time_s": round(times["steady_s"], 4)}


def time_flex_dense(layer: Layer, repeats: int) -> dict[str, Any]:
    """The engine's dense prefill (every causal block), as a dense layer runs it."""
    device = layer.query.device
    times = first_and_median(lambda: layer.prefill([], dense=True), repeats, device)
    inputs = layer.inputs()
    nq, nk = inputs.num_blocks(layer.block_size)
    all_blocks = torch.ones(1, inputs.num_heads, nq, nk, dtype=torch.bool, device=device)
    selection = PrefillSelection(all_blocks, layer.block_size)
    build_s, _ = timed(lambda: build_block_mask([selection], geometry_of(inputs), device), device)
    return {
        "density": density_of(layer, [selection]),
        "first_call_s": times["first_call_s"],
        "compile_s": max(0.0, times["first_call_s"] - times["steady_s"]),
        "select_s": 0.0,
        "block_mask_s": build_s,
        "attention_s": times["steady_s"],
        "time_s": times["steady_s"],
    }


def time_masker(layer: Layer, name: str, repeats: int) -> dict[str, Any]:
    """One registered masker: its select() and its attention on that selection, apart."""
    device = layer.query.device
    config = arm_config(name)
    masker = create_prefill_masker(config)
    inputs = layer.inputs()
    select = first_and_median(lambda: masker.select(inputs), repeats, device)
    selection = select["result"]
    fixed = FixedSelection(selection)
    attention = first_and_median(lambda: layer.prefill([fixed]), repeats, device)
    geometry = geometry_of(inputs)
    builds = [timed(lambda: build_block_mask([selection], geometry, device), device)[0]]
    builds += [timed(lambda: build_block_mask([selection], geometry, device), device)[0]]
    return {
        "params": dataclasses.asdict(config),
        "density": density_of(layer, [selection]),
        "first_call_s": attention["first_call_s"],
        "compile_s": max(0.0, attention["first_call_s"] - attention["steady_s"]),
        "select_s": select["steady_s"],
        "block_mask_s": min(builds),
        "attention_s": attention["steady_s"],
        "time_s": select["steady_s"] + attention["steady_s"],
    }


def target(ratio: float, name: str) -> dict[str, Any]:
    return {"ratio": round(ratio, 3), "target": TARGETS[name], "met": ratio <= TARGETS[name]}


def run_length(layer: Layer, maskers: list[str], repeats: int) -> dict[str, Any]:
    """Every arm at one length, ratios to the flex dense prefill, the targets."""
    sdpa = time_sdpa(layer, repeats)
    log.info("L=%d sdpa: %.3f s (first call %.3f s)", layer.query.shape[2], sdpa["time_s"],
             sdpa["first_call_s"])  # fmt: skip
    arms = {FLEX_DENSE: time_flex_dense(layer, repeats)}
    log_arm(layer, FLEX_DENSE, arms[FLEX_DENSE])
    for name in maskers:
        arms[name] = time_masker(layer, name, repeats)
        log_arm(layer, name, arms[name])
    dense = arms[FLEX_DENSE]["attention_s"]
    for row in arms.values():
        row["attention_over_flex_dense"] = round(row["attention_s"] / dense, 3)
        row["time_over_flex_dense"] = round(row["time_s"] / dense, 3)
        for key in ("first_call_s", "compile_s", "select_s", "block_mask_s", "attention_s"):
            row[key] = round(row[key], 4)
        row["time_s"] = round(row["time_s"], 4)
        row["density"] = round(row["density"], 4)
    targets = {"flex_dense_over_sdpa": target(dense / sdpa["time_s"], "flex_dense_over_sdpa")}
    if ORACLE in arms:
        ratio = arms[ORACLE]["attention_s"] / dense
        targets["block_top_k_over_flex_dense"] = target(ratio, "block_top_k_over_flex_dense")
    return {SDPA: sdpa, "arms": arms, "targets": targets}


def log_arm(layer: Layer, name: str, row: dict[str, Any]) -> None:
    log.info(
        "L=%d %s: density %.3f, select %.3f s, attention %.3f s (BlockMask %.3f s), "
        "first call %.2f s",
        layer.query.shape[2], name, row["density"], row["select_s"], row["attention_s"],
        row["block_mask_s"], row["first_call_s"],
    )  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 16384])
    parser.add_argument("--heads", type=int, default=32, help="query heads")
    parser.add_argument("--kv-heads", type=int, default=None, help="default: heads // 4")
    parser.add_argument("--head-dim", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="steady calls (median)")
    parser.add_argument("--maskers", nargs="+", help="prefill maskers (default: all registered)")
    args = parser.parse_args(argv)
    known = available_prefill_maskers()
    unknown = sorted(set(args.maskers or []) - set(known))
    if unknown:
        parser.error(f"--maskers: unknown {unknown}; registered prefill maskers: {known}")
    kv_heads = args.kv_heads or max(1, args.heads // 4)
    for field in ("heads", "head_dim", "block_size", "repeats"):
        if getattr(args, field) < 1:
            parser.error(f"--{field.replace('_', '-')} must be >= 1, got {getattr(args, field)}")
    if args.heads % kv_heads:
        parser.error(f"--heads ({args.heads}) must be a multiple of --kv-heads ({kv_heads})")
    if min(args.lengths) < 1:
        parser.error(f"--lengths must be >= 1 tokens, got {args.lengths}")
    args.maskers = args.maskers or known
    for name in args.maskers:
        arm_config(name)  # a masker the bench cannot configure fails before any timing
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the bench; print and return its JSON summary."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device(args.device)
    result: dict[str, Any] = {
        "bench": "prefill",
        "device": str(device),
        "dtype": args.dtype,
        "heads": args.heads,
        "kv_heads": args.kv_heads or max(1, args.heads // 4),
        "head_dim": args.head_dim,
        "block_size": args.block_size,
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "lengths": {},
    }
    for length in args.lengths:
        layer = make_layer(args, length, device)
        result["lengths"][str(length)] = run_length(layer, args.maskers, args.repeats)
    result["compiled"] = engine.use_compiled(device, needs_lse=False)
    result["targets"] = TARGETS
    result["all_met"] = all(
        t["met"] for row in result["lengths"].values() for t in row["targets"].values()
    )
    for length, row in result["lengths"].items():
        for name, t in row["targets"].items():
            verdict = "pass" if t["met"] else "FAIL"
            log.info("L=%s %s = %.3f (target <= %s): %s", length, name, t["ratio"], t["target"],
                     verdict)  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
