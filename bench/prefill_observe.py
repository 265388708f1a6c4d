"""The context prefill observed by each eviction masker against the plain prefill: time and
peak memory.

The model of ``bench/decode_throughput.py`` (a random Llama, hidden 512, 4 layers, 8 query
heads, 2 KV heads, head_dim 64, fp32, CPU) prefills a context of 8,192 tokens (``--context``)
with its own sdpa: once plainly, and once per observing masker, inside
``SparseAttentionSwitch.observe()``, where each layer's context queries, keys and values are
handed to the masker before the model's own attention computes the call (as the HF adapter
prefills a context). The observing maskers are every registered masker whose class sets
``observes_prefill`` (so a new eviction method is covered without a change here), each with
its config's defaults (compression 0.5).

- Time: each case is one prefill into a fresh cache (and fresh masker states), best of
  ``--rounds`` interleaved rounds in this process. Target (issue 25): <= 1.5x the plain one.
- Peak memory (``bench/peak_memory.py``): every case runs in its own fresh subprocess, warmed up
  on a 256-token prefill, then the peak resident set of the measured prefill beyond what the
  process held before it (the filled cache included). Target: <= 1.25x the plain one.

    .venv/bin/python bench/prefill_observe.py [--context 8192] [--rounds 2] [--maskers snapkv ...]

The last line printed is one JSON object with the times, peaks, ratios and whether each target
holds.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from typing import Any

import torch
from decode_throughput import build_model, cache_kwarg
from peak_memory import measuring_env, peak_extra_bytes

PLAIN = "plain"
MIB = 2**20
TARGETS = {"time_ratio": 1.5, "peak_ratio": 1.25}

log = logging.getLogger("prefill_observe")


def observing_maskers() -> list[str]:
    """Every registered masker whose class observes the context prefill, in registration order."""
    from sparse_attention_hub.sparse_attention.maskers import available_maskers, resolve_masker

    return [n for n in available_maskers() if getattr(resolve_masker(n), "observes_prefill", False)]


def make_prefill(model: Any, case: str) -> Any:
    """``prefill(ids (1, L)) -> cache``: the plain prefill, or the one observed by ``case``'s
    masker (its default config) through the research attention, with fresh states."""
    from transformers import DynamicCache

    from sparse_attention_hub.adapters.hf_attention import SparseAttentionSwitch
    from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
    from sparse_attention_hub.sparse_attention.maskers import resolve_masker

    switch = None
    if case != PLAIN:
        config = resolve_masker(case).config_class()
        attention = ResearchAttention.create_from_config(ResearchAttentionConfig([config]))
        switch = SparseAttentionSwitch(model, attention)
    name = cache_kwarg(model)

    def prefill(ids: torch.Tensor) -> Any:
        cache = DynamicCache(config=model.config)
        kwargs = {"input_ids": ids, "use_cache": True, "logits_to_keep": 1, name: cache}
        if switch is None:
            model(**kwargs)
            return cache
        switch.research_attention.new_request()
        switch.query_start = 0
        with switch.observe():
            model(**kwargs)
        if not switch.research_attention.states:
            raise RuntimeError(f"{case}: the prefill was not observed (no masker state)")
        return cache

    return prefill


def context_ids(model: Any, length: int, seed: int = 0) -> torch.Tensor:
    """Random token ids (1, length)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (1, length), generator=generator)


def time_all(cases: list[str], context: int, rounds: int) -> dict[str, float]:
    """Seconds of one prefill per case, best of ``rounds`` interleaved rounds."""
    model = build_model(context)
    ids = context_ids(model, context)
    prefills = {case: make_prefill(model, case) for case in cases}
    times: dict[str, float] = {}
    with torch.inference_mode():
        for prefill in prefills.values():
            prefill(ids[:, :256])  # warm-up
        for _ in range(rounds):
            for case, prefill in prefills.items():
                start = time.perf_counter()
                prefill(ids)
                seconds = time.perf_counter() - start
                times[case] = min(times.get(case, float("inf")), seconds)
                log.info("time %s: %.3f s", case, seconds)
    return times


def child(case: str, context: int) -> None:
    """In a fresh process: print one JSON line with the peak extra bytes of ``case``'s prefill."""
    torch.set_num_threads(2)
    model = build_model(context)
    ids = context_ids(model, context)
    prefill = make_prefill(model, case)
    with torch.inference_mode():
        prefill(ids[:, :256])  # warm-up on a short context
        peak, _ = peak_extra_bytes(lambda: prefill(ids), torch.device("cpu"))
    print(json.dumps({"case": case, "peak_bytes": peak}), flush=True)


def peak_of(case: str, context: int, timeout: float) -> dict[str, Any]:
    """The record of ``case``'s peak, measured in a fresh subprocess (or its error)."""
    cmd = [sys.executable, __file__, "--child", case, "--context", str(context)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=measuring_env()
        )
    except subprocess.TimeoutExpired:
        return {"case": case, "error": f"the process ran past {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = proc.stderr.strip()[-300:]
        return {"case": case, "error": f"exit status {proc.returncode}: {tail}"}
    return dict(json.loads(lines[-1]))


def summarise(
    times: dict[str, float], peaks: dict[str, dict[str, Any]], context: int
) -> dict[str, Any]:
    """The JSON summary: seconds, peaks (MiB), per-method ratios and targets, errors."""
    mib = {c: r.get("peak_bytes", 0) / MIB if "peak_bytes" in r else None for c, r in peaks.items()}
    base_mib = mib.get(PLAIN)
    methods: dict[str, Any] = {}
    for case in times:
        if case == PLAIN:
            continue
        time_ratio = times[case] / times[PLAIN]
        peak = mib.get(case)
        peak_ratio = None if peak is None or not base_mib else peak / max(base_mib, 1.0)
        methods[case] = {
            "time_ratio": round(time_ratio, 3),
            "peak_ratio": None if peak_ratio is None else round(peak_ratio, 3),
            "met": {
                "time_ratio": time_ratio <= TARGETS["time_ratio"],
                "peak_ratio": peak_ratio is not None and peak_ratio <= TARGETS["peak_ratio"],
            },
        }
    errors = {c: r["error"] for c, r in peaks.items() if "error" in r}
    return {
        "bench": "prefill_observe",
        "context": context,
        "prefill_s": {c: round(s, 3) for c, s in times.items()},
        "peak_mib": {c: None if m is None else round(m, 1) for c, m in mib.items()},
        "methods": methods,
        "targets": TARGETS,
        "errors": errors,
        "all_met": not errors and all(all(m["met"].values()) for m in methods.values()),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--maskers", nargs="+", help="observing maskers (default: all)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.context)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    known = observing_maskers()
    unknown = sorted(set(args.maskers or []) - set(known))
    if unknown:
        parser.error(f"--maskers: {unknown} do not observe the prefill; allowed: {known}")
    cases = [PLAIN, *(args.maskers or known)]
    torch.set_num_threads(2)
    times = time_all(cases, args.context, args.rounds)
    peaks = {}
    for case in cases:
        peaks[case] = peak_of(case, args.context, args.timeout)
        log.info("peak %s", json.dumps(peaks[case]))
    result = summarise(times, peaks, args.context)
    for case, seconds in result["prefill_s"].items():
        row = result["methods"].get(case, {})
        print(
            f"{case:>10}: {seconds:7.3f} s ({row.get('time_ratio', 1.0)}x), "
            f"peak {result['peak_mib'][case]} MiB ({row.get('peak_ratio', 1.0)}x)"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
