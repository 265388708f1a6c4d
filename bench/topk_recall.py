"""Recall of the true top-k by each top-k method on the shipped trained model's attention.

The queries and keys are the trained tiny llama's (every layer) on the question tokens of
needle prompts of about ``--length`` tokens (depths 0, 0.25, 0.5, 0.75, 1), captured under
dense research attention. Per method and budget b (a fraction of K), recall is the fraction
of each row's b best keys by exact score that the method's own b keys hold (method alone,
no sink or window): oracle top-k is 1 by construction, random keys about b.

    PYTHONPATH=. python bench/topk_recall.py [--length 2048] [--hashattention W.safetensors]

Prints one line per method and budget, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

import torch

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.sparse_attention import AttentionInputs, Mask, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import (
    HashAttentionConfig,
    MaskerConfig,
    OracleTopKConfig,
    QuestConfig,
    SocketConfig,
    create_masker,
    resolve_size,
)
from sparse_attention_hub.testing import trained_model_dir
from sparse_attention_hub.testing.retrieval_data import UnitSizer, needle_text

DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def captured_calls(length: int) -> list[AttentionInputs]:
    """Every layer's attention inputs of the question tokens of the needle prompts."""
    adapter = ModelAdapterHF(trained_model_dir(), device="cpu")
    adapter.set_sparse_attention_config(ResearchAttentionConfig([]))
    calls: list[AttentionInputs] = []
    adapter.research_attention.register_mask_hook(lambda inputs, mask: calls.append(inputs))
    units = UnitSizer(adapter.tokenizer).units(length)
    rng = random.Random(0)
    for depth in DEPTHS:
        sample = needle_text(rng, 1, units, depth)
        request = Request(sample.context, sample.question, sample.answer_prefix)
        adapter.process_request(request, {"max_new_tokens": 1})
    return [c for c in calls if c.queries.shape[2] > 1]


def recall(config: MaskerConfig, calls: list[AttentionInputs], budget: float) -> float:
    """Kept true top-b keys over all true top-b keys, over every row of every call."""
    hits = total = 0.0
    masker = create_masker(config)
    for inputs in calls:
        scores = inputs.exact_scores()  # (B, H, Q, K)
        top = scores.topk(resolve_size(budget, scores.shape[-1]), dim=-1)
        oracle = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, top.indices, True)
        oracle &= scores > float("-inf")
        chosen = masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape)).to_dense() > 0
        hits += float((chosen & oracle).sum())
        total += float(oracle.sum())
    return hits / total


def methods(budget: float, hat_weights: str | None) -> dict[str, MaskerConfig]:
    """Each method alone at ``budget``, with its recipe's other settings."""
    found: dict[str, MaskerConfig] = {
        "oracle_top_k": OracleTopKConfig(budget),
        "quest": QuestConfig(token_budget=budget, page_size=16),
        "socket": SocketConfig(budget, lsh_k=12, lsh_l=60, tau=0.3),
    }
    if hat_weights is not None:
        found["hashattention"] = HashAttentionConfig(budget, weights_file=hat_weights)
    return found


def random_recall(calls: list[AttentionInputs], budget: float) -> float:
    """The same figure for uniformly random keys (seeded)."""
    g = torch.Generator().manual_seed(0)
    hits = total = 0.0
    for inputs in calls:
        scores = inputs.exact_scores()
        k = resolve_size(budget, scores.shape[-1])
        oracle = torch.zeros_like(scores, dtype=torch.bool)
        oracle.scatter_(-1, scores.topk(k, dim=-1).indices, True)
        oracle &= scores > float("-inf")
        noise = torch.rand(scores.shape, generator=g).masked_fill(scores == float("-inf"), -1.0)
        chosen = torch.zeros_like(oracle).scatter_(-1, noise.topk(k, dim=-1).indices, True)
        hits += float((chosen & oracle).sum())
        total += float(oracle.sum())
    return hits / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=2048, help="prompt tokens (about)")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.05, 0.25])
    parser.add_argument("--hashattention", default=None, help="HashAttention weights file")
    args = parser.parse_args()
    calls = captured_calls(args.length)
    table: dict[str, dict[str, Any]] = {}
    for budget in args.budgets:
        for name, config in methods(budget, args.hashattention).items():
            table.setdefault(name, {})[str(budget)] = round(recall(config, calls, budget), 3)
        table.setdefault("random", {})[str(budget)] = round(random_recall(calls, budget), 3)
    for name, row in table.items():
        print(f"{name:14s} " + "  ".join(f"b={b}: {r:.3f}" for b, r in row.items()))
    print(json.dumps({"bench": "topk_recall", "length": args.length, "recall": table}))


if __name__ == "__main__":
    main()
