"""A small stateful masker for tests and as a template: top-k by a cached per-key value.

Not registered on import. Name it by import path (that also exercises the registry's lazy
lookup), e.g. in a study YAML::

    sparse_configs:
      key_max: [{"tests.support.maskers:KeyMaxTopK": {heavy_size: 4}}]

The state of a layer is max_d |k_d| of every key, (B, Hkv, K): built once from all keys,
extended with each new key, truncated with the KV cache. If the state ever went out of step
with the cache (a rollback it missed, a new key it did not see), the masks would change: the
rollback law test relies on that.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers import (
    MaskerConfig,
    StatefulMasker,
    TopKMasker,
    check_size,
)
from sparse_attention_hub.sparse_attention.maskers.base import Size


@dataclass(frozen=True)
class KeyMaxTopKConfig(MaskerConfig):
    """``heavy_size``: int tokens or float fraction of K."""

    heavy_size: Size = 4

    def __post_init__(self) -> None:
        check_size(self, "heavy_size", self.heavy_size)


class KeyMaxTopK(StatefulMasker[torch.Tensor], TopKMasker):
    """The heavy_size keys with the largest max |k_d|, from a per-key state."""

    config_class = KeyMaxTopKConfig
    config: KeyMaxTopKConfig

    def size(self) -> Size:
        return self.config.heavy_size

    @staticmethod
    def _key_max(keys: torch.Tensor) -> torch.Tensor:
        """(B, Hkv, n, D) keys -> (B, Hkv, n) max |k_d| (exact: no rounding-order effects)."""
        return keys.abs().amax(dim=-1)

    def build_state(self, inputs: AttentionInputs) -> torch.Tensor:
        return self._key_max(inputs.keys)  # (B, Hkv, K)

    def extend_state(
        self, state: torch.Tensor, inputs: AttentionInputs, new_keys: int
    ) -> torch.Tensor:
        new = self._key_max(inputs.keys[:, :, -new_keys:])  # (B, Hkv, new_keys)
        return torch.cat([state, new], dim=2)  # (B, Hkv, K)

    def truncate_state(self, state: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return state[:, :, start:stop]  # (B, Hkv, stop - start)

    def score(self, inputs: AttentionInputs) -> torch.Tensor:
        """(B, H, Q, K): the key's cached value for every query; forbidden keys -inf."""
        per_key = inputs.per_query_head(self.state(inputs)).float()  # (B, H, K)
        scores = per_key.unsqueeze(2).expand(inputs.mask_shape)  # (B, H, Q, K)
        allowed = inputs.allowed_keys()
        return scores if allowed is None else scores.masked_fill(~allowed, float("-inf"))
