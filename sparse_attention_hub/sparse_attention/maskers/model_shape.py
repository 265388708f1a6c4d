"""The attention shape of a model that an offline artefact (a channel file, hash weights) is
made for: layers, query heads, KV heads and head size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelShape:
    """The attention shape an artefact is made for: layers, query heads, KV heads, head size."""

    layers: int
    heads: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, config: Any) -> ModelShape:
        """The shape of a transformers model ``config``."""
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None) or int(config.hidden_size) // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return cls(int(config.num_hidden_layers), heads, int(kv_heads), int(head_dim))

    @classmethod
    def from_config_dict(cls, data: Mapping[str, Any]) -> ModelShape | None:
        """The shape in a model's ``config.json`` (a multimodal model's ``text_config``), or
        None when it does not say (an unknown layout)."""
        if "num_hidden_layers" not in data and isinstance(data.get("text_config"), Mapping):
            data = data["text_config"]
        try:
            heads = int(data["num_attention_heads"])
            head_dim = data.get("head_dim") or int(data["hidden_size"]) // heads
            kv_heads = data.get("num_key_value_heads") or heads
            shape = cls(int(data["num_hidden_layers"]), heads, int(kv_heads), int(head_dim))
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None
        return shape if min(shape.layers, shape.heads, shape.kv_heads, shape.head_dim) > 0 else None


__all__ = ["ModelShape"]
