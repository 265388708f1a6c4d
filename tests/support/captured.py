"""Attention inputs of a real tiny model, for the maskers' recall and guarantee tests."""

from __future__ import annotations

import torch

from sparse_attention_hub.sparse_attention import AttentionInputs, ResearchAttentionConfig


def question_calls(model_dir: str) -> list[AttentionInputs]:
    """The attention inputs of the question tokens over a ~700-token context (dense research
    attention), captured through the mask hook: real queries and keys, not i.i.d. noise."""
    from sparse_attention_hub.adapters import ModelAdapterHF, Request

    adapter = ModelAdapterHF(model_dir, device="cpu")
    adapter.set_sparse_attention_config(ResearchAttentionConfig([]))
    captured: list[AttentionInputs] = []
    adapter.research_attention.register_mask_hook(lambda inputs, mask: captured.append(inputs))
    context = " ".join(f"Item {i}: key {i * 7 % 13} holds {i * 31 % 97}." for i in range(60))
    adapter.process_request(Request(context, "Which key holds 40?"), {"max_new_tokens": 1})
    calls = [c for c in captured if c.keys.shape[2] > 400 and c.queries.shape[2] > 1]
    assert calls
    return calls


def oracle_top(scores: torch.Tensor, top: int) -> torch.Tensor:
    """(B, H, Q, K) bool: each row's ``top`` highest allowed scores of ``scores`` (B, H, Q, K)."""
    oracle = torch.zeros_like(scores, dtype=torch.bool)
    oracle.scatter_(-1, scores.topk(top, dim=-1).indices, True)
    return oracle & (scores > float("-inf"))
