"""The masker base class, config base class and size helpers.

A masker looks at the attention inputs and the mask built so far and returns a new mask with
more active entries; it never removes entries another masker set. Its config is a frozen
dataclass that validates itself.

Sizes (``sink_size``, ``window_size``, ``heavy_size``, ...) are given either as an ``int``,
a number of tokens, or as a ``float`` in (0, 1], a fraction of the key length K. A fraction is
resolved on every call against the K of that call, rounded down but at least 1 token
(position-based maskers resolve it against the sequence length ``inputs.sequence_length``,
which is K on full-attention layers and more on sliding-window layers). An int size is at
most 2**31 tokens; the size a top-k method selects by (``heavy_size``, Quest's
``token_budget``) is at least 1, since 0 would keep no key (sink and window sizes may be 0).
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask

if TYPE_CHECKING:
    from sparse_attention_hub.sparse_attention.maskers.model_shape import ModelShape

Size = int | float


#: The largest size in tokens: a larger one exceeds any model's context and is a mistake.
MAX_SIZE_TOKENS = 2**31


def check_size(config: object, field: str, value: object, minimum: int = 0) -> None:
    """Validate a size field: an int in [minimum, 2**31] (tokens) or a float in (0, 1]
    (fraction of K). ``minimum=1`` for the size a method selects by (a top-k's
    ``heavy_size``): 0 would select no key, so the masker would add nothing.

    Raises:
        TypeError / ValueError naming ``<ConfigClass>.<field>``, the value and what is allowed.
    """
    where = f"{type(config).__name__}.{field}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{where} must be an int (tokens) or a float in (0, 1] (fraction of K), "
            f"got {value!r} of type {type(value).__name__}"
        )
    if isinstance(value, int) and not minimum <= value <= MAX_SIZE_TOKENS:
        why = ""
        if value == 0:
            why = ": 0 selects no key, so the masker would add nothing (leave it out instead)"
        elif value > MAX_SIZE_TOKENS:
            why = ": larger than any model's context"
        raise ValueError(
            f"{where} must be an int in [{minimum}, 2**31 = {MAX_SIZE_TOKENS}] tokens or a "
            f"float in (0, 1], got {value}{why}"
        )
    if isinstance(value, float) and not 0.0 < value <= 1.0:
        raise ValueError(
            f"{where} as a float is a fraction of K and must lie in (0, 1], got {value}; "
            "give an int for a number of tokens"
        )


def check_probability(config: object, field: str, value: object, low_open: bool) -> float:
    """Validate a probability-like field in [0, 1] (or (0, 1] when ``low_open``); return it."""
    where = f"{type(config).__name__}.{field}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{where} must be a number, got {value!r} of type {type(value).__name__}")
    p = float(value)
    if p > 1.0 or p < 0.0 or (low_open and p == 0.0) or p != p:
        allowed = "(0, 1]" if low_open else "[0, 1]"
        raise ValueError(f"{where} must lie in {allowed}, got {value}")
    return p


def resolve_size(size: Size, k: int) -> int:
    """Tokens for ``size`` against a key length ``k``: an int is tokens (capped at k); a float
    in (0, 1] is ``floor(size * k)`` tokens, at least 1 (when k > 0)."""
    if isinstance(size, float):
        return min(k, max(1, int(size * k))) if k > 0 else 0
    return min(int(size), k)


@dataclasses.dataclass(frozen=True)
class MaskerConfig:
    """Base of masker configs: frozen, picklable, validated in ``__post_init__``.

    ``artefact_fields`` names the fields that hold the path of an offline artefact the masker
    reads (a channel file, hash weights): the executor puts each file's content hash in the
    cell fingerprint, so a recalibrated file at the same path re-runs its cells, and checks
    each file with :meth:`artefact_problems` before any worker starts.

    ``revision`` counts the fixes that changed what a masker selects under the same config:
    a value above 0 enters the cell fingerprint, so cells computed before a fix run again
    instead of being reused (0, the default, leaves fingerprints as they were).

    ``default_omitted_fields`` names the fields added after a masker's first release: its
    ``{name: params}`` dict leaves each out while it holds its default, so the configs (and
    cell fingerprints) written before the field existed stay as they were."""

    artefact_fields: ClassVar[tuple[str, ...]] = ()
    revision: ClassVar[int] = 0
    default_omitted_fields: ClassVar[tuple[str, ...]] = ()

    def artefact_problems(
        self, model: ModelShape | None = None, layers: Collection[int] | None = None
    ) -> list[str]:
        """Why the artefact files of this config cannot serve ``model`` on ``layers`` (the
        layers that run this masker), one line each; [] when they can. Run before any worker
        starts (``executor.artefact_check``). This base checks that each file exists and is
        readable; a masker with ``artefact_fields`` extends it to read and check the content
        (format, values, and the shape when ``model`` is known)."""
        problems = []
        for field in self.artefact_fields:
            path = Path(str(getattr(self, field)))
            where = f"{type(self).__name__}.{field}={str(getattr(self, field))!r}"
            if not path.is_file():
                problems.append(f"{where}: no such file")
            elif not os.access(path, os.R_OK):
                problems.append(f"{where}: the file is not readable")
        return problems


def check_one_sampling(classes: Sequence[type[Masker]]) -> None:
    """ValueError unless at most one of the masker ``classes`` is a sampling masker (p < 1)
    and it is the last: the 1/p weights of two samplers would not compose into an unbiased
    estimate, and a sampler samples the keys the maskers before it left out."""
    names = [cls.name or cls.__name__ for cls in classes]
    sampling = [name for cls, name in zip(classes, names, strict=True) if cls.is_sampling]
    if len(sampling) > 1:
        raise ValueError(
            f"a masker list may hold at most one sampling masker, got {len(sampling)}: {sampling}"
        )
    if sampling and not classes[-1].is_sampling:
        raise ValueError(
            f"the sampling masker {sampling[0]!r} must be the last of the masker list (it "
            f"samples the keys the maskers before it left out), got the order {names}"
        )


class Masker(ABC):
    """Base class of maskers. Register a subclass with ``@register_masker(name, description)``.

    Subclasses set ``config_class`` and implement :meth:`add_mask`; maskers that rank keys by
    a score and keep the top k derive from :class:`~.topk.TopKMasker` and only write
    ``score(inputs)``; maskers that keep per-key state derive from
    :class:`~.stateful.StatefulMasker`.
    """

    config_class: ClassVar[type[MaskerConfig]] = MaskerConfig
    #: Set by ``register_masker``.
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: True for maskers whose entries have p < 1 (at most one per ResearchAttention).
    is_sampling: ClassVar[bool] = False
    #: True for maskers with per-layer state (``StatefulMasker``).
    is_stateful: ClassVar[bool] = False
    #: True for maskers that observe the context prefill (``EvictionMasker.observe_prefill``).
    observes_prefill: ClassVar[bool] = False
    #: True for maskers whose state removes keys for the whole chain (``EvictionMasker``).
    restricts_keys: ClassVar[bool] = False

    def __init__(self, config: MaskerConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, "
                f"got {type(config).__name__}"
            )
        self.config = config

    @classmethod
    def create_from_config(cls, config: MaskerConfig) -> Masker:
        """The masker for ``config``."""
        return cls(config)

    @abstractmethod
    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """A new mask: ``previous_mask`` plus this masker's entries.

        Args:
            inputs: the call's queries (B, H, Q, D), keys and values (B, Hkv, K, D), attention
                mask, scaling, layer, positions, shared exact scores and this masker's state.
            previous_mask: (B, H, Q, K), never modified.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"
