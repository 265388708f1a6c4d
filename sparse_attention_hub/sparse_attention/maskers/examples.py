"""One example config list covering every built-in masker (int and float sizes).

Shared by the tests (every masker in it goes through the same property tests) and handy for
demos. A new masker adds its examples here; a test checks every registered name appears,
here or in :data:`ARTEFACT_MASKERS`.
"""

from __future__ import annotations

from sparse_attention_hub.sparse_attention.maskers.base import MaskerConfig
from sparse_attention_hub.sparse_attention.maskers.local import LocalMaskerConfig
from sparse_attention_hub.sparse_attention.maskers.oracle_top_k import OracleTopKConfig
from sparse_attention_hub.sparse_attention.maskers.oracle_top_p import OracleTopPMaskerConfig
from sparse_attention_hub.sparse_attention.maskers.quest import QuestConfig
from sparse_attention_hub.sparse_attention.maskers.random_sampling import (
    RandomSamplingMaskerConfig,
)
from sparse_attention_hub.sparse_attention.maskers.sink import SinkMaskerConfig

#: Registered maskers whose configs need an artefact made for one model's shape (layers, heads,
#: head size), so they cannot run on the shared tests' random shapes. Each maps to the test
#: module that runs the shared properties on it with an artefact it writes; the rollback-law
#: test (tests/adapters/test_state_law.py) writes one for its tiny models.
ARTEFACT_MASKERS: dict[str, str] = {
    "hashattention": "tests/sparse_attention/test_hashattention.py",
}


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
    ]
