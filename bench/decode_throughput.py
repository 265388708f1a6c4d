"""End-to-end decode time: the model's own sdpa against the research attention in the model.

A mid-size random Llama (hidden 512, 4 layers, 8 query heads, 2 KV heads (GQA), head_dim 64,
fp32, CPU) prefills a context of 8,192 tokens once with its own sdpa, then greedily decodes
64 tokens three times from that same context (the cache is cropped back after each arm): with
the model's own sdpa, with the research attention's dense path (empty masker list) and with
Sink(128) + Local(512) + OracleTopK(0.1). Each decode arm is timed as a whole (best of
``--rounds``). Targets (issue 11): research dense <= 1.1x and sparse <= 1.3x the model's own.

    .venv/bin/python bench/decode_throughput.py [--context 8192] [--tokens 64] [--rounds 2]

The last line printed is one JSON object with the times and ratios.
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sparse_attention_hub.adapters.hf_attention import SparseAttentionSwitch
from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    OracleTopKConfig,
    SinkMaskerConfig,
)

#: The bench's model: hidden 512, 4 layers, GQA (8 query heads, 2 KV heads), head_dim 64.
BENCH_SIZES: dict[str, int] = {
    "hidden_size": 512,
    "intermediate_size": 1408,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 64,
    "vocab_size": 2048,
}


def build_model(
    context: int,
    sizes: dict[str, int] | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> Any:
    """A random-weight Llama of ``sizes`` (default :data:`BENCH_SIZES`) in ``dtype``, built
    directly on ``device``, using the model's own sdpa."""
    options: dict[str, Any] = {**(sizes or BENCH_SIZES), "max_position_embeddings": context + 1024}
    config = LlamaConfig(**options)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=dtype).eval()
    model.set_attn_implementation("sdpa")
    return model


def decode(model: Any, cache: Any, first: int, tokens: int, switch: Any) -> float:
    """Seconds to greedily decode ``tokens`` tokens on top of ``cache`` (cropped back after)."""
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    start_len = cache.get_seq_length()
    token = first
    start = time.perf_counter()
    for _ in range(tokens):
        if switch is not None:
            switch.query_start = cache.get_seq_length()
        ids = torch.tensor([[token]], device=model.device)
        logits = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{name: cache}).logits
        token = int(logits[0, -1].argmax())
    seconds = time.perf_counter() - start
    cache.crop(start_len - cache.get_seq_length())  # a negative count: drop the new tokens
    return seconds


def cache_kwarg(model: Any) -> str:
    """The name of the model's KV-cache argument (transformers renamed it)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def measure(model: Any, context: int, tokens: int, rounds: int) -> dict[str, Any]:
    """Prefill ``context`` random tokens once, then decode ``tokens`` tokens per arm (best of
    ``rounds`` interleaved rounds); the result's times (s), ratios and targets."""
    from transformers import DynamicCache

    ids = torch.randint(0, model.config.vocab_size, (1, context), device=model.device)
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        start = time.perf_counter()
        model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_kwarg(model): cache})
        prefill = time.perf_counter() - start
        sparse_cfg = ResearchAttentionConfig(
            [SinkMaskerConfig(128), LocalMaskerConfig(512), OracleTopKConfig(0.1)]
        )
        switches = {
            "research_dense": SparseAttentionSwitch(model, ResearchAttention([])),
            "research_sparse": SparseAttentionSwitch(
                model, ResearchAttention.create_from_config(sparse_cfg)
            ),
        }
        times: dict[str, float] = {}
        for _ in range(rounds):  # interleaved rounds, best of each arm
            times["sdpa"] = min(
                times.get("sdpa", float("inf")), decode(model, cache, 1, tokens, None)
            )
            for arm, switch in switches.items():
                with switch.enable():
                    seconds = decode(model, cache, 1, tokens, switch)
                times[arm] = min(times.get(arm, float("inf")), seconds)
    base = times["sdpa"]
    return {
        "bench": "decode_throughput",
        "context": context,
        "tokens": tokens,
        "prefill_s": round(prefill, 3),
        "decode_s": {arm: round(s, 4) for arm, s in times.items()},
        "dense_ratio": round(times["research_dense"] / base, 3),
        "sparse_ratio": round(times["research_sparse"] / base, 3),
        "targets": {"dense_ratio": 1.1, "sparse_ratio": 1.3},
        "device": str(model.device),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    result = measure(build_model(args.context), args.context, args.tokens, args.rounds)
    print(f"prefill {args.context} tokens: {result['prefill_s']:.2f} s (model's own sdpa)")
    base = result["decode_s"]["sdpa"]
    for arm, seconds in result["decode_s"].items():
        per_token = seconds / args.tokens * 1e3
        print(f"{arm:>16}: {seconds:7.3f} s  {per_token:7.2f} ms/token  ({seconds / base:.2f}x)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
