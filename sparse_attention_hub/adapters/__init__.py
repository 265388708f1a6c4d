"""Model adapters: the bridge between benchmarks and models."""

from sparse_attention_hub.adapters.base import ModelAdapter, Request, RequestResponse

__all__ = ["ModelAdapter", "Request", "RequestResponse"]
