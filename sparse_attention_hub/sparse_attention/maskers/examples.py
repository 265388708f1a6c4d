"""One example config list covering every built-in masker (int and float sizes).

Shared by the tests (every masker in it goes through the same property tests) and handy for
demos. A new masker adds its examples here; a test checks every registered name appears.

A masker that reads an offline artefact made for one model shape (a channel file, hash
weights) cannot run on the shared list's random shapes: it adds a builder to
``ARTEFACT_EXAMPLES`` instead, which writes the artefact for a given shape under a folder and
returns the configs. The rollback-law test runs those on its tiny models; the masker's own
tests cover its properties.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sparse_attention_hub.sparse_attention.maskers.base import MaskerConfig
from sparse_attention_hub.sparse_attention.maskers.double_sparsity import DoubleSparsityConfig
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
    random_channel_table,
    write_channel_file,
)
from sparse_attention_hub.sparse_attention.maskers.h2o import H2OConfig
from sparse_attention_hub.sparse_attention.maskers.knorm import KNormConfig
from sparse_attention_hub.sparse_attention.maskers.local import LocalMaskerConfig
from sparse_attention_hub.sparse_attention.maskers.magicpig import MagicPigConfig
from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape
from sparse_attention_hub.sparse_attention.maskers.oracle_top_k import OracleTopKConfig
from sparse_attention_hub.sparse_attention.maskers.oracle_top_p import OracleTopPMaskerConfig
from sparse_attention_hub.sparse_attention.maskers.pq_cache import PQCacheConfig
from sparse_attention_hub.sparse_attention.maskers.pyramidkv import PyramidKVConfig
from sparse_attention_hub.sparse_attention.maskers.quest import QuestConfig
from sparse_attention_hub.sparse_attention.maskers.random_sampling import (
    RandomSamplingMaskerConfig,
)
from sparse_attention_hub.sparse_attention.maskers.sink import SinkMaskerConfig
from sparse_attention_hub.sparse_attention.maskers.snapkv import SnapKVConfig
from sparse_attention_hub.sparse_attention.maskers.socket_top_k import SocketConfig
from sparse_attention_hub.sparse_attention.maskers.streaming_eviction import (
    StreamingEvictionConfig,
)
from sparse_attention_hub.sparse_attention.maskers.tova import TOVAConfig
from sparse_attention_hub.sparse_attention.maskers.vattention import VAttentionConfig


def example_masker_configs() -> list[MaskerConfig]:
    """Fresh example configs: each built-in masker with small, large, int and float sizes."""
    return [
        SinkMaskerConfig(sink_size=0),
        SinkMaskerConfig(sink_size=3),
        SinkMaskerConfig(sink_size=0.25),
        SinkMaskerConfig(sink_size=10_000),
        LocalMaskerConfig(window_size=1),
        LocalMaskerConfig(window_size=4),
        LocalMaskerConfig(window_size=0.5),
        LocalMaskerConfig(window_size=10_000),
        OracleTopKConfig(heavy_size=2),
        OracleTopKConfig(heavy_size=0.3),
        OracleTopKConfig(heavy_size=1.0),
        OracleTopPMaskerConfig(top_p=0.0),
        OracleTopPMaskerConfig(top_p=0.7),
        OracleTopPMaskerConfig(top_p=1.0),
        RandomSamplingMaskerConfig(sampling_rate=0.25),
        RandomSamplingMaskerConfig(sampling_rate=1.0),
        QuestConfig(token_budget=8, page_size=4),
        QuestConfig(token_budget=0.5, page_size=2, label_bits=4),
        QuestConfig(token_budget=12, page_size=4, keep_last_page=True),
        QuestConfig(token_budget=10_000),
        MagicPigConfig(lsh_k=2, lsh_l=12, sink_size=1, window_size=2),
        MagicPigConfig(lsh_k=3, lsh_l=20, min_collisions=1, mips_transform=True, u_offset=1e-4),
        VAttentionConfig(init_offset=1, local_offset=1, base_rate_sampling=0.2),
        VAttentionConfig(
            epsilon=0.2, delta=0.2, init_offset=0, local_offset=0.25, z_rule="one_sided", seed=3
        ),
        PQCacheConfig(heavy_size=4, pq_subvectors=2, pq_bits=2, init_offset=2),
        PQCacheConfig(heavy_size=0.25, pq_subvectors=1, pq_bits=1, kmeans_iter=3, init_offset=0),
        PQCacheConfig(heavy_size=10_000),
        SocketConfig(heavy_size=3, lsh_k=3, lsh_l=4, tau=0.5),
        SocketConfig(heavy_size=0.25, lsh_k=1, lsh_l=1),
        SocketConfig(heavy_size=5, lsh_k=16, lsh_l=2, seed=0),
        SnapKVConfig(compression_ratio=0.5, window_size=8, kernel_size=3),
        SnapKVConfig(compression_ratio=0.75, window_size=4, query_aware=True),
        KNormConfig(compression_ratio=0.5),
        TOVAConfig(compression_ratio=0.6),
        TOVAConfig(compression_ratio=0.5, query_aware=True),
        H2OConfig(compression_ratio=0.5),
        H2OConfig(compression_ratio=0.7, recent_ratio=0.25, query_aware=True),
        H2OConfig(compression_ratio=0.5, decode_eviction=True),
        H2OConfig(compression_ratio=0.6, recent_ratio=0.25, query_aware=True, decode_eviction=True),
        PyramidKVConfig(compression_ratio=0.5, window_size=2, kernel_size=3, num_layers=64, beta=2),
        SnapKVConfig(compression_ratio=0.5, window_size=4, head_budget="adaptive"),
        KNormConfig(compression_ratio=0.6, head_budget="adaptive", alpha_safeguard=0.5),
        StreamingEvictionConfig(compression_ratio=0.5, n_sink=2),
        StreamingEvictionConfig(compression_ratio=0.75, query_aware=True),
    ]


def _double_sparsity_examples(shape: ModelShape, folder: Path) -> list[MaskerConfig]:
    table = random_channel_table(shape.layers, shape.heads, shape.kv_heads, shape.head_dim)
    path = str(write_channel_file(folder / "double_sparsity_channels.json", table))
    return [
        DoubleSparsityConfig(heavy_size=3, channel_file=path, group_factor=2),
        DoubleSparsityConfig(
            heavy_size=0.5, channel_file=path, group_factor=4, label_bits=16, channel_selection="k"
        ),
        DoubleSparsityConfig(heavy_size=10_000, channel_file=path),
    ]


def _hashattention_examples(shape: ModelShape, folder: Path) -> list[MaskerConfig]:
    from sparse_attention_hub.sparse_attention.maskers.hashattention import HashAttentionConfig
    from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
        random_hat_weights,
        save_hat_weights,
    )

    weights = random_hat_weights(shape.layers, shape.heads, shape.head_dim, hidden=16, seed=0)
    path = str(save_hat_weights(weights, folder / "hashattention.safetensors"))
    return [
        HashAttentionConfig(heavy_size=4, weights_file=path),
        HashAttentionConfig(heavy_size=0.25, weights_file=path),
        HashAttentionConfig(heavy_size=10_000, weights_file=path),
    ]


#: Maskers that need an artefact made for the model: name -> (shape, folder) -> configs.
ARTEFACT_EXAMPLES: dict[str, Callable[[ModelShape, Path], list[MaskerConfig]]] = {
    "double_sparsity": _double_sparsity_examples,
    "hashattention": _hashattention_examples,
}
