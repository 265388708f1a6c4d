"""ruler: the pre-generated RULER sets from the hub (simonjegou/ruler), 13 tasks per length."""

from sparse_attention_hub.benchmarks.ruler.benchmark import RULER_LENGTHS, Ruler, ruler_metric

__all__ = ["RULER_LENGTHS", "Ruler", "ruler_metric"]
