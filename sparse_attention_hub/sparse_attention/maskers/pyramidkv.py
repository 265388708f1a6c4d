"""PyramidKV (Cai et al., 2024, arXiv:2406.02069): SnapKV with a budget that shrinks with depth.

Follows kvpress's ``PyramidKVPress`` (KVCache-Factory's schedule): SnapKV's scores; layer ``l``
of ``num_layers`` keeps ``round(max_num - l * (max_num - min_num) / (num_layers - 1))`` keys per
KV head, where ``min_num = L (1 - ratio) / beta`` and ``max_num = 2 L (1 - ratio) - min_num``
(``max_num`` capped at ``L - window_size``), so the layers' mean is SnapKV's ``L (1 - ratio)``:
the ratio holds for the whole cache (to one key per layer), not per layer. Where the schedule
does not fit (``L >= max_num >= min_num >= window_size`` fails, e.g. a short context) every
layer keeps ``round(L (1 - ratio))``, as kvpress.

The layer count is the model's ``num_hidden_layers``, as kvpress reads it (the attention
module's config, ``AttentionInputs.num_layers``), unless the config's ``num_layers`` sets it
(outside a model it must): a call on a layer at or past it is refused. Deviations: as SnapKV's (see :mod:`.snapkv`); a ratio of 0 keeps
every key; the budget is clipped to [1, L].
"""

from __future__ import annotations

import dataclasses

from sparse_attention_hub.sparse_attention.maskers.registry import register_masker
from sparse_attention_hub.sparse_attention.maskers.snapkv import SnapKVConfig, SnapKVMasker


@dataclasses.dataclass(frozen=True)
class PyramidKVConfig(SnapKVConfig):
    """``num_layers``: the schedule's length, None (the default) for the model's layer count;
    ``beta``: the pyramid's steepness (20: the first layer keeps about ``2 beta - 1`` times
    the last)."""

    num_layers: int | None = None
    beta: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        for field, value, low in (("num_layers", self.num_layers, 1), ("beta", self.beta, 1)):
            if field == "num_layers" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                allowed = f"an int >= {low}" + (
                    " or None (the model's)" if field == "num_layers" else ""
                )
                raise ValueError(f"PyramidKVConfig.{field} must be {allowed}, got {value!r}")


def pyramid_budget(
    n_context: int, ratio: float, window: int, beta: int, num_layers: int, layer: int
) -> int:
    """Keys kept per KV head of ``n_context`` in ``layer`` of ``num_layers`` (see module)."""
    if ratio == 0 or n_context <= 0:
        return n_context
    share = n_context * (1 - ratio)  # max_capacity_prompt - window_size
    min_num = share / beta
    max_num = share * 2 - min_num
    if max_num >= n_context - window:
        max_num = n_context - window
        min_num = share * 2 - max_num
    if not n_context >= max_num >= min_num >= window:
        budget = round(share)
    else:
        steps = (max_num - min_num) / max(1, num_layers - 1)
        budget = round(max_num - layer * steps)
    return max(1, min(n_context, budget))


@register_masker(
    "pyramidkv",
    "PyramidKV eviction: SnapKV's scores with a per-layer budget shrinking with depth "
    "(kvpress's PyramidKVPress); compression_ratio of the whole cache's context removed.",
)
class PyramidKVMasker(SnapKVMasker):
    """SnapKV whose kept count follows the pyramid schedule (see module)."""

    config_class = PyramidKVConfig
    config: PyramidKVConfig

    def kept_keys(
        self, n_context: int, layer_idx: int | None, num_layers: int | None = None
    ) -> int:
        """The pyramid's budget for ``layer_idx`` (layer 0 outside a model) of ``num_layers``
        (the model's; the config's ``num_layers`` when set)."""
        layer = 0 if layer_idx is None else layer_idx
        layers = self.config.num_layers or num_layers
        if layers is None:
            raise ValueError(
                "PyramidKVConfig.num_layers is None (the model's layer count) but this call "
                "comes from no model config: set num_layers to the model's num_hidden_layers"
            )
        if layer >= layers:
            source = "PyramidKVConfig.num_layers" if self.config.num_layers else "the layer count"
            raise ValueError(
                f"{source}={layers} but layer {layer} runs pyramidkv: set num_layers to the "
                "model's num_hidden_layers"
            )
        c = self.config
        return pyramid_budget(
            n_context, float(c.compression_ratio), c.window_size, c.beta, layers, layer
        )
