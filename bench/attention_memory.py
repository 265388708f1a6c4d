"""Peak extra memory of one attention layer at Llama-3.1-8B shapes, against torch SDPA (math).

One layer: B=1, H=32, Hkv=8, D=128, K=32,768 (so it fits here), bf16 q/k/v as on a GPU, a
causal bool mask. Cases: torch SDPA with the math backend, our dense path (empty masker list),
Sink(128) + Local(512) + OracleTopK(0.1), Sink(128) + Local(512) + OracleTopP(0.9) and
Sink(128) + Local(512) + RandomSampling(0.1), at Q = 1, 32 and 256.

Measurement: every (case, Q) runs in its own fresh subprocess. It builds its inputs, runs a
tiny warm-up (so kernels and allocator pools exist), reads the process high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), runs the call once and reads it again: the
difference is the peak extra memory of the call. (tracemalloc does not see torch's
allocations; large tensors are mmapped and returned to the OS when freed, so the high-water
mark is the true peak.) Queries are scaled by 4 so the attention is peaked, as a trained
model's is (flat random attention would need most keys for any top-p).

Targets (issue 11): each config's peak at Q=256 <= 1.25x its peak at Q=32; top-p <= 1.2x
top-k; at Q=1 the peak extra <= 0.5x the fp32 size of K. The K=131,072 figures are a linear
extrapolation in K (an upper bound for the blocked paths, whose block shrinks as K grows).

    .venv/bin/python bench/attention_memory.py [--k 32768] [--q 1 32 256]

The last line printed is one JSON object with the peaks (MiB), the ratios and the targets.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CASES = ("sdpa_math", "dense", "top_k", "top_p", "random")
H, HKV, D = 32, 8, 128
MIB = 2**20


def _attention(case: str):  # type: ignore[no-untyped-def]
    """The callable ``fn(q, k, v, mask)`` of one case."""
    import torch
    import torch.nn.functional as F

    from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
    from sparse_attention_hub.sparse_attention.maskers import (
        LocalMaskerConfig,
        OracleTopKConfig,
        OracleTopPMaskerConfig,
        RandomSamplingMaskerConfig,
        SinkMaskerConfig,
    )

    if case == "sdpa_math":

        def sdpa(q, k, v, mask):  # type: ignore[no-untyped-def]
            with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

        return sdpa
    base = [SinkMaskerConfig(sink_size=128), LocalMaskerConfig(window_size=512)]
    extra = {
        "dense": None,
        "top_k": OracleTopKConfig(heavy_size=0.1),
        "top_p": OracleTopPMaskerConfig(top_p=0.9),
        "random": RandomSamplingMaskerConfig(sampling_rate=0.1),
    }[case]
    configs = [] if extra is None else [*base, extra]
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig(configs))

    def research(q, k, v, mask):  # type: ignore[no-untyped-def]
        return attn.custom_attention(None, q, k, v, mask, None, 0.0, layer_idx=0)[0]

    return research


def _inputs(q_len: int, k_len: int, seed: int = 0):  # type: ignore[no-untyped-def]
    import torch

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(1, H, q_len, D, generator=g, dtype=torch.bfloat16) * 4
    k = torch.randn(1, HKV, k_len, D, generator=g, dtype=torch.bfloat16)
    v = torch.randn(1, HKV, k_len, D, generator=g, dtype=torch.bfloat16)
    positions = torch.arange(k_len - q_len, k_len).unsqueeze(-1)  # (Q, 1)
    mask = (torch.arange(k_len) <= positions)[None, None]  # (1, 1, Q, K) bool
    return q, k, v, mask


def child(case: str, q_len: int, k_len: int) -> None:
    """Run one case once in this (fresh) process; print its peak extra memory in bytes."""
    import torch

    torch.set_num_threads(2)
    fn = _attention(case)
    fn(*_inputs(2, 256, seed=1))  # warm-up on tiny shapes
    q, k, v, mask = _inputs(q_len, k_len)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    out = fn(q, k, v, mask)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del out
    print(json.dumps({"case": case, "q": q_len, "k": k_len, "peak_bytes": (after - before) * 1024}))


def measure(case: str, q_len: int, k_len: int) -> int:
    """Peak extra bytes of one case, measured in a fresh subprocess."""
    cmd = [sys.executable, __file__, "--child", case, "--k", str(k_len), "--q", str(q_len)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=32768)
    parser.add_argument("--q", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.q[0], args.k)
        return
    k_len, scale = args.k, 131072 / args.k
    peaks = {c: {q: measure(c, q, k_len) / MIB for q in args.q} for c in CASES}
    fp32_k_mib = HKV * k_len * D * 4 / MIB
    print(
        f"peak extra memory (MiB), bf16, H={H}, Hkv={HKV}, D={D}, K={k_len}; fp32 K = "
        f"{fp32_k_mib:.0f} MiB"
    )
    print(f"{'case':>10} " + " ".join(f"{'Q=' + str(q):>9}" for q in args.q) + "   @128k")
    for case, row in peaks.items():
        cells = " ".join(f"{row[q]:9.1f}" for q in args.q)
        print(f"{case:>10} {cells}   " + " ".join(f"{row[q] * scale:.0f}" for q in args.q))
    result: dict[str, object] = {"k": k_len, "peak_mib": peaks}
    if 32 in args.q and 256 in args.q:
        result["q256_over_q32"] = {c: peaks[c][256] / max(peaks[c][32], 1e-9) for c in CASES}
    qmax = max(args.q)
    result["top_p_over_top_k"] = peaks["top_p"][qmax] / max(peaks["top_k"][qmax], 1e-9)
    if 1 in args.q:
        result["q1_over_fp32_k"] = {c: peaks[c][1] / fp32_k_mib for c in CASES}
    result["extrapolated_128k_mib"] = {
        c: {q: v * scale for q, v in r.items()} for c, r in peaks.items()
    }
    result["targets"] = {"q256_over_q32": 1.25, "top_p_over_top_k": 1.2, "q1_over_fp32_k": 0.5}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
