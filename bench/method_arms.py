"""The method arm of each registered masker in ``bench/attention_overhead.py``.

An arm builds the method's masker configs for one decode-step shape (the bench puts
Sink(128) + Local(128) before them) at the issue's 5 % budget. A method that needs an
offline artefact (a channel file, hash weights) writes one for ``shape`` under ``workdir``:
its content does not change the timing, only its shape does. A new masker adds one entry to
``METHOD_ARMS``; ``missing_arms()`` names the registered maskers that have none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparse_attention_hub.sparse_attention.maskers import (
    HashAttentionConfig,
    MaskerConfig,
    OracleTopPMaskerConfig,
    QuestConfig,
    RandomSamplingMaskerConfig,
    available_maskers,
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


# Maskers the bench's fixed arms already time (sink, local, oracle top-k) or that are the
# building blocks of every stack; they need no method arm of their own.
BUILDING_BLOCKS = frozenset({"sink", "local", "oracle_top_k"})

METHOD_ARMS: dict[str, Arm] = {
    "oracle_top_p": Arm(lambda shape, workdir: [OracleTopPMaskerConfig(top_p=0.9)], target=None),
    "random_sampling": Arm(
        lambda shape, workdir: [RandomSamplingMaskerConfig(sampling_rate=0.05)], target=3.0
    ),
    "quest": Arm(lambda shape, workdir: [QuestConfig(token_budget=0.05)]),
    "hashattention": Arm(lambda shape, workdir: [_hashattention(shape, workdir)]),
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
