"""ModelAdapterHF: a HuggingFace causal LM answering requests with simulated sparse attention.

The decode loop, in named phases, for a request with questions q0..qn on one context:

1. ``encode_request``: every question's full prompt ids; ``ids[:context_end]`` is the context.
2. ``prefill_context`` (dense, once): the context ids go through the model with its own
   attention into a DynamicCache. Before each later question the cache is rolled back to the
   context (``ContextCache.rollback``: ``DynamicCache.crop``, sliding-window layers included,
   and the masker states truncated to the context in the same step); only context ids that
   differ (rare BPE boundary effects) are prefilled again. A new request (a new cache) starts
   with fresh masker states. When a masker observes the prefill (KV-cache eviction), the
   context runs with the model's own attention and mask, unchanged, and each layer's context
   queries, keys and values are handed to it (``SparseAttentionSwitch.observe``). With
   ``prefill_maskers`` the context prefill is sparse (``SparseAttentionSwitch.prefill``:
   FlexAttention on the blocks they select; the KV cache stays whole).
3. ``_answer`` (sparse mode): ``_run_question`` feeds the question ids, then
   ``_decode_tokens`` calls ``_decode_one`` per generated token, with every attention layer
   routed through the research attention. Greedy unless ``do_sample``; stops at EOS or
   ``max_new_tokens``.

With ``sparse_attention_config=None`` every phase uses the model's own attention (sdpa).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from sparse_attention_hub.adapters.base import ModelAdapter, Request, RequestResponse
from sparse_attention_hub.adapters.context_cache import ContextCache
from sparse_attention_hub.adapters.generation import GenerationSettings, TokenSelector
from sparse_attention_hub.adapters.hf_attention import SparseAttentionSwitch
from sparse_attention_hub.adapters.hf_loading import (
    cache_argument_name,
    check_model_source,
    load_model,
    load_tokenizer,
    prepare_model_kwargs,
    resolve_device,
)
from sparse_attention_hub.adapters.prompting import (
    EncodedPrompt,
    RequestOptions,
    encode_request,
)

logger = logging.getLogger(__name__)


def _normalise_config(config: Any) -> Any:
    """None, a ResearchAttentionConfig, or its ``to_dict()`` form (converted)."""
    if config is None:
        return None
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

    if isinstance(config, Mapping):
        return ResearchAttentionConfig.from_dict(config)
    if not isinstance(config, ResearchAttentionConfig):
        raise TypeError(
            "sparse_attention_config must be a ResearchAttentionConfig, its to_dict() form "
            f"or None, got {type(config).__name__}"
        )
    return config


def _build_research_attention(config: Any) -> Any:
    if config is None:
        return None
    from sparse_attention_hub.sparse_attention import ResearchAttention

    return ResearchAttention.create_from_config(config)


class ModelAdapterHF(ModelAdapter):
    """Loads ``model_name`` (hub id or local directory) once and answers requests.

    Args:
        model_name: a hub id or a local model directory.
        sparse_attention_config: a ResearchAttentionConfig (or its ``to_dict()`` form), or None
            for dense attention.
        model_kwargs: passed to ``AutoModelForCausalLM.from_pretrained`` (a ``dtype`` /
            ``torch_dtype`` string such as "bfloat16" is converted; ``trust_remote_code`` only
            if given here).
        tokenizer_kwargs: passed to ``AutoTokenizer.from_pretrained``.
        device: "cpu", "cuda" (the current CUDA device), "cuda:N"; default cuda if available.

    Attributes:
        reuse_context_cache: True (default): one dense prefill per context, cropped back per
            question. False re-prefills the context for every question (the baseline of
            ``bench/kv_reuse.py``; answers are the same).
    """

    def __init__(
        self,
        model_name: str,
        sparse_attention_config: Any = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        check_model_source(model_name)
        super().__init__(model_name, None)
        self.device = resolve_device(device)
        self.model_kwargs = prepare_model_kwargs(model_kwargs)
        sparse_attention_config = _normalise_config(sparse_attention_config)
        research = _build_research_attention(sparse_attention_config)
        self.tokenizer = load_tokenizer(model_name, tokenizer_kwargs, self.model_kwargs)
        self.model = load_model(model_name, self.model_kwargs, self.device)
        if "device_map" in self.model_kwargs:  # the model placed itself: feed its input device
            self.device = torch.device(self.model.device)
        self.sparse_attention_config = sparse_attention_config
        self._switch = SparseAttentionSwitch(self.model, research)
        self.reuse_context_cache = True
        self._request_counter = itertools.count()
        self._stop_ids = self._collect_stop_ids()
        self._cache_argument = cache_argument_name(self.model)

    # ------------------------------------------------------------------ configuration

    @property
    def research_attention(self) -> Any:
        """The ResearchAttention in use, or None (dense)."""
        return self._switch.research_attention

    @property
    def attention_implementation_name(self) -> str:
        """The research attention's name in transformers' AttentionInterface (shared)."""
        return self._switch.name

    def set_sparse_attention_config(self, sparse_attention_config: Any) -> None:
        """Switch the sparse-attention config on the loaded model (None = dense).

        Accepts a ResearchAttentionConfig or its ``to_dict()`` form.
        """
        sparse_attention_config = _normalise_config(sparse_attention_config)
        self._switch.research_attention = _build_research_attention(sparse_attention_config)
        self.sparse_attention_config = sparse_attention_config

    @contextmanager
    def enable_sparse_mode(self) -> Iterator[None]:
        """Route every attention layer through the research attention (no-op when dense).

        The previous attention implementation is restored on exit, also after an exception.
        """
        if self.research_attention is None:
            yield
            return
        with self._switch.enable():
            yield

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable: model name, sparse config dict (or None), dtype, device."""
        cfg = self.sparse_attention_config
        return {
            "adapter": type(self).__name__,
            "model_name": self.model_name,
            "sparse_attention_config": None if cfg is None else cfg.to_dict(),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "attn_implementation": self.model.config._attn_implementation,
        }

    def _collect_stop_ids(self) -> set[int]:
        ids: set[int] = set()
        for value in (
            self.tokenizer.eos_token_id,
            getattr(self.model.generation_config, "eos_token_id", None),
        ):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    # ------------------------------------------------------------------ requests

    def process_request(
        self,
        request: Request,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
    ) -> RequestResponse:
        """Answer every question of ``request`` on one dense prefill of its context.

        ``generation_kwargs``: max_new_tokens (default 256), do_sample, temperature, top_p,
        top_k, seed. ``request_kwargs``: max_context_length, truncation ("middle" | "left" |
        "right"), apply_chat_template, request_index. Neither dict is modified.
        Metadata per question: context_tokens, truncated_tokens, question_tokens,
        generated_tokens, generated_ids (the answer's token ids, EOS excluded: decoding the
        text back to ids is lossy), prefill_tokens (dense tokens actually run for this question),
        prefill_seconds (dense prefill, the shared one counted on the first question, plus
        the question tokens), decode_seconds, and the same time split as context_seconds
        (the dense context prefill alone) and question_seconds (the question tokens):
        prefill_seconds = context_seconds + question_seconds.
        """
        if not isinstance(request, Request):
            raise TypeError(f"request must be a Request, got {type(request).__name__}")
        questions = request.question_list
        if not questions:
            raise ValueError("Request.questions is empty: give at least one question")
        settings = GenerationSettings.from_kwargs(generation_kwargs)
        options = RequestOptions.from_kwargs(request_kwargs)
        encoded = encode_request(
            self.tokenizer, request.context, questions, request.answer_prefix, options
        )
        request_index = options.request_index
        if request_index is None:
            request_index = next(self._request_counter)
        with torch.inference_mode():
            answers, metadata = self._answer_all(encoded.prompts, settings, request_index)
        for meta in metadata:
            meta["truncated_tokens"] = encoded.truncated_tokens
        single = isinstance(request.questions, str)
        return RequestResponse(responses=answers[0] if single else answers, metadata=metadata)

    def _answer_all(
        self, prompts: list[EncodedPrompt], settings: GenerationSettings, request_index: int
    ) -> tuple[list[str], list[dict[str, Any]]]:
        answers: list[str] = []
        metadata: list[dict[str, Any]] = []
        context: ContextCache | None = None
        for question_index, prompt in enumerate(prompts):
            start = self._now()
            if context is None or not self.reuse_context_cache:
                context = self.new_context()
            prefilled = self.prefill_context(context, prompt.context_ids)
            prefill_seconds = self._now() - start
            with metric_context(request_index=request_index, question_index=question_index):
                tokens, question_seconds, decode_seconds = self._answer(
                    context.cache, prompt.question_ids, settings
                )
            answers.append(self.tokenizer.decode(tokens, skip_special_tokens=True))
            metadata.append(
                {
                    "context_tokens": prompt.context_end,
                    "truncated_tokens": 0,
                    "question_tokens": len(prompt.question_ids),
                    "generated_tokens": len(tokens),
                    "generated_ids": list(tokens),
                    "prefill_tokens": prefilled,
                    "prefill_seconds": prefill_seconds + question_seconds,
                    "decode_seconds": decode_seconds,
                    "context_seconds": prefill_seconds,
                    "question_seconds": question_seconds,
                }
            )
        return answers, metadata

    # ------------------------------------------------------------------ phases

    def new_context(self) -> ContextCache:
        """A fresh KV cache with fresh masker states: one request's context."""
        return ContextCache(self.model.config, self._switch.new_request())

    def forward(self, ids: list[int], cache: Any, keep: int = 1) -> torch.Tensor:
        """Run ``ids`` (one sequence) on top of ``cache``, the KV cache of the tokens before
        them, in whatever attention mode is active; the logits (keep, V) of the last ``keep``
        positions (0: every position)."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)  # (B=1, Q)
        self._switch.query_start = cache.get_seq_length()
        cache_kwarg = {self._cache_argument: cache}
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=keep, **cache_kwarg)
        return out.logits[0]

    def prefill_context(self, context: ContextCache, context_ids: list[int]) -> int:
        """Phase 1 (dense, or the config's sparse prefill): make ``context``'s cache hold
        exactly ``context_ids``, rolling back to their longest prefix it holds; returns the
        tokens run."""
        keep = context.rollback(context_ids)
        todo = context_ids[keep:]
        if todo:
            with self._observing():
                self.forward(todo, context.cache)
        context.prefilled(context_ids, keep)
        return len(todo)

    @property
    def stop_ids(self) -> frozenset[int]:
        """The token ids that end a generation (EOS and the chat template's end tokens)."""
        return frozenset(self._stop_ids)

    @contextmanager
    def _observing(self) -> Iterator[None]:
        """The context prefill's attention: sparse (``SparseAttentionSwitch.prefill``) when the
        config has prefill maskers (observing maskers observe there too), else the model's
        own, handed to the maskers that observe it."""
        research = self.research_attention
        if research is not None and research.sparse_prefill:
            with self._switch.prefill():
                yield
            return
        if research is None or not research.observes_prefill:
            yield
            return
        with self._switch.observe():
            yield

    def _answer(
        self, cache: Any, question_ids: list[int], settings: GenerationSettings
    ) -> tuple[list[int], float, float]:
        """Phases 2 and 3 in sparse mode.

        Returns (generated ids without the EOS, question seconds, decode seconds).
        """
        select = TokenSelector(settings)
        with self.enable_sparse_mode():
            start = self._now()
            first = select(self._run_question(question_ids, cache))
            question_seconds = self._now() - start
            start = self._now()
            generated = self._decode_tokens(first, cache, select, settings.max_new_tokens)
            decode_seconds = self._now() - start
        return generated, question_seconds, decode_seconds

    def _run_question(self, question_ids: list[int], cache: Any) -> torch.Tensor:
        """Phase 2: the question tokens on top of the context; the next logits (V,)."""
        return self.forward(question_ids, cache)[-1]

    def _decode_tokens(
        self, token: int, cache: Any, select: TokenSelector, max_new_tokens: int
    ) -> list[int]:
        """Phase 3: decode from ``token`` one token at a time until EOS or max_new_tokens."""
        generated: list[int] = []
        while token not in self._stop_ids:
            generated.append(token)
            if len(generated) >= max_new_tokens:
                break
            token = select(self._decode_one(token, cache))
        return generated

    def _decode_one(self, token: int, cache: Any) -> torch.Tensor:
        """One decode step: feed ``token``, return the next logits (V,)."""
        return self.forward([token], cache)[-1]

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


@contextmanager
def metric_context(**fields: Any) -> Iterator[None]:
    """Put ``fields`` into the MicroMetricLogger context for the block, then restore it."""
    from sparse_attention_hub.metric_logging import MicroMetricLogger

    metric_logger = MicroMetricLogger()
    previous = metric_logger.get_context()
    metric_logger.set_context(**fields)
    try:
        yield
    finally:
        metric_logger.clear_context()
        if previous:
            metric_logger.set_context(**previous)
