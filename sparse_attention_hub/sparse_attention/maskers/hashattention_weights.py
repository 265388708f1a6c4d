"""HashAttention weights: the file format, loading, checks, saving and conversion.

Each attention layer has, per query head, two MLPs (query and key) of ``n`` linear layers
(the official setting: 3 layers D -> 128 -> 128 -> hat_bits, SiLU between). All heads of one
linear layer are stacked into one tensor.

**Format (safetensors, the default).** One tensor per (attention layer ``i``, ``query`` or
``key``, linear layer ``j`` = 0 .. n-1, ``weight`` or ``bias``)::

    layers.{i}.query.{j}.weight   (H, in_j, out_j)   applied as x @ W + b
    layers.{i}.query.{j}.bias     (H, out_j)
    layers.{i}.key.{j}.weight     (H, in_j, out_j)
    layers.{i}.key.{j}.bias       (H, out_j)

``H`` is the number of *query* heads: the key MLPs are per query head too, applied to the keys
of the head's KV head (the official code repeats K/V to the query heads before hashing, and so
does the reference framework). ``in_0`` = D (head size), ``out_{n-1}`` = ``hat_bits``, and
``in_{j+1}`` = ``out_j``. Note ``weight`` is (in, out), the transpose of ``nn.Linear.weight``,
as in the reference framework's pickles. The header metadata holds
``{"format": "sah-hashattention", "version": "1", "activation": "silu"}``. A file may cover
only some layers; a call on a layer it lacks is an error naming the file and the layer.
Loading refuses (naming the file and the tensor or field, see ``hashattention_checks``): no
or other metadata, an activation other than SiLU, a tensor that is not floating point or
holds NaN or inf, and, when the model's layer count is given, layers the model lacks.

**Pickle (published weights; only with ``allow_pickle=True``).** The reference framework's
layout: ``{layer: {"query_matrix": [(H, in, out), ...], "query_bias": [(H, out), ...],
"key_matrix": [...], "key_bias": [...]}}``. Loading a pickle with the full unpickler runs code
from the file, so the masker refuses it unless asked for (``allow_pickle``: a file you trust);
``sah convert hashattention`` (``hashattention_convert``) reads it with a restricted
unpickler that builds only tensors, arrays and plain containers, and writes the same weights
as safetensors once. It also reads the official repository's ``.pt`` checkpoints (the
``USA`` modules' state dicts).
"""

from __future__ import annotations

import itertools
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from sparse_attention_hub.sparse_attention.maskers.hashattention_checks import (
    METADATA,
    check_layer_set,
    check_metadata,
    check_tensor,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_mlp import (
    MLP,
    hamming_distance,
    key_logits,
    mlp_logits,
    pack_signs,
    popcount_table,
)

#: The official MLP: hidden width and depth.
HIDDEN = 128
MLP_LAYERS = 3
_SIDES = ("query", "key")
_PICKLE_MAGIC = b"\x80"


@dataclass(frozen=True)
class HatLayer:
    """The MLPs of one attention layer: per side, a tuple of (weight (H, in, out), bias
    (H, out)) pairs, fp32."""

    query: MLP
    key: MLP

    @property
    def heads(self) -> int:
        return self.query[0][0].shape[0]

    @property
    def head_dim(self) -> int:
        return self.query[0][0].shape[1]

    @property
    def bits(self) -> int:
        return self.query[-1][0].shape[2]

    def to(self, device: torch.device) -> HatLayer:
        def move(side: MLP) -> MLP:
            return tuple((w.to(device), b.to(device)) for w, b in side)

        return HatLayer(move(self.query), move(self.key))


HatWeights = dict[int, HatLayer]


# ---------------------------------------------------------------------- checks


def check_layer(layer: HatLayer, source: str, layer_idx: int, bits: int | None = None) -> None:
    """ValueError naming ``source``, the layer and the expected shape unless the MLPs of
    ``layer`` chain (same heads and depth on both sides, in_{j+1} = out_j, biases (H, out))
    and end in ``bits`` outputs (when given)."""
    where = f"{source}: layer {layer_idx}"
    if not layer.query or len(layer.query) != len(layer.key):
        raise ValueError(
            f"{where}: query and key MLPs need the same number (>= 1) of linear layers, got "
            f"{len(layer.query)} and {len(layer.key)}"
        )
    heads, dim = layer.heads, layer.head_dim
    for side, mlp in (("query", layer.query), ("key", layer.key)):
        fan_in = dim
        for j, (weight, bias) in enumerate(mlp):
            name = f"layers.{layer_idx}.{side}.{j}"
            if weight.dim() != 3 or tuple(weight.shape[:2]) != (heads, fan_in):
                raise ValueError(
                    f"{where}: {name}.weight has shape {tuple(weight.shape)}, expected "
                    f"({heads}, {fan_in}, out)"
                )
            if tuple(bias.shape) != (heads, weight.shape[2]):
                raise ValueError(
                    f"{where}: {name}.bias has shape {tuple(bias.shape)}, expected "
                    f"({heads}, {weight.shape[2]})"
                )
            fan_in = weight.shape[2]
        if bits is not None and fan_in != bits:
            raise ValueError(
                f"{where}: the {side} MLP ends in {fan_in} outputs, expected hat_bits = {bits}"
            )
    if layer.key[-1][0].shape[2] != layer.bits:
        raise ValueError(
            f"{where}: query and key MLPs end in {layer.bits} and "
            f"{layer.key[-1][0].shape[2]} bits; they must match"
        )


# ---------------------------------------------------------------------- files


def is_pickle(path: str | Path) -> bool:
    """Whether the file at ``path`` is a pickle (protocol >= 2 starts with byte 0x80)."""
    with open(path, "rb") as handle:
        return handle.read(1) == _PICKLE_MAGIC


def load_hat_weights(
    path: str | Path, allow_pickle: bool = False, num_layers: int | None = None
) -> HatWeights:
    """The weights in ``path`` (safetensors, or with ``allow_pickle`` the reference pickle),
    each layer checked; with ``num_layers`` (the model's), no layer beyond the model's.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a pickle without ``allow_pickle``, metadata other than this format's,
            a tensor that is not floating point or not finite, or tensors that do not form
            the MLPs (naming the file, the tensor or layer, and what is expected).
    """
    source = str(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"HashAttention weights file not found: {source}")
    if is_pickle(path):
        if not allow_pickle:
            raise ValueError(
                f"{source} is a pickle; loading a pickle runs code from the file. Set "
                "allow_pickle: true in the hashattention config if you trust it, or convert it "
                "once with `sah convert hashattention IN.pkl --out OUT.safetensors`"
            )
        with open(path, "rb") as handle:
            weights = from_pickle_layout(pickle.load(handle), source)  # opted in: allow_pickle
    else:
        tensors, metadata = _read_safetensors(path)
        check_metadata(metadata, source)
        weights = from_tensors(tensors, source)
    for layer_idx, layer in weights.items():
        check_layer(layer, source, layer_idx)
    if num_layers is not None:
        check_layer_set(weights, source, num_layers)
    return weights


def _read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    """The tensors and the header metadata of a safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
            return {name: handle.get_tensor(name) for name in handle.keys()}, metadata  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise ValueError(
            f"{path} is neither a safetensors file nor a pickle of HashAttention weights: {exc}"
        ) from exc


def from_tensors(tensors: dict[str, torch.Tensor], source: str) -> HatWeights:
    """Weights from the flat ``layers.{i}.{side}.{j}.{weight|bias}`` tensors (see module)."""
    grouped: dict[int, dict[str, dict[int, dict[str, torch.Tensor]]]] = {}
    for name, tensor in tensors.items():
        parts = name.split(".")
        if (
            len(parts) != 5
            or parts[0] != "layers"
            or not parts[1].isdigit()
            or parts[2] not in _SIDES
            or not parts[3].isdigit()
            or parts[4] not in ("weight", "bias")
        ):
            raise ValueError(
                f"{source}: unexpected tensor {name!r}; expected names "
                "layers.{i}.{query|key}.{j}.{weight|bias}"
            )
        side = grouped.setdefault(int(parts[1]), {}).setdefault(parts[2], {})
        side.setdefault(int(parts[3]), {})[parts[4]] = check_tensor(tensor, source, name).float()
    if not grouped:
        raise ValueError(f"{source}: no HashAttention tensors (layers.{{i}}.query.0.weight, ...)")
    return {i: _layer_from_parts(parts, source, i) for i, parts in sorted(grouped.items())}


def _layer_from_parts(
    parts: dict[str, dict[int, dict[str, torch.Tensor]]], source: str, layer_idx: int
) -> HatLayer:
    sides = []
    for side in _SIDES:
        linears = parts.get(side, {})
        mlp = []
        for j in range(len(linears)):
            pair = linears.get(j, {})
            if "weight" not in pair or "bias" not in pair:
                raise ValueError(
                    f"{source}: layer {layer_idx}: missing layers.{layer_idx}.{side}.{j}."
                    f"{'weight' if 'weight' not in pair else 'bias'} (the {side} MLP has "
                    f"{len(linears)} linear layers)"
                )
            mlp.append((pair["weight"], pair["bias"]))
        sides.append(tuple(mlp))
    return HatLayer(sides[0], sides[1])


def to_tensors(weights: HatWeights) -> dict[str, torch.Tensor]:
    """The flat named tensors of ``weights`` (contiguous fp32; see module)."""
    tensors: dict[str, torch.Tensor] = {}
    for i, layer in weights.items():
        for side, mlp in (("query", layer.query), ("key", layer.key)):
            for j, (weight, bias) in enumerate(mlp):
                tensors[f"layers.{i}.{side}.{j}.weight"] = weight.float().contiguous()
                tensors[f"layers.{i}.{side}.{j}.bias"] = bias.float().contiguous()
    return tensors


def save_hat_weights(weights: HatWeights, path: str | Path) -> Path:
    """Write ``weights`` as safetensors to ``path`` (parents created); return the path."""
    from safetensors.torch import save_file

    for layer_idx, layer in weights.items():
        check_layer(layer, str(path), layer_idx)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(to_tensors(weights), str(out), metadata=dict(METADATA))
    return out


def from_pickle_layout(obj: object, source: str) -> HatWeights:
    """Weights from the reference framework's pickle layout (see module)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{source}: expected a dict of layers, got {type(obj).__name__}")
    weights: HatWeights = {}
    for layer_idx, entry in obj.items():
        keys = ("query_matrix", "query_bias", "key_matrix", "key_bias")
        if not isinstance(entry, dict) or any(k not in entry for k in keys):
            raise ValueError(f"{source}: layer {layer_idx}: expected the keys {list(keys)}")
        sides = []
        for side in _SIDES:
            matrices, biases = entry[f"{side}_matrix"], entry[f"{side}_bias"]
            if len(matrices) != len(biases):
                raise ValueError(
                    f"{source}: layer {layer_idx}: {len(matrices)} {side} matrices but "
                    f"{len(biases)} biases"
                )
            sides.append(
                tuple(
                    (
                        _pickled_tensor(w, source, f"layer {layer_idx} {side}_matrix[{j}]"),
                        _pickled_tensor(b, source, f"layer {layer_idx} {side}_bias[{j}]"),
                    )
                    for j, (w, b) in enumerate(zip(matrices, biases, strict=True))
                )
            )
        weights[int(layer_idx)] = HatLayer(sides[0], sides[1])
    return weights


def _pickled_tensor(value: object, source: str, name: str) -> torch.Tensor:
    """A pickled matrix or bias (tensor or array) as fp32, checked (floating, finite)."""
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{source}: {name} is not a tensor or array ({exc})") from exc
    return check_tensor(tensor, source, name).float()


def to_pickle_layout(weights: HatWeights) -> dict[int, dict[str, list[torch.Tensor]]]:
    """``weights`` in the reference framework's pickle layout (see module)."""
    return {
        i: {
            f"{side}_{kind}": [pair[k] for pair in mlp]
            for side, mlp in (("query", layer.query), ("key", layer.key))
            for k, kind in ((0, "matrix"), (1, "bias"))
        }
        for i, layer in weights.items()
    }


def random_hat_weights(
    num_layers: int,
    heads: int,
    head_dim: int,
    hat_bits: int = 32,
    hidden: int = HIDDEN,
    depth: int = MLP_LAYERS,
    seed: int = 0,
) -> HatWeights:
    """Freshly initialised MLPs (``nn.Linear``'s default: uniform in +-1/sqrt(fan_in)) for
    ``num_layers`` layers of ``heads`` query heads of size ``head_dim``; seeded."""
    g = torch.Generator().manual_seed(seed)
    sizes = [head_dim] + [hidden] * (depth - 1) + [hat_bits]

    def mlp() -> MLP:
        pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            bound = fan_in**-0.5
            weight = (torch.rand(heads, fan_in, fan_out, generator=g) * 2 - 1) * bound
            bias = (torch.rand(heads, fan_out, generator=g) * 2 - 1) * bound
            pairs.append((weight, bias))
        return tuple(pairs)

    return {i: HatLayer(mlp(), mlp()) for i in range(num_layers)}


__all__ = [
    "MLP",
    "HatLayer",
    "HatWeights",
    "check_layer",
    "from_pickle_layout",
    "from_tensors",
    "hamming_distance",
    "is_pickle",
    "key_logits",
    "load_hat_weights",
    "mlp_logits",
    "pack_signs",
    "popcount_table",
    "random_hat_weights",
    "save_hat_weights",
    "to_pickle_layout",
    "to_tensors",
]
