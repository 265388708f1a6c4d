"""ruler: the pre-generated RULER sets from the hub (simonjegou/ruler), 13 tasks per length."""

from sparse_attention_hub.benchmarks.ruler.benchmark import (
    HUB_LENGTHS,
    LOCAL_LENGTHS,
    RULER_LENGTHS,
    Ruler,
    ruler_metric,
)

__all__ = ["HUB_LENGTHS", "LOCAL_LENGTHS", "RULER_LENGTHS", "Ruler", "ruler_metric"]
