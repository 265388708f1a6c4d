"""``ResearchAttentionConfig``: the ordered masker configs of one sparse-attention method."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from sparse_attention_hub.sparse_attention.maskers import (
    MaskerConfig,
    check_one_sampling,
    masker_class,
    masker_config_from_dict,
    masker_config_to_dict,
    resolve_masker,
)
from sparse_attention_hub.sparse_attention.prefill.base import PrefillMaskerConfig
from sparse_attention_hub.sparse_attention.prefill.registry import (
    prefill_config_from_dict,
    prefill_config_to_dict,
    prefill_masker_class,
    resolve_prefill_masker,
)

#: The default memory budget of one block of queries of an attention call (128 MiB): at Q=1
#: it holds the scores of K = 1M keys at 32 heads; longer questions run in blocks of rows.
DEFAULT_SCORE_BUDGET_BYTES = 128 * 2**20
#: The smallest budget accepted: below it every call runs one query per block anyway.
MIN_SCORE_BUDGET_BYTES = 1
#: The keys of ``to_dict()`` / ``from_dict``.
CONFIG_KEYS = (
    "maskers",
    "dense_layers",
    "score_budget_bytes",
    "prefill_maskers",
    "prefill_block_size",
)
#: The default block size of the sparse prefill's ``BlockMask`` (FlexAttention's default tile).
DEFAULT_PREFILL_BLOCK_SIZE = 128


@dataclasses.dataclass
class ResearchAttentionConfig:
    """The ordered masker configs of one sparse-attention method (empty = dense control).

    ``dense_layers``: layer indices that keep full attention (an empty mask chain there, through
    the same masked-attention path), e.g. ``[0, 1]`` as Quest and Double Sparsity do.
    ``dense_layers_from_recipe``: they are a recipe's defaults, not the user's: the executor's
    preflight leaves out the layers a smaller model lacks (with a note) where it refuses a
    user's value beyond the model. It is not part of ``to_dict()`` or equality.

    ``score_budget_bytes``: the memory one block of queries may allocate in a call (scores,
    masks, a method's temporaries, an fp32 chunk of K/V); the research attention processes
    the queries of a call in blocks that fit it (see ``ResearchAttention``). A larger budget
    means fewer, larger blocks (fewer ops), a smaller one a lower peak.

    ``prefill_maskers``: the sparse-prefill methods (``sparse_attention.prefill``, their own
    registry) that choose which (query block, key block) pairs of the context prefill are
    computed; empty (the default) is the model's own dense prefill. ``prefill_block_size``:
    the block size of the engine's FlexAttention ``BlockMask`` (default 128).

    ``to_dict()`` gives ``{"maskers": [{"sink": {"sink_size": 128}}, ...]}`` (plus
    ``"dense_layers": [...]`` when there are any and ``"score_budget_bytes"`` when it is not
    the default, so fingerprints of default configs stay as they were), which ``from_dict`` reads back
    (JSON/YAML-able, used for fingerprints). Pickling keeps each
    masker's registry name, so a worker process resolves import-path and entry-point maskers
    again before it rebuilds the config.
    """

    masker_configs: list[MaskerConfig] = dataclasses.field(default_factory=list)
    dense_layers: list[int] = dataclasses.field(default_factory=list)
    dense_layers_from_recipe: bool = dataclasses.field(default=False, compare=False, repr=False)
    score_budget_bytes: int = DEFAULT_SCORE_BUDGET_BYTES
    prefill_masker_configs: list[PrefillMaskerConfig] = dataclasses.field(default_factory=list)
    prefill_block_size: int = DEFAULT_PREFILL_BLOCK_SIZE

    def __post_init__(self) -> None:
        self.dense_layers = check_dense_layers(self.dense_layers)
        self.score_budget_bytes = check_score_budget(self.score_budget_bytes)
        self.prefill_masker_configs = check_prefill_configs(self.prefill_masker_configs)
        self.prefill_block_size = check_prefill_block_size(self.prefill_block_size)
        if isinstance(self.masker_configs, MaskerConfig) or not isinstance(
            self.masker_configs, Sequence
        ):
            raise TypeError(
                "ResearchAttentionConfig.masker_configs must be a list of masker configs, "
                f"got {type(self.masker_configs).__name__}"
            )
        self.masker_configs = list(self.masker_configs)
        try:
            check_one_sampling(
                [masker_class(c) for c in self.masker_configs]
            )  # TypeError if unknown
        except ValueError as exc:
            raise ValueError(f"ResearchAttentionConfig.masker_configs: {exc}") from None

    def masker_names(self) -> list[str]:
        """The registry name of each masker, in order."""
        return [masker_class(c).name for c in self.masker_configs]

    def prefill_masker_names(self) -> list[str]:
        """The registry name of each prefill masker, in order."""
        return [prefill_masker_class(c).name for c in self.prefill_masker_configs]

    def to_dict(self) -> dict[str, Any]:
        """``{"maskers": [{name: {param: value}}, ...]}``, plus ``"dense_layers"`` if any,
        ``"prefill_maskers"`` if any and the other keys where they are not the default."""
        data: dict[str, Any] = {"maskers": [masker_config_to_dict(c) for c in self.masker_configs]}
        if self.dense_layers:
            data["dense_layers"] = list(self.dense_layers)
        if self.score_budget_bytes != DEFAULT_SCORE_BUDGET_BYTES:
            data["score_budget_bytes"] = self.score_budget_bytes
        if self.prefill_masker_configs:
            data["prefill_maskers"] = [
                prefill_config_to_dict(c) for c in self.prefill_masker_configs
            ]
        if self.prefill_block_size != DEFAULT_PREFILL_BLOCK_SIZE:
            data["prefill_block_size"] = self.prefill_block_size
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResearchAttentionConfig:
        """Inverse of :meth:`to_dict`; ValueError naming what is wrong."""
        if not isinstance(data, Mapping) or set(data) - set(CONFIG_KEYS):
            raise ValueError(
                f'a sparse attention config is {{"maskers": [{{name: params}}, ...]}} with the '
                f"optional keys {list(CONFIG_KEYS[1:])}, got {data!r}"
            )
        configs = [
            masker_config_from_dict(name, params)
            for name, params in _entries(data.get("maskers"), "maskers")
        ]
        prefill = [
            prefill_config_from_dict(name, params)
            for name, params in _entries(data.get("prefill_maskers"), "prefill_maskers")
        ]
        return cls(
            configs,
            data.get("dense_layers") or [],
            score_budget_bytes=data.get("score_budget_bytes", DEFAULT_SCORE_BUDGET_BYTES),
            prefill_masker_configs=prefill,
            prefill_block_size=data.get("prefill_block_size", DEFAULT_PREFILL_BLOCK_SIZE),
        )

    @classmethod
    def from_recipe(cls, name: str, **params: Any) -> ResearchAttentionConfig:
        """The config of recipe ``name`` (``sparse_attention.recipes``) with ``params``
        overriding its defaults; ValueError for an unknown recipe or parameter (naming the
        recipe's parameters)."""
        from sparse_attention_hub.sparse_attention.recipes import expand_recipe

        config = cls.from_dict(expand_recipe(name, params))
        config.dense_layers_from_recipe = "dense_layers" not in params
        return config

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _unpickle,
            (
                self.masker_names(),
                self.masker_configs,
                self.dense_layers,
                self.score_budget_bytes,
                self.prefill_masker_names(),
                self.prefill_masker_configs,
                self.prefill_block_size,
            ),
        )


def _entries(value: object, key: str) -> list[tuple[str, Any]]:
    """The ``(name, params)`` pairs of a ``[{name: params}, ...]`` list under ``key``."""
    entries = value or []
    if not isinstance(entries, list):
        raise ValueError(f'"{key}" must be a list, got {type(entries).__name__}')
    pairs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise ValueError(
                f"{key}[{i}] must be a one-key mapping {{name: params}}, got {entry!r}"
            )
        ((name, params),) = entry.items()
        pairs.append((name, params))
    return pairs


def check_prefill_configs(value: object) -> list[PrefillMaskerConfig]:
    """``value`` as a list of registered prefill masker configs; TypeError naming
    ``ResearchAttentionConfig.prefill_masker_configs`` otherwise."""
    where = "ResearchAttentionConfig.prefill_masker_configs"
    if isinstance(value, PrefillMaskerConfig | str | bytes | Mapping) or not isinstance(
        value, Sequence
    ):
        raise TypeError(f"{where} must be a list of prefill masker configs, got {value!r}")
    configs = list(value)
    for config in configs:
        if not isinstance(config, PrefillMaskerConfig):
            raise TypeError(
                f"{where} must hold prefill masker configs (sparse_attention.prefill), got "
                f"{type(config).__name__}"
            )
        prefill_masker_class(config)  # TypeError for an unregistered config type
    return configs


def check_prefill_block_size(value: object) -> int:
    """``value`` as the engine's BlockMask block size: an int >= 1 (ValueError naming
    ``ResearchAttentionConfig.prefill_block_size`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            "ResearchAttentionConfig.prefill_block_size must be an int >= 1 (tokens per block "
            f"of the prefill BlockMask; default {DEFAULT_PREFILL_BLOCK_SIZE}), got {value!r}"
        )
    return value


def check_dense_layers(value: object) -> list[int]:
    """``value`` as a sorted list of distinct layer indices (ints >= 0); ValueError naming
    ``ResearchAttentionConfig.dense_layers`` otherwise."""
    where = "ResearchAttentionConfig.dense_layers"
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence | set):
        raise ValueError(f"{where} must be a list of layer indices (ints >= 0), got {value!r}")
    bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise ValueError(
            f"{where} must hold layer indices (ints >= 0), got {bad[0]!r} in {value!r}"
        )
    if len(set(value)) != len(list(value)):
        raise ValueError(f"{where} must not repeat a layer, got {list(value)!r}")
    return sorted(int(v) for v in value)


def check_score_budget(value: object) -> int:
    """``value`` as a memory budget in bytes: an int of at least :data:`MIN_SCORE_BUDGET_BYTES`
    (ValueError naming ``ResearchAttentionConfig.score_budget_bytes`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SCORE_BUDGET_BYTES:
        raise ValueError(
            "ResearchAttentionConfig.score_budget_bytes must be an int of at least "
            f"{MIN_SCORE_BUDGET_BYTES} bytes (default {DEFAULT_SCORE_BUDGET_BYTES} = 128 MiB), "
            f"got {value!r}"
        )
    return value


def _unpickle(
    names: list[str],
    configs: list[MaskerConfig],
    dense_layers: list[int] | None = None,
    score_budget_bytes: int = DEFAULT_SCORE_BUDGET_BYTES,
    prefill_names: list[str] | None = None,
    prefill_configs: list[PrefillMaskerConfig] | None = None,
    prefill_block_size: int = DEFAULT_PREFILL_BLOCK_SIZE,
) -> ResearchAttentionConfig:
    """Resolve every masker name in this process (import paths, entry points), then rebuild."""
    for name in names:
        resolve_masker(name)
    for name in prefill_names or []:
        resolve_prefill_masker(name)
    return ResearchAttentionConfig(
        configs,
        dense_layers or [],
        score_budget_bytes=score_budget_bytes,
        prefill_masker_configs=prefill_configs or [],
        prefill_block_size=prefill_block_size,
    )
