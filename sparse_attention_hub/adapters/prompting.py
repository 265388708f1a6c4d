"""From a Request to token ids: chat template, context/question split, context truncation.

Every question gets the token ids of its FULL prompt, exactly as the tokenizer encodes it, plus
``context_end``: the ids before it are the context part (prefilled densely, shared between
questions), the ids after it are the question part (run with sparse attention).

With a chat template the prompt is the rendered conversation ``[{"role": "user", "content":
context + question}]`` with the generation prompt added, then ``answer_prefix``; it is encoded
with ``add_special_tokens=False`` (as ``apply_chat_template`` does: the template writes BOS
itself), so there is no stray BOS. Without a template the prompt is ``context + question +
answer_prefix`` encoded with the tokenizer's special tokens (e.g. a leading BOS).

The split is made on the encoded full prompt (offsets), so a BPE token that straddles the
context/question boundary (e.g. the context's trailing space merged into " What") is never
broken: it belongs to the question part, so the context part stays the same across questions.
Should the context parts still differ (the tokenizer re-segments earlier text), the adapter
re-prefills only the differing tail (see ``common_prefix_length``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

TRUNCATION_CHOICES = ("middle", "left", "right")
REQUEST_KWARGS = ("max_context_length", "truncation", "apply_chat_template", "request_index")
_SENTINEL = "\u0000\u2063SAH-CONTEXT-END\u2063\u0000"


_WARNED: set[tuple[str, str]] = set()


def warn_unknown_once(what: str, kwargs: dict[str, Any], known: Sequence[str]) -> None:
    """Log once per process and key that ``kwargs`` has a key the adapter does not use (other
    layers, e.g. a benchmark's ``max_requests``, may share the dict)."""
    for key in sorted(set(kwargs) - set(known)):
        if (what, key) not in _WARNED:
            _WARNED.add((what, key))
            logger.warning("the adapter ignores %s[%r] (it uses: %s)", what, key, list(known))


@dataclass(frozen=True)
class RequestOptions:
    """The validated ``request_kwargs`` of ``process_request``.

    Attributes:
        max_context_length: keep at most this many context tokens (None: no limit).
        truncation: which context tokens go when it is too long: "middle" (keep the first and
            last halves, as LongBench does), "left" (drop the start) or "right" (drop the end).
        apply_chat_template: None (use the tokenizer's template if it has one), True or False.
        request_index: the benchmark's index of the request (for the metric-logger context).
    """

    max_context_length: int | None = None
    truncation: str = "middle"
    apply_chat_template: bool | None = None
    request_index: int | None = None

    def __post_init__(self) -> None:
        mcl = self.max_context_length
        if mcl is not None and (not isinstance(mcl, int) or isinstance(mcl, bool) or mcl < 1):
            raise ValueError(f"max_context_length={mcl!r} must be an int >= 1 (or None)")
        if self.truncation not in TRUNCATION_CHOICES:
            raise ValueError(
                f"truncation={self.truncation!r} is not one of {list(TRUNCATION_CHOICES)}"
            )
        if self.apply_chat_template not in (None, True, False):
            raise ValueError(
                f"apply_chat_template={self.apply_chat_template!r} must be True, False or None"
            )
        idx = self.request_index
        if idx is not None and (not isinstance(idx, int) or isinstance(idx, bool)):
            raise ValueError(f"request_index={idx!r} must be an int (or None)")

    @classmethod
    def from_kwargs(cls, request_kwargs: dict[str, Any] | None) -> RequestOptions:
        """Build from a caller's dict (never modified); unknown keys are ignored (warned once)."""
        kwargs = dict(request_kwargs or {})
        warn_unknown_once("request_kwargs", kwargs, REQUEST_KWARGS)
        return cls(**{k: v for k, v in kwargs.items() if k in REQUEST_KWARGS})


@dataclass(frozen=True)
class EncodedPrompt:
    """One question's full prompt: ``ids[:context_end]`` is the context part."""

    ids: list[int]
    context_end: int

    @property
    def context_ids(self) -> list[int]:
        return self.ids[: self.context_end]

    @property
    def question_ids(self) -> list[int]:
        return self.ids[self.context_end :]


@dataclass(frozen=True)
class EncodedRequest:
    """All questions of a request, encoded, and how much of the context was truncated."""

    prompts: list[EncodedPrompt]
    truncated_tokens: int


def truncate_ids(ids: list[int], max_length: int, truncation: str) -> list[int]:
    """Keep at most ``max_length`` of ``ids``: "middle" keeps the first ceil(n/2) and last
    floor(n/2), "left" keeps the last ``max_length``, "right" keeps the first ``max_length``."""
    if len(ids) <= max_length:
        return list(ids)
    if truncation == "left":
        return list(ids[len(ids) - max_length :])
    if truncation == "right":
        return list(ids[:max_length])
    head = max_length - max_length // 2
    tail = max_length // 2
    return list(ids[:head]) + (list(ids[len(ids) - tail :]) if tail else [])


def truncate_context(
    tokenizer: Any, context: str, max_length: int | None, truncation: str
) -> tuple[str, int]:
    """The context text cut to about ``max_length`` tokens, and the number of tokens removed."""
    if max_length is None:
        return context, 0
    ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_length:
        return context, 0
    kept = truncate_ids(ids, max_length, truncation)
    text = tokenizer.decode(kept, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return text, len(ids) - len(kept)


def common_prefix_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """The number of leading items ``a`` and ``b`` share (ids or characters)."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _render_chat(tokenizer: Any, content: str) -> str:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
    )
    if not isinstance(text, str):
        raise TypeError(f"apply_chat_template returned {type(text).__name__}, expected str")
    return text


def _templated_prompt(
    tokenizer: Any, context: str, question: str, answer_prefix: str
) -> tuple[str, int]:
    """The rendered prompt and the character offset where its context part ends."""
    full = _render_chat(tokenizer, context + question) + answer_prefix
    marked = _render_chat(tokenizer, context + _SENTINEL + question)
    head = marked.split(_SENTINEL, 1)[0]
    boundary = len(head)
    if not full.startswith(head):  # the template rewrote text near the boundary (e.g. trim)
        boundary = common_prefix_length(full, head)
    return full, boundary


def _encode_split(
    tokenizer: Any, text: str, boundary: int, add_special_tokens: bool
) -> EncodedPrompt:
    """Encode ``text`` whole; tokens ending at or before char ``boundary`` are the context."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        ids = list(enc["input_ids"])
        # A special token the tokenizer added (e.g. BOS) has offsets (0, 0): context.
        ends = [end for _start, end in enc["offset_mapping"]]
        context_end = next((i for i, end in enumerate(ends) if end > boundary), len(ends))
    else:  # slow tokenizers have no offsets: encode the two parts separately
        ctx = tokenizer(text[:boundary], add_special_tokens=add_special_tokens)["input_ids"]
        rest = tokenizer(text[boundary:], add_special_tokens=False)["input_ids"]
        ids, context_end = list(ctx) + list(rest), len(ctx)
    if not ids:
        raise ValueError("the prompt encodes to no tokens: give a context or a question")
    if context_end >= len(ids):  # the question part must hold at least one token
        context_end = len(ids) - 1
    return EncodedPrompt(ids=ids, context_end=context_end)


def use_chat_template(tokenizer: Any, requested: bool | None) -> bool:
    """Whether to template: requested True/None and the tokenizer has a chat template."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if requested is True and not has_template:
        logger.warning(
            "apply_chat_template=True but the tokenizer has no chat template: plain text"
        )
    return has_template and requested is not False


def encode_request(
    tokenizer: Any,
    context: str,
    questions: list[str],
    answer_prefix: str,
    options: RequestOptions,
) -> EncodedRequest:
    """Encode every question's full prompt (see the module docstring)."""
    if not questions:
        raise ValueError("questions is empty: give at least one question")
    context, truncated = truncate_context(
        tokenizer, context, options.max_context_length, options.truncation
    )
    templated = use_chat_template(tokenizer, options.apply_chat_template)
    prompts = []
    for question in questions:
        if templated:
            text, boundary = _templated_prompt(tokenizer, context, question, answer_prefix)
        else:
            text, boundary = context + question + answer_prefix, len(context)
        prompts.append(_encode_split(tokenizer, text, boundary, add_special_tokens=not templated))
    return EncodedRequest(prompts=prompts, truncated_tokens=truncated)
