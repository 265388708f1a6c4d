"""Scoring and generation on ModelAdapterHF, phased as the adapter answers a request.

A prompt is split into a *dense part* and a *sparse part*. The dense part (every prompt token
but the last) is prefilled once with the model's own attention, as the adapter prefills a
context (``ModelAdapterHF.prefill_context``: a ``ContextCache`` rolled back to the context
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

import torch

from sparse_attention_hub.adapters.context_cache import ContextCache
from sparse_attention_hub.adapters.generation import GenerationSettings, TokenSelector
from sparse_attention_hub.adapters.huggingface import ModelAdapterHF, metric_context

logger = logging.getLogger(__name__)


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
        adapter.prefill_context(context, tokens[:split])
        with metric_context(**tags), adapter.enable_sparse_mode():
            logits = adapter.forward(tokens[split:-1], context.cache, keep=0)  # (C, V)
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
    context = adapter.new_context()
    stop_ids = adapter.stop_ids
    generated: list[int] = []
    with torch.inference_mode():
        adapter.prefill_context(context, prompt[:-1])
        with metric_context(**tags), adapter.enable_sparse_mode():
            token = select(adapter.forward(prompt[-1:], context.cache)[-1])
            while token not in stop_ids:
                generated.append(token)
                if len(generated) >= settings.max_new_tokens or should_stop(generated):
                    break
                token = select(adapter.forward([token], context.cache)[-1])
    return generated
