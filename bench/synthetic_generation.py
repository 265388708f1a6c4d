"""Time to generate a 4k-token synthetic_ruler subset vs reading it back from the disk cache.

Uses a tiny tokenizer (from make_tiny_model) and a temporary cache directory; prints a few
lines and, last, one JSON line with both timings and their ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--length", default="4096")
    parser.add_argument("--num-samples", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="cache hits to time (best is kept)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_model(Path(tmp) / "model", arch="llama", seed=0)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        cache_dir = Path(tmp) / "cache"
        generate_s, rows = _time_load(tokenizer, cache_dir, args.length, args.num_samples)
        hit_s = min(
            _time_load(tokenizer, cache_dir, args.length, args.num_samples)[0]
            for _ in range(args.repeats)
        )
    print(f"generate {rows} rows at {args.length} tokens: {generate_s * 1000:.1f} ms")
    print(f"cache hit (best of {args.repeats}): {hit_s * 1000:.1f} ms")
    print(
        json.dumps(
            {
                "bench": "synthetic_generation",
                "length": int(args.length),
                "rows": rows,
                "generate_s": round(generate_s, 4),
                "cache_hit_s": round(hit_s, 4),
                "ratio": round(generate_s / hit_s, 2) if hit_s > 0 else None,
            }
        )
    )


if __name__ == "__main__":
    main()
