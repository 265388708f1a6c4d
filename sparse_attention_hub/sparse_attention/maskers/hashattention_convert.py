"""``sah convert hashattention``: published HashAttention weights to the safetensors format.

Two sources (see ``hashattention_weights`` for both layouts): the reference framework's pickle,
read with the restricted unpickler of :mod:`.restricted_pickle` (tensors, arrays and plain
containers only, so the file runs no code), and the official repository's ``.pt``
checkpoints, read with ``torch.load(weights_only=True)``. Every tensor is checked (floating
point, finite) and every layer's shapes, before the safetensors file is written.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sparse_attention_hub.sparse_attention.maskers.hashattention_checks import check_tensor
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    HatLayer,
    HatWeights,
    check_layer,
    from_pickle_layout,
    is_pickle,
    save_hat_weights,
)
from sparse_attention_hub.sparse_attention.maskers.restricted_pickle import restricted_load

_SIDES = ("query", "key")


def from_usa_state_dict(state: dict[str, torch.Tensor], source: str) -> HatWeights:
    """Weights from the official repository's ``.pt`` checkpoints (xAlg-ai/HashAttention-1.0,
    ``load_usa``): an ``nn.ModuleList`` state dict with keys
    ``{layer}.learning_to_hash_transformation_{q|k}.{head}.{2 * j}.{weight|bias}``, each
    ``weight`` an ``nn.Linear`` (out, in) matrix (transposed and stacked over heads here)."""
    parts: dict[int, dict[str, dict[int, dict[int, dict[str, torch.Tensor]]]]] = {}
    for name, tensor in state.items():
        bits = name.split(".")
        if (
            len(bits) != 5
            or bits[1]
            not in ("learning_to_hash_transformation_q", "learning_to_hash_transformation_k")
            or not (bits[0].isdigit() and bits[2].isdigit() and bits[3].isdigit())
            or bits[4] not in ("weight", "bias")
        ):
            raise ValueError(f"{source}: unexpected entry {name!r} for a HashAttention checkpoint")
        side = "query" if bits[1].endswith("_q") else "key"
        layer = parts.setdefault(int(bits[0]), {}).setdefault(side, {})
        linear = layer.setdefault(int(bits[3]) // 2, {}).setdefault(int(bits[2]), {})
        linear[bits[4]] = check_tensor(tensor, source, name).float()
    if not parts:
        raise ValueError(f"{source}: no learning_to_hash_transformation entries")
    weights: HatWeights = {}
    for i, sides in sorted(parts.items()):
        mlps = []
        for side in _SIDES:
            linears = sides.get(side, {})
            mlp = []
            for j in range(len(linears)):
                heads = linears.get(j, {})
                try:
                    weight = torch.stack([heads[h]["weight"].t() for h in range(len(heads))])
                    bias = torch.stack([heads[h]["bias"] for h in range(len(heads))])
                except KeyError as exc:
                    raise ValueError(
                        f"{source}: layer {i}: the {side} MLP's linear layer {j} lacks an entry "
                        f"for a head ({exc})"
                    ) from exc
                mlp.append((weight, bias))  # (H, in, out), (H, out)
            mlps.append(tuple(mlp))
        weights[i] = HatLayer(mlps[0], mlps[1])
    return weights


def convert_pickle(source: str | Path, target: str | Path) -> HatWeights:
    """Read published weights ``source`` and write them as safetensors to ``target``; return
    the weights. ``source`` is the reference framework's pickle, read with the restricted
    unpickler (:mod:`.restricted_pickle`: tensors, arrays and plain containers only; any
    other global is refused, so the file runs no code), or an official ``.pt`` checkpoint
    (read with ``torch.load(weights_only=True)``, which runs no code either)."""
    if not Path(source).is_file():
        raise FileNotFoundError(f"HashAttention weights file not found: {source}")
    if is_pickle(source):
        weights = from_pickle_layout(restricted_load(source), str(source))
    else:
        try:
            state = torch.load(str(source), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for a non-checkpoint file
            raise ValueError(
                f"{source} is neither a HashAttention pickle nor a torch checkpoint: {exc}"
            ) from exc
        if not isinstance(state, dict):
            raise ValueError(f"{source}: expected a state dict, got {type(state).__name__}")
        weights = from_usa_state_dict(state, str(source))
    for layer_idx, layer in weights.items():
        check_layer(layer, str(source), layer_idx)
    save_hat_weights(weights, target)
    return weights


__all__ = ["convert_pickle", "from_usa_state_dict"]
