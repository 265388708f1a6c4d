"""A new masker is one small class: the top-k template, a config, a decorator."""

from dataclasses import dataclass

import pytest
import torch

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    Mask,
    ResearchAttention,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.maskers import (
    MaskerConfig,
    SinkMaskerConfig,
    TopKMasker,
    check_size,
    describe_maskers,
    register_masker,
)
from sparse_attention_hub.sparse_attention.maskers import registry as masker_registry


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in the test vanish afterwards."""
    monkeypatch.setattr(masker_registry, "_BY_NAME", dict(masker_registry._BY_NAME))
    monkeypatch.setattr(masker_registry, "_BY_CONFIG", dict(masker_registry._BY_CONFIG))


def test_a_key_norm_top_k_masker_is_a_few_lines(scratch_registry):
    @dataclass(frozen=True)
    class KeyNormConfig(MaskerConfig):
        heavy_size: int | float

        def __post_init__(self) -> None:
            check_size(self, "heavy_size", self.heavy_size)

    @register_masker("key_norm", "Keys with the largest L2 norm.")
    class KeyNormMasker(TopKMasker):
        config_class = KeyNormConfig

        def size(self):
            return self.config.heavy_size

        def score(self, inputs):
            queries, keys = inputs.queries, inputs.keys
            b, h, q, _ = queries.shape
            norms = keys.norm(dim=-1).repeat_interleave(h // keys.shape[1], dim=1)  # (B, H, K)
            return norms.unsqueeze(2).expand(b, h, q, keys.shape[2])  # (B, H, Q, K)

    assert "key_norm" in [name for name, _, _ in describe_maskers()]
    cfg = ResearchAttentionConfig.from_dict(
        {"maskers": [{"sink": {"sink_size": 1}}, {"key_norm": {"heavy_size": 2}}]}
    )
    assert cfg.masker_configs[1] == KeyNormConfig(2)
    assert cfg.to_dict()["maskers"][1] == {"key_norm": {"heavy_size": 2}}

    keys = torch.zeros(1, 1, 6, 4)
    keys[0, 0, :, 0] = torch.tensor([9.0, 1.0, 5.0, 2.0, 7.0, 3.0])
    queries, values = torch.randn(1, 2, 1, 4), torch.randn(1, 1, 6, 4)
    mask = ResearchAttention.create_from_config(cfg).build_mask(
        AttentionInputs(queries, keys, values)
    )
    # the sink takes key 0 (norm 9); the two largest norms left are keys 4 and 2
    assert mask.render(0, 0) == mask.render(0, 1) == "#.#.#."
    assert isinstance(mask, Mask)
    with pytest.raises(ValueError, match="heavy_size"):
        ResearchAttentionConfig([SinkMaskerConfig(1), KeyNormConfig(-1)])
