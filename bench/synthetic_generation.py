"""synthetic_ruler at 4k to 128k tokens: generation time, cache-hit time and cache size.

For each length, times generating the subset (every task) into an empty disk cache, then
reading it back (best of ``--repeats``), and measures the cache files written for it. Uses a
tiny tokenizer (from make_tiny_model) and a temporary cache directory; prints one line per
length and, last, one JSON line with every length and the overall generate / cache-hit ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from sparse_attention_hub.benchmarks import create_benchmark_instance
from sparse_attention_hub.testing import make_tiny_model


def _time_load(
    tokenizer: object, cache_dir: Path, length: str, num_samples: int
) -> tuple[float, int]:
    bench = create_benchmark_instance(
        "synthetic_ruler",
        [length],
        num_samples=num_samples,
        tokenizer=tokenizer,
        cache_dir=cache_dir,
    )
    started = time.perf_counter()
    rows = bench.load_datasets()
    return time.perf_counter() - started, len(rows)


def _cache_bytes(cache_dir: Path, length: str) -> int:
    return sum(p.stat().st_size for p in cache_dir.rglob(f"*_len{length}_*") if p.is_file())


def _measure(tokenizer: object, cache_dir: Path, length: str, args: Any) -> dict[str, Any]:
    generate_s, rows = _time_load(tokenizer, cache_dir, length, args.num_samples)
    hit_s = min(
        _time_load(tokenizer, cache_dir, length, args.num_samples)[0] for _ in range(args.repeats)
    )
    size = _cache_bytes(cache_dir, length)
    print(
        f"{length:>6} tokens: {rows} rows, generate {generate_s:.2f} s, cache hit "
        f"{hit_s * 1000:.1f} ms, cache {size / 1e6:.2f} MB"
    )
    return {
        "length": int(length),
        "rows": rows,
        "generate_s": round(generate_s, 4),
        "cache_hit_s": round(hit_s, 4),
        "cache_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", default="4096,32768,65536,131072", help="comma-separated")
    parser.add_argument("--num-samples", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="cache hits to time (best is kept)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from transformers import AutoTokenizer

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_model(Path(tmp) / "model", arch="llama", seed=0)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        cache_dir = Path(tmp) / "cache"
        for length in args.lengths.split(","):
            results.append(_measure(tokenizer, cache_dir, length.strip(), args))
    generate = sum(r["generate_s"] for r in results)
    hit = sum(r["cache_hit_s"] for r in results)
    print(
        json.dumps(
            {
                "bench": "synthetic_generation",
                "num_samples": args.num_samples,
                "lengths": results,
                "generate_s": round(generate, 4),
                "cache_hit_s": round(hit, 4),
                "ratio": round(generate / hit, 2) if hit > 0 else None,
            }
        )
    )


if __name__ == "__main__":
    main()
