"""Checks of a HashAttention weights file's content: header metadata, tensor dtypes and
values, and the layer set against the model.

Each check raises a ValueError naming the file and the tensor (or metadata field), as Double
Sparsity's channel files do (``double_sparsity_channels``); the shapes are checked by
``hashattention_weights.check_layer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

FORMAT = "sah-hashattention"
VERSION = "1"
#: Activations between the linear layers that the masker applies (the official MLP: SiLU).
ACTIVATIONS = ("silu",)
#: The header metadata ``save_hat_weights`` writes.
METADATA = {"format": FORMAT, "version": VERSION, "activation": ACTIVATIONS[0]}


def check_metadata(metadata: Mapping[str, str] | None, source: str) -> None:
    """ValueError naming ``source`` and the field unless the safetensors header metadata is
    ``{"format": "sah-hashattention", "version": "1", "activation": "silu"}`` (other keys
    are ignored)."""
    expected = ", ".join(f"{key}: {value}" for key, value in METADATA.items())
    if not metadata:
        raise ValueError(
            f"{source}: no header metadata; a HashAttention weights file holds {{{expected}}} "
            "(write it with `sah train hashattention` or `sah convert hashattention`)"
        )
    allowed = {"format": (FORMAT,), "version": (VERSION,), "activation": ACTIVATIONS}
    for key, values in allowed.items():
        value = metadata.get(key)
        if value not in values:
            found = "no" if value is None else repr(value)
            raise ValueError(
                f"{source}: metadata field {key!r} is {found}, expected one of "
                f"{list(values)} (a HashAttention weights file holds {{{expected}}})"
            )


def check_tensor(tensor: object, source: str, name: str) -> torch.Tensor:
    """``tensor`` if it is a floating-point tensor with only finite values; else a ValueError
    naming ``source`` and the tensor ``name``."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{source}: {name} is a {type(tensor).__name__}, expected a tensor")
    if not tensor.is_floating_point():
        raise ValueError(
            f"{source}: tensor {name} has dtype {tensor.dtype}; HashAttention weights must be "
            "floating point (float32, float16 or bfloat16)"
        )
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        nan = int(torch.isnan(tensor).sum())
        inf = int((~finite).sum()) - nan
        raise ValueError(
            f"{source}: tensor {name} holds {nan} NaN and {inf} infinite value(s); weights must "
            "be finite (a damaged file or a diverged training)"
        )
    return tensor


def check_layer_set(layers: Iterable[int], source: str, num_layers: int) -> None:
    """ValueError naming ``source`` unless every layer index in ``layers`` is below the
    model's ``num_layers`` (a file may cover only some layers, never more than it has)."""
    extra = sorted(i for i in layers if not 0 <= i < num_layers)
    if extra:
        raise ValueError(
            f"{source}: weights for layer(s) {extra}, but the model has {num_layers} layers "
            f"(0..{num_layers - 1}); the file was made for another model"
        )


__all__ = [
    "ACTIVATIONS",
    "FORMAT",
    "METADATA",
    "VERSION",
    "check_layer_set",
    "check_metadata",
    "check_tensor",
]
