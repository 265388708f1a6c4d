"""Scoring and generation on ModelAdapterHF, phased as the adapter answers a request.

A prompt is split into a *dense part* and a *sparse part*. The dense part (every prompt token
but the last) is prefilled once with the model's own attention, as the adapter prefills a
context (``ModelAdapterHF._prefill_context``: a ``ContextCache`` rolled back to the context
before each continuation that shares it). The sparse part runs with every attention layer
routed through the research attention (``enable_sparse_mode``), as the adapter runs question
and answer tokens: the prompt's last token and then

- for scoring, the continuation tokens but the last: their logits score the continuation, so
  every scored token is predicted under the sparse config;
- for generation, each generated token, as the adapter decodes.

With no research attention (dense) both parts run the model's own attention.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from sparse_attention_hub.adapters.context_cache import ContextCache
from sparse_attention_hub.adapters.generation import GenerationSettings, TokenSelector
from sparse_attention_hub.adapters.huggingface import ModelAdapterHF, _logger_context

logger = logging.getLogger(__name__)


def new_context(adapter: ModelAdapterHF) -> ContextCache:
    """A fresh KV cache with fresh masker states (one lm-eval request, or one shared prompt)."""
    return ContextCache(adapter.model.config, adapter._switch.new_request())


def forward(adapter: ModelAdapterHF, ids: list[int], cache: Any, keep: int = 0) -> torch.Tensor:
    """Run ``ids`` on top of ``cache``; the logits (Q', V) of the last ``keep`` positions
    (0 = all Q positions)."""
    input_ids = torch.tensor([ids], dtype=torch.long, device=adapter.device)  # (B=1, Q)
    adapter._switch.query_start = cache.get_seq_length()
    cache_kwarg = {adapter._cache_argument: cache}
    out = adapter.model(input_ids=input_ids, use_cache=True, logits_to_keep=keep, **cache_kwarg)
    return out.logits[0]


def score_continuation(
    adapter: ModelAdapterHF,
    context: ContextCache,
    tokens: list[int],
    continuation_length: int,
    tags: dict[str, int],
) -> tuple[float, bool]:
    """Log-probability of the last ``continuation_length`` of ``tokens`` given the ones before,
    and whether greedy decoding would produce them.

    ``tokens[: -continuation_length - 1]`` is prefilled densely into ``context`` (reused when
    it already holds them); the rest but the last token runs under the sparse config.
    ``tags`` (request_index, question_index) label the micro-metric events.
    """
    if not 0 < continuation_length < len(tokens):
        raise ValueError(
            f"continuation_length={continuation_length} must be in [1, {len(tokens) - 1}] "
            f"for {len(tokens)} tokens"
        )
    split = len(tokens) - continuation_length - 1
    targets = torch.tensor(tokens[split + 1 :], dtype=torch.long, device=adapter.device)
    with torch.inference_mode():
        adapter._prefill_context(context, tokens[:split])
        with _logger_context(**tags), adapter.enable_sparse_mode():
            logits = forward(adapter, tokens[split:-1], context.cache)  # (C, V)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (C,)
        greedy = bool((logprobs.argmax(dim=-1) == targets).all())
    return float(picked.sum()), greedy


def generate(
    adapter: ModelAdapterHF,
    prompt: list[int],
    settings: GenerationSettings,
    should_stop: Callable[[list[int]], bool],
    tags: dict[str, int],
) -> list[int]:
    """Generated ids after ``prompt`` (EOS excluded): the prompt but its last token prefilled
    densely, then its last token and each new one under the sparse config, until EOS,
    ``settings.max_new_tokens`` or ``should_stop(generated ids)``."""
    if not prompt:
        raise ValueError("generate needs a prompt of at least one token")
    select = TokenSelector(settings)
    context = new_context(adapter)
    generated: list[int] = []
    with torch.inference_mode():
        adapter._prefill_context(context, prompt[:-1])
        with _logger_context(**tags), adapter.enable_sparse_mode():
            token = select(forward(adapter, prompt[-1:], context.cache, keep=1)[-1])
            while token not in adapter._stop_ids:
                generated.append(token)
                if len(generated) >= settings.max_new_tokens or should_stop(generated):
                    break
                token = select(forward(adapter, [token], context.cache, keep=1)[-1])
    return generated
