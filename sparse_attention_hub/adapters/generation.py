"""Generation settings and next-token selection (greedy or seeded sampling)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from sparse_attention_hub.adapters.prompting import warn_unknown_once

logger = logging.getLogger(__name__)

#: Used when generation_kwargs has no ``max_new_tokens`` (benchmarks usually set their own).
DEFAULT_MAX_NEW_TOKENS = 256

GENERATION_KWARGS = ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "seed")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class GenerationSettings:
    """The validated ``generation_kwargs`` of ``process_request``.

    Attributes:
        max_new_tokens: at most this many tokens per answer (default 256); EOS stops earlier.
        do_sample: False (default) = greedy. True = sample from the softmax of logits /
            temperature, restricted to the ``top_k`` most likely tokens (0 = all) and the
            smallest set whose probability reaches ``top_p``.
        temperature: > 0 when sampling; 0 means greedy.
        seed: seeds the sampling generator (each question restarts from it), so sampled answers
            are reproducible; None draws a random seed.
    """

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens!r} must be an int >= 1")
        if not isinstance(self.do_sample, bool):
            raise ValueError(f"do_sample={self.do_sample!r} must be a bool")
        if not isinstance(self.temperature, (int, float)) or self.temperature < 0:
            raise ValueError(f"temperature={self.temperature!r} must be a number >= 0")
        if not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p!r} must be in (0, 1]")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise ValueError(f"top_k={self.top_k!r} must be an int >= 0 (0 = no limit)")
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"seed={self.seed!r} must be an int (or None)")

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0

    @classmethod
    def from_kwargs(cls, generation_kwargs: dict[str, Any] | None) -> GenerationSettings:
        """Build from a caller's dict (never modified); unknown keys are ignored (warned once)."""
        kwargs = dict(generation_kwargs or {})
        warn_unknown_once("generation_kwargs", kwargs, GENERATION_KWARGS)
        known = {k: v for k, v in kwargs.items() if k in GENERATION_KWARGS and v is not None}
        return cls(**known)


class TokenSelector:
    """Picks the next token from the logits of the last position: greedy or seeded sampling."""

    def __init__(self, settings: GenerationSettings) -> None:
        self.settings = settings
        self.generator: torch.Generator | None = None
        if not settings.greedy:
            self.generator = torch.Generator(device="cpu")
            if settings.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(settings.seed)

    def __call__(self, logits: torch.Tensor) -> int:
        """Args: logits (V,) of one position. Returns the chosen token id."""
        if self.generator is None:
            return int(torch.argmax(logits).item())
        probs = _filtered_probs(logits.float().cpu(), self.settings)
        return int(torch.multinomial(probs, 1, generator=self.generator).item())


def _filtered_probs(logits: torch.Tensor, settings: GenerationSettings) -> torch.Tensor:
    """Softmax of logits / temperature after top-k and top-p filtering. logits: (V,)."""
    scores = logits / settings.temperature
    if 0 < settings.top_k < scores.numel():
        kth = torch.topk(scores, settings.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        drop = cumulative - sorted_probs >= settings.top_p  # keep the smallest set reaching top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        probs = probs / probs.sum()
    return probs
