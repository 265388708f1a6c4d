"""A small deterministic ModelAdapter for run_benchmark logic tests (no model behind it)."""

from __future__ import annotations

import copy
from typing import Any

from sparse_attention_hub.adapters.base import ModelAdapter, Request, RequestResponse


class EchoAdapter(ModelAdapter):
    """Answers each question with a deterministic string; records every call it gets.

    ``answers`` maps a question to its answer (default: ``"echo: <question>"``). With
    ``fail_after=k`` the (k+1)-th call raises RuntimeError, as a crash would.
    """

    def __init__(
        self, answers: dict[str, str] | None = None, fail_after: int | None = None
    ) -> None:
        super().__init__("echo-model")
        self.answers = answers or {}
        self.fail_after = fail_after
        self.calls: list[dict[str, Any]] = []

    def process_request(
        self,
        request: Request,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
    ) -> RequestResponse:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError(f"injected failure after {self.fail_after} requests")
        self.calls.append(
            {
                "context": request.context,
                "questions": request.question_list,
                "answer_prefix": request.answer_prefix,
                "generation_kwargs": copy.deepcopy(generation_kwargs),
                "request_kwargs": copy.deepcopy(request_kwargs),
            }
        )
        responses = [self.answers.get(q, f"echo: {q}") for q in request.question_list]
        metadata = [
            {
                "context_tokens": len(request.context.split()),
                "truncated_tokens": 0,
                "question_tokens": len(q.split()),
                "generated_tokens": len(r.split()),
                "prefill_seconds": 0.001,
                "decode_seconds": 0.002,
            }
            for q, r in zip(request.question_list, responses, strict=True)
        ]
        return RequestResponse(responses=responses, metadata=metadata)

    def set_sparse_attention_config(self, sparse_attention_config: Any) -> None:
        self.sparse_attention_config = sparse_attention_config
