"""The narrow interface benchmarks depend on: Request in, RequestResponse out.

A benchmark only ever calls :meth:`ModelAdapter.process_request`, so an adapter for another
inference engine can stand in for :class:`~sparse_attention_hub.adapters.ModelAdapterHF`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    """One long context and the questions asked about it.

    All questions share the context: an adapter prefills the context once and answers every
    question on top of its KV cache. A single question (a ``str``) gives a single response;
    a list gives a list in the same order.
    """

    context: str
    questions: str | list[str]
    answer_prefix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.context, str):
            raise TypeError(f"Request.context must be a str, got {type(self.context).__name__}")
        if not isinstance(self.answer_prefix, str):
            raise TypeError(
                f"Request.answer_prefix must be a str, got {type(self.answer_prefix).__name__}"
            )
        questions = [self.questions] if isinstance(self.questions, str) else self.questions
        if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
            raise TypeError("Request.questions must be a str or a list of str")
        if not questions:
            raise ValueError("Request.questions is empty: give at least one question")

    @property
    def question_list(self) -> list[str]:
        """The questions as a list, whatever form they were given in."""
        return [self.questions] if isinstance(self.questions, str) else list(self.questions)


@dataclass
class RequestResponse:
    """The answers to a :class:`Request`: a ``str`` for a single question, else a list.

    ``metadata`` holds one dict per question (token counts, truncation, timings), in order.
    """

    responses: str | list[str]
    metadata: list[dict[str, Any]] = field(default_factory=list)


class ModelAdapter(ABC):
    """Base class of model adapters.

    Subclasses load a model once and answer requests with the configured sparse attention.
    ``sparse_attention_config=None`` means dense attention.
    """

    def __init__(self, model_name: str, sparse_attention_config: Any = None) -> None:
        self.model_name = model_name
        self.sparse_attention_config = sparse_attention_config

    @abstractmethod
    def process_request(
        self,
        request: Request,
        generation_kwargs: dict[str, Any] | None = None,
        request_kwargs: dict[str, Any] | None = None,
    ) -> RequestResponse:
        """Answer every question of ``request``; never mutates the caller's dicts."""

    @abstractmethod
    def set_sparse_attention_config(self, sparse_attention_config: Any) -> None:
        """Switch the sparse-attention config on the already loaded model (None = dense)."""

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable description of the adapter, for a cell's config.json."""
        return {"adapter": type(self).__name__, "model_name": self.model_name}
