"""KV-cache reuse: one ~2000-token context, 8 questions, on a tiny model (CPU or GPU).

Compares ModelAdapterHF with cache reuse (one dense prefill, cropped back per question) against
re-prefilling the context for every question, in the same run, on the same adapter. Checks the
answers are identical, then prints the prefill-token ratio (target exactly 1/8) and the
wall-time speedup (target >= 3x); the last line is one JSON object.

    .venv/bin/python bench/kv_reuse.py [--context-tokens 2000] [--questions 8] [--repeats 3]
        [--arch mistral --sliding-window 512]   (sliding-window layers reuse the cache too)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.testing import make_tiny_model

#: Still tiny (about 1M parameters per layer) but with a hidden size where prefill is real
#: compute, as it is on real models, rather than pure per-call Python overhead.
BENCH_SIZES = {"hidden_size": 256, "head_dim": 64, "intermediate_size": 1024}


def build_request(adapter: ModelAdapterHF, context_tokens: int, questions: int) -> Request:
    """A context of about ``context_tokens`` tokens (ends with a newline) and its questions."""
    sentences: list[str] = []
    i = 0
    while True:
        sentences.append(f"Record {i}: the value of key {i * 7 % 53} is {i * 31 % 997}.")
        text = " ".join(sentences) + "\n"
        if len(adapter.tokenizer(text, add_special_tokens=False)["input_ids"]) >= context_tokens:
            break
        i += 1
    asked = [f"Question {q}: what is the value of key {q * 5}?" for q in range(questions)]
    return Request(text, asked, "Answer:")


def timed(
    adapter: ModelAdapterHF, request: Request, gen: dict[str, Any], reuse: bool
) -> tuple[float, Any]:
    adapter.reuse_context_cache = reuse
    start = time.perf_counter()
    out = adapter.process_request(request, gen, {"apply_chat_template": True})
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context-tokens", type=int, default=2000)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--arch", default="llama", help="llama | qwen2 | qwen3 | mistral")
    parser.add_argument(
        "--sliding-window", type=int, default=None, help="window in tokens (not for llama)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        path = make_tiny_model(
            os.path.join(tmp, "tiny"),
            arch=args.arch,
            seed=0,
            sliding_window=args.sliding_window,
            **BENCH_SIZES,
        )
        adapter = ModelAdapterHF(path, device=args.device)
        request = build_request(adapter, args.context_tokens, args.questions)
        gen = {"max_new_tokens": args.max_new_tokens}
        timed(adapter, request, gen, reuse=True)  # warm-up
        reuse_times, fresh_times = [], []
        for _ in range(args.repeats):
            t, reused = timed(adapter, request, gen, reuse=True)
            reuse_times.append(t)
            t, fresh = timed(adapter, request, gen, reuse=False)
            fresh_times.append(t)

    if reused.responses != fresh.responses:
        print("ERROR: answers differ between cache reuse and re-prefill", file=sys.stderr)
        return 1
    reuse_prefill = sum(m["prefill_tokens"] for m in reused.metadata)
    fresh_prefill = sum(m["prefill_tokens"] for m in fresh.metadata)
    reuse_s, fresh_s = statistics.median(reuse_times), statistics.median(fresh_times)
    result = {
        "bench": "kv_reuse",
        "device": str(adapter.device),
        "context_tokens": reused.metadata[0]["context_tokens"],
        "questions": args.questions,
        "prefill_tokens_reuse": reuse_prefill,
        "prefill_tokens_reprefill": fresh_prefill,
        "prefill_token_ratio": reuse_prefill / fresh_prefill,
        "seconds_reuse": round(reuse_s, 4),
        "seconds_reprefill": round(fresh_s, 4),
        "speedup": round(fresh_s / reuse_s, 2),
        "arch": args.arch,
        "sliding_window": args.sliding_window,
        "model_sizes": BENCH_SIZES,
        "max_new_tokens": args.max_new_tokens,
        "answers_identical": True,
    }
    print(
        f"prefill tokens: {reuse_prefill} with reuse vs {fresh_prefill} re-prefilling "
        f"(ratio {result['prefill_token_ratio']:.4f}, target {1 / args.questions:.4f})"
    )
    print(f"wall time: {reuse_s:.3f}s with reuse vs {fresh_s:.3f}s (speedup {result['speedup']}x)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
