"""Helpers that tests, benchmarks and the demo share: tiny local models, nothing downloaded."""

from sparse_attention_hub.testing.tiny_model import (
    ARCHS,
    DEFAULT_SIZES,
    make_tiny_model,
    tiny_model_fingerprint,
)
from sparse_attention_hub.testing.trained_model import (
    copy_trained_model,
    trained_model_dir,
    trained_model_record,
)

__all__ = [
    "ARCHS",
    "DEFAULT_SIZES",
    "copy_trained_model",
    "make_tiny_model",
    "tiny_model_fingerprint",
    "trained_model_dir",
    "trained_model_record",
]
