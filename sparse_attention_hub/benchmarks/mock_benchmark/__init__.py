"""mock_benchmark: a handful of short self-contained QA rows, for tests and the demo."""

from sparse_attention_hub.benchmarks.mock_benchmark.benchmark import MockBenchmark, mock_rows

__all__ = ["MockBenchmark", "mock_rows"]
