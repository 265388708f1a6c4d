"""sparse-attention-hub: simulated sparse attention in HuggingFace models, on long-context benchmarks.

Importing the package has no side effects: nothing registers into transformers and nothing
touches the network. Import the subpackages you need:

- ``sparse_attention_hub.sparse_attention``: Mask, masked attention, maskers, ResearchAttention
- ``sparse_attention_hub.adapters``: Request, RequestResponse, ModelAdapterHF
- ``sparse_attention_hub.benchmarks``: the Benchmark base class, registry and benchmarks
- ``sparse_attention_hub.cell_store``: the files of one result cell (the only code writing them)
- ``sparse_attention_hub.executor``: BenchmarkExecutor, BenchmarkConfig, AdapterConfig, ...
- ``sparse_attention_hub.metric_logging``: MicroMetricLogger
- ``sparse_attention_hub.testing``: tiny random models for tests and the demo
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
