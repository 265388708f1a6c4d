"""Helpers that tests, benchmarks and the demo share: tiny local models, nothing downloaded."""

from sparse_attention_hub.testing.tiny_model import (
    ARCHS,
    DEFAULT_SIZES,
    make_tiny_model,
    tiny_model_fingerprint,
)

__all__ = ["ARCHS", "DEFAULT_SIZES", "make_tiny_model", "tiny_model_fingerprint"]
