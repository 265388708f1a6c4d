"""Decode-step overhead of ResearchAttention against torch SDPA on the same tensors.

One decode step (B=1, H=32, Hkv=8, Q=1, K=32768, D=128, fp32, CPU) of ResearchAttention with
Sink(128) + Local(512) + OracleTopK(0.1), and of the empty masker list (the dense control),
each timed against torch's scaled_dot_product_attention. The baseline is the faster of SDPA
with ``enable_gqa=True`` and SDPA on K/V repeated beforehand (repeat not timed). Medians of
several repeats after a warm-up. Targets: sparse <= 1.2x, empty <= 1.1x. A short case
(K = 512, ``--short-k``) measures the per-call host overhead: target sparse <= 2x SDPA.

Every registered masker has an arm in ``METHOD_ARMS`` (``bench/method_arms.py``): at K = 32768
the stack Sink(128) + Local(128) + the method at 5 % is timed on the same decode step with its
state already built (``<name>_ratio``, target <= 2x SDPA for top-k methods, 3x for sampling
ones). For a stateful method the once-per-layer-per-request state build and the per-token
state extension are timed separately (``<name>_state_build_ms``, ``<name>_state_extend_ms``).
A registered masker without an arm is listed under ``"missing_arms"``.

    .venv/bin/python bench/attention_overhead.py [--repeats 15] [--k 32768] [--device cpu]

The issue's target is for CPU; ``--device cuda`` times the same step on a GPU.

The last line printed is one JSON object with both ratios and the baseline in ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from method_arms import METHOD_ARMS, ArmShape, missing_arms

from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    OracleTopKConfig,
    SinkMaskerConfig,
)
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker


def median_ms(
    fn: Callable[[], object], repeats: int, device: torch.device, warmup: int = 3
) -> float:
    """Median wall time of ``fn()`` in milliseconds (synchronising a GPU around each call)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure(
    k_len: int,
    repeats: int,
    device: torch.device,
    workdir: Path,
    methods: bool = True,
    warmup: int = 3,
) -> dict[str, float]:
    """Best-of-two-rounds median ms of SDPA (both forms), both research arms and (with
    ``methods``) every method arm at K=k_len, each after ``warmup`` untimed calls; method
    artefacts are written under ``workdir``."""
    torch.manual_seed(0)
    b, h, h_kv, q_len, d = 1, 32, 8, 1, 128
    q = torch.randn(b, h, q_len, d, device=device)
    k = torch.randn(b, h_kv, k_len, d, device=device)
    v = torch.randn(b, h_kv, k_len, d, device=device)
    scale = d**-0.5
    k_rep = k.repeat_interleave(h // h_kv, dim=1)  # (B, H, K, D)
    v_rep = v.repeat_interleave(h // h_kv, dim=1)  # (B, H, K, D)
    sparse = ResearchAttention.create_from_config(
        ResearchAttentionConfig(
            [SinkMaskerConfig(128), LocalMaskerConfig(512), OracleTopKConfig(0.1)]
        )
    )
    dense = ResearchAttention.create_from_config(ResearchAttentionConfig([]))
    shape = ArmShape(heads=h, kv_heads=h_kv, head_dim=d, keys=k_len, layers=1)
    arms = {
        name: ResearchAttention.create_from_config(
            ResearchAttentionConfig(
                [SinkMaskerConfig(128), LocalMaskerConfig(128), *arm(shape, workdir)]
            )
        )
        for name, arm in (METHOD_ARMS.items() if methods else ())
    }

    def run(attn: ResearchAttention) -> Callable[[], object]:
        return lambda: attn.custom_attention(None, q, k, v, None, scale, 0.0, layer_idx=0)

    timings: dict[str, float] = {}
    with torch.inference_mode():
        for _ in range(2):  # interleave rounds so drift hits every arm alike
            rounds = {
                "sdpa_gqa": median_ms(
                    lambda: F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True),
                    repeats,
                    device,
                    warmup,
                ),
                "sdpa_repeated_kv": median_ms(
                    lambda: F.scaled_dot_product_attention(q, k_rep, v_rep, scale=scale),
                    repeats,
                    device,
                    warmup,
                ),
                "research_sparse": median_ms(run(sparse), repeats, device, warmup),
                "research_empty": median_ms(run(dense), repeats, device, warmup),
            }
            for name, attn in arms.items():
                # warm-up calls build the method's state; timed calls reuse it
                rounds[f"research_{name}"] = median_ms(run(attn), repeats, device, warmup)
                rounds.update(state_ms(name, attn, q, k, v, repeats, device, warmup))
            for name, ms in rounds.items():
                timings[name] = min(ms, timings.get(name, float("inf")))
    return timings


def state_ms(
    name: str,
    attn: ResearchAttention,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    repeats: int,
    device: torch.device,
    warmup: int = 3,
) -> dict[str, float]:
    """Median ms of building the last masker's state of all K keys (once per layer per
    request) and of extending it by one decode token; nothing for a stateless masker."""
    masker = attn.maskers[-1]
    if not isinstance(masker, StatefulMasker):
        return {}
    inputs = AttentionInputs(q, k, v, None, layer_idx=0)
    state = masker.build_state(inputs)
    longer = AttentionInputs(
        q, torch.cat([k, k[:, :, :1]], 2), torch.cat([v, v[:, :, :1]], 2), layer_idx=0
    )
    return {
        f"{name}_state_build": median_ms(
            lambda: masker.build_state(inputs), repeats, device, warmup
        ),
        f"{name}_state_extend": median_ms(
            lambda: masker.extend_state(state, longer, 1), repeats, device, warmup
        ),
    }


def summary(timings: dict[str, float], k_len: int) -> dict[str, object]:
    """Print the table of one K; return its ratios against the faster SDPA."""
    baseline = min(timings["sdpa_gqa"], timings["sdpa_repeated_kv"])
    print(f"K = {k_len}")
    for name, ms in timings.items():
        print(f"{name:>18}: {ms:8.3f} ms  ({ms / baseline:.2f}x)")
    return {
        "K": k_len,
        "baseline_ms": round(baseline, 4),
        "sparse_ratio": round(timings["research_sparse"] / baseline, 3),
        "empty_ratio": round(timings["research_empty"] / baseline, 3),
        **{
            f"{name}_ratio": round(timings[f"research_{name}"] / baseline, 3)
            for name in METHOD_ARMS
            if f"research_{name}" in timings
        },
        **{
            f"{name}_ms": round(ms, 4)
            for name, ms in timings.items()
            if name.endswith(("_state_build", "_state_extend"))
        },
        "timings_ms": {name: round(ms, 4) for name, ms in timings.items()},
    }


def targets() -> dict[str, float]:
    """The ratio targets at the long K: the research arms and every method arm's."""
    return {
        "sparse_ratio": 1.2,
        "empty_ratio": 1.1,
        **{
            f"{name}_ratio": arm.target
            for name, arm in METHOD_ARMS.items()
            if arm.target is not None
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--k", type=int, default=32768)
    parser.add_argument("--short-k", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as workdir:
        long = summary(measure(args.k, args.repeats, device, Path(workdir)), args.k)
        short = summary(
            measure(args.short_k, args.repeats * 10, device, Path(workdir), methods=False),
            args.short_k,
        )
    print(
        json.dumps(
            {
                "bench": "attention_overhead",
                "shape": {"B": 1, "H": 32, "Hkv": 8, "Q": 1, "D": 128},
                **long,
                "short": short,
                "targets": {**targets(), "short_sparse_ratio": 2.0},
                "missing_arms": missing_arms(),
                "device": str(device),
                "threads": torch.get_num_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
