"""Maskers: each adds entries to the mask built so far (see ``base`` and ``registry``).

Importing this package registers the built-in maskers under their short names:
``sink``, ``local``, ``oracle_top_k``, ``oracle_top_p``, ``random_sampling``, ``quest``,
``pq_cache``, ``double_sparsity``, ``hashattention``, ``magicpig``, ``vattention``,
``socket``, and the KV-cache eviction maskers ``snapkv``, ``knorm``, ``tova``, ``h2o``,
``pyramidkv``, ``streaming_eviction`` (see ``eviction``; Ada-KV is their ``head_budget: adaptive``). Maskers from outside the package are named by import path or found as entry
points (see ``registry``). Sizes given as an
``int`` are tokens; as a ``float`` in (0, 1] they are a fraction of the key length K, resolved
on every call (at least 1 token).
"""

from sparse_attention_hub.sparse_attention.maskers.base import (
    Masker,
    MaskerConfig,
    check_one_sampling,
    check_probability,
    check_size,
    resolve_size,
)
from sparse_attention_hub.sparse_attention.maskers.eviction import EvictionConfig, EvictionMasker
from sparse_attention_hub.sparse_attention.maskers.registry import (
    ENTRY_POINT_GROUP,
    available_maskers,
    create_masker,
    describe_maskers,
    masker_class,
    masker_config_from_dict,
    masker_config_to_dict,
    register_masker,
    resolve_masker,
)
from sparse_attention_hub.sparse_attention.maskers.stateful import StatefulMasker
from sparse_attention_hub.sparse_attention.maskers.topk import TopKMasker

# isort: off
# Registration (and so `sah list maskers`) follows this order.
from sparse_attention_hub.sparse_attention.maskers.sink import SinkMasker, SinkMaskerConfig
from sparse_attention_hub.sparse_attention.maskers.local import LocalMasker, LocalMaskerConfig
from sparse_attention_hub.sparse_attention.maskers.oracle_top_k import OracleTopK, OracleTopKConfig
from sparse_attention_hub.sparse_attention.maskers.oracle_top_p import (
    OracleTopPMasker,
    OracleTopPMaskerConfig,
)
from sparse_attention_hub.sparse_attention.maskers.random_sampling import (
    RandomSamplingMasker,
    RandomSamplingMaskerConfig,
)
from sparse_attention_hub.sparse_attention.maskers.quest import QuestConfig, QuestMasker
from sparse_attention_hub.sparse_attention.maskers.pq_cache import PQCacheConfig, PQCacheMasker
from sparse_attention_hub.sparse_attention.maskers.double_sparsity import (
    DoubleSparsityConfig,
    DoubleSparsityMasker,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention import (
    HashAttentionConfig,
    HashAttentionMasker,
)
from sparse_attention_hub.sparse_attention.maskers.magicpig import MagicPigConfig, MagicPigMasker
from sparse_attention_hub.sparse_attention.maskers.vattention import (
    VAttentionConfig,
    VAttentionMasker,
)
from sparse_attention_hub.sparse_attention.maskers.socket_top_k import SocketConfig, SocketMasker
from sparse_attention_hub.sparse_attention.maskers.snapkv import SnapKVConfig, SnapKVMasker
from sparse_attention_hub.sparse_attention.maskers.knorm import KNormConfig, KNormMasker
from sparse_attention_hub.sparse_attention.maskers.tova import TOVAConfig, TOVAMasker
from sparse_attention_hub.sparse_attention.maskers.h2o import H2OConfig, H2OMasker
from sparse_attention_hub.sparse_attention.maskers.pyramidkv import (
    PyramidKVConfig,
    PyramidKVMasker,
)
from sparse_attention_hub.sparse_attention.maskers.streaming_eviction import (
    StreamingEvictionConfig,
    StreamingEvictionMasker,
)

# isort: on

__all__ = [
    "ENTRY_POINT_GROUP",
    "DoubleSparsityConfig",
    "DoubleSparsityMasker",
    "EvictionConfig",
    "EvictionMasker",
    "H2OConfig",
    "H2OMasker",
    "HashAttentionConfig",
    "HashAttentionMasker",
    "KNormConfig",
    "KNormMasker",
    "LocalMasker",
    "LocalMaskerConfig",
    "MagicPigConfig",
    "MagicPigMasker",
    "Masker",
    "MaskerConfig",
    "OracleTopK",
    "OracleTopKConfig",
    "OracleTopPMasker",
    "OracleTopPMaskerConfig",
    "PQCacheConfig",
    "PQCacheMasker",
    "PyramidKVConfig",
    "PyramidKVMasker",
    "QuestConfig",
    "QuestMasker",
    "RandomSamplingMasker",
    "RandomSamplingMaskerConfig",
    "SinkMasker",
    "SinkMaskerConfig",
    "SnapKVConfig",
    "SnapKVMasker",
    "SocketConfig",
    "SocketMasker",
    "StatefulMasker",
    "StreamingEvictionConfig",
    "StreamingEvictionMasker",
    "TOVAConfig",
    "TOVAMasker",
    "TopKMasker",
    "VAttentionConfig",
    "VAttentionMasker",
    "available_maskers",
    "check_one_sampling",
    "check_probability",
    "check_size",
    "create_masker",
    "describe_maskers",
    "masker_class",
    "masker_config_from_dict",
    "masker_config_to_dict",
    "register_masker",
    "resolve_masker",
    "resolve_size",
]
