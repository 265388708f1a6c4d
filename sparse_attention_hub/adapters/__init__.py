"""Model adapters: the bridge between benchmarks and models."""

from sparse_attention_hub.adapters.base import ModelAdapter, Request, RequestResponse
from sparse_attention_hub.adapters.generation import DEFAULT_MAX_NEW_TOKENS
from sparse_attention_hub.adapters.huggingface import ModelAdapterHF
from sparse_attention_hub.adapters.prompting import TRUNCATION_CHOICES

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "TRUNCATION_CHOICES",
    "ModelAdapter",
    "ModelAdapterHF",
    "Request",
    "RequestResponse",
]
