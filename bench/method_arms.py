"""The method arm of each registered masker in ``bench/attention_overhead.py``.

An arm builds the method's masker configs for one decode-step shape (the bench puts
Sink(128) + Local(128) before them) at the issue's 5 % budget. A method that needs an
offline artefact (a channel file, hash weights) writes one for ``shape`` under ``workdir``:
its content does not change the timing, only its shape does. A new masker adds one entry to
``METHOD_ARMS``; ``missing_arms()`` names the registered maskers that have none.
``method_configs(name, ...)`` gives the configs that cover any registered masker (its arm,
oracle top-k at 5 %, nothing for sink and local, else the masker's config with its defaults
and the shape's layer count where it has one),
so a bench that walks the registry covers a new masker without a change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparse_attention_hub.sparse_attention.maskers import (
    DoubleSparsityConfig,
    HashAttentionConfig,
    MagicPigConfig,
    MaskerConfig,
    OracleTopKConfig,
    OracleTopPMaskerConfig,
    PQCacheConfig,
    QuestConfig,
    RandomSamplingMaskerConfig,
    SocketConfig,
    VAttentionConfig,
    available_maskers,
    resolve_masker,
)
from sparse_attention_hub.sparse_attention.maskers.double_sparsity_channels import (
    random_channel_table,
    write_channel_file,
)


@dataclass(frozen=True)
class ArmShape:
    """The decode step an arm is built for: query heads, KV heads, head size, keys, layers."""

    heads: int
    kv_heads: int
    head_dim: int
    keys: int
    layers: int


@dataclass(frozen=True)
class Arm:
    """``build(shape, workdir)`` gives the method's configs; ``target`` its ratio target
    against SDPA (None for an oracle, which no issue sets a speed target for)."""

    build: Callable[[ArmShape, Path], list[MaskerConfig]]
    target: float | None = 2.0

    def __call__(self, shape: ArmShape, workdir: Path) -> list[MaskerConfig]:
        return self.build(shape, workdir)


def _double_sparsity(shape: ArmShape, workdir: Path) -> list[MaskerConfig]:
    """Double Sparsity at 5 % with random channel rankings of the arm's shape (the ranking
    does not change the timing)."""
    table = random_channel_table(shape.layers, shape.heads, shape.kv_heads, shape.head_dim)
    path = write_channel_file(workdir / "double_sparsity_channels.json", table)
    return [DoubleSparsityConfig(heavy_size=0.05, channel_file=str(path))]


# Maskers the bench's fixed arms already time (sink, local, oracle top-k) or that are the
# building blocks of every stack; they need no method arm of their own.
BUILDING_BLOCKS = frozenset({"sink", "local", "oracle_top_k"})

METHOD_ARMS: dict[str, Arm] = {
    "oracle_top_p": Arm(lambda shape, workdir: [OracleTopPMaskerConfig(top_p=0.9)], target=None),
    "random_sampling": Arm(
        lambda shape, workdir: [RandomSamplingMaskerConfig(sampling_rate=0.05)], target=3.0
    ),
    "quest": Arm(lambda shape, workdir: [QuestConfig(token_budget=0.05)]),
    # the paper's (K, L) = (10, 150); its own dense sink and window are the bench's
    "magicpig": Arm(
        lambda shape, workdir: [MagicPigConfig(sink_size=128, window_size=128)], target=3.0
    ),
    # vAttention's deterministic part: the bench's sink and window plus oracle top-k 5 %
    "vattention": Arm(
        lambda shape, workdir: [OracleTopKConfig(0.05), VAttentionConfig()], target=3.0
    ),
    "pq_cache": Arm(lambda shape, workdir: [PQCacheConfig(heavy_size=0.05)]),
    "double_sparsity": Arm(_double_sparsity),
    "hashattention": Arm(lambda shape, workdir: [_hashattention(shape, workdir)]),
    # the reference's (K, L, tau) = (12, 60, 0.3)
    "socket": Arm(lambda shape, workdir: [SocketConfig(heavy_size=0.05)]),
}


def _hashattention(shape: ArmShape, workdir: Path) -> MaskerConfig:
    """HashAttention at 5 % with random official-size MLPs (D -> 128 -> 128 -> 32)."""
    from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
        random_hat_weights,
        save_hat_weights,
    )

    weights = random_hat_weights(shape.layers, shape.heads, shape.head_dim)
    path = save_hat_weights(weights, workdir / "hashattention.safetensors")
    return HashAttentionConfig(heavy_size=0.05, weights_file=str(path))


def missing_arms() -> list[str]:
    """Registered built-in maskers with neither a method arm nor a fixed one."""
    return sorted(set(available_maskers()) - set(METHOD_ARMS) - BUILDING_BLOCKS)


def method_configs(name: str, shape: ArmShape, workdir: Path) -> list[MaskerConfig]:
    """The configs a stack puts after Sink + Local to cover the registered masker ``name``:
    its method arm; OracleTopK(0.05) for oracle top-k; nothing for sink and local (the stack
    is then sink + local); else the masker's config with every default.

    Raises:
        ValueError: an unknown masker, or one with no arm whose config needs arguments.
    """
    if name in METHOD_ARMS:
        return METHOD_ARMS[name](shape, workdir)
    if name == "oracle_top_k":
        return [OracleTopKConfig(0.05)]
    if name in ("sink", "local"):
        return []
    config_class = resolve_masker(name).config_class
    # a layer count defaults to the model's, which a bare layer call does not have
    fields = {field.name for field in dataclasses.fields(config_class)}
    layers = {"num_layers": shape.layers} if "num_layers" in fields else {}
    try:
        return [config_class(**layers)]
    except TypeError as exc:
        raise ValueError(
            f"masker {name!r} has no arm in bench/method_arms.py METHOD_ARMS and its config "
            f"{config_class.__name__} needs arguments ({exc}); add an arm for it"
        ) from exc
