"""synthetic_ruler: RULER-style long-context tasks generated locally to a token length."""

from sparse_attention_hub.benchmarks.synthetic_ruler.benchmark import LENGTHS, SyntheticRuler
from sparse_attention_hub.benchmarks.synthetic_ruler.generate import (
    generate_task,
    load_or_generate,
    tokenizer_fingerprint,
)
from sparse_attention_hub.benchmarks.synthetic_ruler.tasks import TASKS

__all__ = [
    "LENGTHS",
    "TASKS",
    "SyntheticRuler",
    "generate_task",
    "load_or_generate",
    "tokenizer_fingerprint",
]
