"""``ResearchAttention``: apply a chain of maskers, then masked attention.

    cfg = ResearchAttentionConfig([SinkMaskerConfig(128), LocalMaskerConfig(512),
                                   OracleTopKConfig(0.1)])
    attn = ResearchAttention.create_from_config(cfg)
    out, _ = attn.custom_attention(None, q, k, v, None, scaling=None, dropout=0.0,
                                   sparse_meta_data={}, layer_idx=0)

An empty masker list is dense attention computed through this same path: the control arm of
a study. Metrics (through the MicroMetricLogger, ``layer_idx`` in the metadata), computed only
when enabled:

- ``research_attention_density``: active mask entries / all entries (0-dim tensor);
- ``research_attention_output_error``: ||out - dense|| / ||dense|| (relative L2); this costs a
  second, dense attention pass and is never computed otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sparse_attention_hub.metric_logging import MicroMetricLogger
from sparse_attention_hub.sparse_attention.attention import ScoreCache, masked_attention
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers import (
    Masker,
    MaskerConfig,
    create_masker,
    masker_class,
    masker_config_from_dict,
    masker_config_to_dict,
)

DENSITY_METRIC = "research_attention_density"
OUTPUT_ERROR_METRIC = "research_attention_output_error"
MicroMetricLogger.register_metric(DENSITY_METRIC, float)
MicroMetricLogger.register_metric(OUTPUT_ERROR_METRIC, float)


@dataclasses.dataclass
class ResearchAttentionConfig:
    """The ordered masker configs of one sparse-attention method (empty = dense control).

    ``to_dict()`` gives ``{"maskers": [{"sink": {"sink_size": 128}}, ...]}``, which
    ``from_dict`` reads back (JSON/YAML-able, used for fingerprints).
    """

    masker_configs: list[MaskerConfig] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.masker_configs, MaskerConfig) or not isinstance(
            self.masker_configs, Sequence
        ):
            raise TypeError(
                "ResearchAttentionConfig.masker_configs must be a list of masker configs, "
                f"got {type(self.masker_configs).__name__}"
            )
        self.masker_configs = list(self.masker_configs)
        classes = [masker_class(c) for c in self.masker_configs]  # TypeError if unknown
        sampling = [cls.name for cls in classes if cls.is_sampling]
        if len(sampling) > 1:
            raise ValueError(
                "ResearchAttentionConfig.masker_configs may hold at most one sampling masker, "
                f"got {len(sampling)}: {sampling}"
            )

    def to_dict(self) -> dict[str, list[dict[str, dict[str, Any]]]]:
        """``{"maskers": [{name: {param: value}}, ...]}``."""
        return {"maskers": [masker_config_to_dict(c) for c in self.masker_configs]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResearchAttentionConfig:
        """Inverse of :meth:`to_dict`; ValueError naming what is wrong."""
        if not isinstance(data, Mapping) or set(data) - {"maskers"}:
            raise ValueError(
                f'a sparse attention config is {{"maskers": [{{name: params}}, ...]}}, got {data!r}'
            )
        entries = data.get("maskers") or []
        if not isinstance(entries, list):
            raise ValueError(f'"maskers" must be a list, got {type(entries).__name__}')
        configs = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping) or len(entry) != 1:
                raise ValueError(
                    f"maskers[{i}] must be a one-key mapping {{name: params}}, got {entry!r}"
                )
            ((name, params),) = entry.items()
            configs.append(masker_config_from_dict(name, params))
        return cls(configs)


@dataclasses.dataclass(frozen=True)
class _CallOptions:
    """What ``custom_attention`` takes out of its ``kwargs`` before the maskers see them."""

    layer_idx: int | None
    sinks: torch.Tensor | None
    return_weights: bool

    @classmethod
    def pop_from(cls, module: torch.nn.Module | None, kwargs: dict[str, Any]) -> _CallOptions:
        """Pop ``layer_idx`` (else ``module.layer_idx``), ``s_aux`` / ``sinks``,
        ``output_attentions`` and any stray ``score_cache`` from ``kwargs`` (in place)."""
        layer_idx = kwargs.pop("layer_idx", None)
        if layer_idx is None:
            layer_idx = getattr(module, "layer_idx", None)
        sinks = kwargs.pop("s_aux", None)
        if sinks is None:
            sinks = kwargs.pop("sinks", None)
        return_weights = bool(kwargs.pop("output_attentions", False))
        kwargs.pop("score_cache", None)
        return cls(layer_idx, sinks, return_weights)


class ResearchAttention:
    """Simulated sparse attention: maskers build a mask, masked attention applies it."""

    def __init__(self, maskers: Sequence[Masker]) -> None:
        sampling = [type(m).__name__ for m in maskers if m.is_sampling]
        if len(sampling) > 1:
            raise ValueError(f"at most one sampling masker is allowed, got {sampling}")
        self.maskers = list(maskers)

    @classmethod
    def create_from_config(cls, config: ResearchAttentionConfig) -> ResearchAttention:
        """Build the maskers of ``config`` (TypeError for anything but a ResearchAttentionConfig
        holding registered masker configs)."""
        if not isinstance(config, ResearchAttentionConfig):
            raise TypeError(
                f"create_from_config needs a ResearchAttentionConfig, got {type(config).__name__}"
            )
        return cls([create_masker(c) for c in config.masker_configs])

    def build_mask(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None,
        dropout: float,
        sparse_meta_data: dict[Any, Any],
        **kwargs: Any,
    ) -> Mask:
        """The (B, H, Q, K) mask of the masker chain, starting from an empty mask.

        With no maskers it is the full mask (dense attention).
        """
        shape = (queries.shape[0], queries.shape[1], queries.shape[2], keys.shape[2])
        if not self.maskers:
            return Mask.create_full(shape, device=queries.device)
        mask = Mask.create_empty(shape, device=queries.device)
        for masker in self.maskers:
            mask = masker.add_mask(
                keys,
                queries,
                values,
                attention_mask,
                scaling,
                dropout,
                sparse_meta_data,
                mask,
                **kwargs,
            )
        return mask

    def custom_attention(
        self,
        module: torch.nn.Module | None,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None,
        dropout: float,
        sparse_meta_data: dict[Any, Any] | None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Sparse attention with the HF attention-interface shapes.

        Args:
            module: the attention module or None (the GQA group then comes from the shapes).
            queries: (B, H, Q, D); keys, values: (B, Hkv, K, D).
            attention_mask: None, bool (True = may attend) or additive, broadcastable to
                (B, H, Q, K).
            scaling: score scale (None = 1 / sqrt(D)).
            dropout: attention dropout probability (0 in evaluation).
            sparse_meta_data: per-request state for the maskers (fresh per question; None
                means a throw-away dict).
            kwargs: ``layer_idx`` (else ``module.layer_idx``), ``s_aux`` / ``sinks`` (per-head
                sink logits), ``output_attentions`` (return the weights), model extras.

        Returns:
            (output (B, Q, H, D) in the query dtype, weights (B, H, Q, K) or None).
        """
        options = _CallOptions.pop_from(module, kwargs)
        if sparse_meta_data is None:
            sparse_meta_data = {}
        cache = ScoreCache()
        mask = self.build_mask(
            queries,
            keys,
            values,
            attention_mask,
            scaling,
            dropout,
            sparse_meta_data,
            layer_idx=options.layer_idx,
            score_cache=cache,
            **kwargs,
        )
        scores = cache.get(queries, keys, scaling, attention_mask)
        out, weights = masked_attention(
            queries,
            keys,
            values,
            mask,
            scaling=scaling,
            sinks=options.sinks,
            dropout=dropout,
            return_weights=options.return_weights,
            scores=scores,
        )
        self._log_metrics(mask, out, queries, keys, values, scores, options)
        return out, weights

    @staticmethod
    def _log_metrics(
        mask: Mask,
        out: torch.Tensor,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        scores: torch.Tensor,
        options: _CallOptions,
    ) -> None:
        """Log density and output error, each only when enabled (the error costs a dense pass)."""
        logger = MicroMetricLogger()
        metadata = {"layer_idx": options.layer_idx}
        if logger.is_metric_enabled(DENSITY_METRIC):
            logger.log(DENSITY_METRIC, mask.density(), metadata)
        if logger.is_metric_enabled(OUTPUT_ERROR_METRIC):
            dense = dense_reference_output(queries, keys, values, scores, options.sinks)
            logger.log(OUTPUT_ERROR_METRIC, relative_l2_error(out, dense), dict(metadata))

    def __repr__(self) -> str:
        return f"ResearchAttention({self.maskers})"


def dense_reference_output(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    scores: torch.Tensor,
    sinks: torch.Tensor | None,
) -> torch.Tensor:
    """Dense attention (B, Q, H, D) from precomputed (B, H, Q, K) scores: the error baseline."""
    out, _ = masked_attention(queries, keys, values, None, sinks=sinks, scores=scores)
    return out


def relative_l2_error(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """||output - reference|| / ||reference|| in fp32, as a 0-dim tensor (0 when both are 0)."""
    diff = torch.linalg.vector_norm((output.float() - reference.float()).reshape(-1))
    norm = torch.linalg.vector_norm(reference.float().reshape(-1))
    return diff / norm.clamp_min(torch.finfo(torch.float32).tiny)
