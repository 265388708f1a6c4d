"""Training HashAttention's hash MLPs on a frozen model (``sah train hashattention``).

The official objective (xAlg-ai/HashAttention-1.0, ``train_hashattention.py`` and
``LlamaAttention_heavy_hitter.usa_local_compute``):

- the model is frozen; the post-RoPE queries and keys of every layer (the attention inputs)
  are captured through the research attention's mask hook on a dense forward of each text
  chunk;
- a key is *eligible* for a query when it is neither sink nor local: position >= ``sink_size``
  and <= query position - ``local_size`` (the official ``causal_heavy_recent_mask`` with
  init 128 and recent 128), and allowed by the model's attention mask;
- targets y = 1 for the ``top_k`` (32) keys of largest true logit q.k among the eligible keys,
  0 for the other eligible keys;
- prediction y_hat = sigmoid(tanh(phi_q(q)) . tanh(phi_k(k))) with the per-query-head MLPs
  phi (key MLP applied to the keys of the head's KV head);
- loss = mean of w * BCE(y_hat, y), w = 1 + y * (alpha - 1), alpha = 20; Adam, lr 1e-3.

Differences, written down here: the mean runs over eligible (query, key) pairs only (the
official code also averages in the ineligible pairs at zero loss, which only rescales it);
each step uses a seeded random sample of ``queries_per_step`` query rows per layer (those
with at least ``top_k`` eligible keys) of one chunk, cycling over the chunks; the MLPs train
in fp32. The same seed, texts and model give the same weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.hashattention_mlp import (
    MLP,
    key_logits,
    mlp_logits,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    HatLayer,
    HatWeights,
    random_hat_weights,
    save_hat_weights,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HashAttentionTraining:
    """Settings of a training run (official values by default; see the module)."""

    steps: int = 300
    seed: int = 0
    sink_size: int = 128
    local_size: int = 128
    top_k: int = 32
    alpha: float = 20.0
    lr: float = 1e-3
    hat_bits: int = 32
    hidden: int = 128
    sequence_length: int = 1024
    queries_per_step: int = 256

    def __post_init__(self) -> None:
        for name in ("steps", "top_k", "hat_bits", "hidden", "sequence_length", "queries_per_step"):
            _check_int(name, getattr(self, name), 1)
        for name in ("seed", "sink_size", "local_size"):
            _check_int(name, getattr(self, name), 0)
        if self.sequence_length <= self.sink_size + self.local_size + self.top_k:
            raise ValueError(
                f"HashAttentionTraining.sequence_length must exceed sink_size + local_size + "
                f"top_k = {self.sink_size + self.local_size + self.top_k}, got "
                f"{self.sequence_length}"
            )
        for name in ("alpha", "lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"HashAttentionTraining.{name} must be > 0, got {value!r}")


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"HashAttentionTraining.{name} must be an int >= {low}, got {value!r}")


@dataclass
class TrainingResult:
    """The trained weights and the loss of every step."""

    weights: HatWeights
    losses: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------- data


def default_text() -> str:
    """A built-in, deterministic training text (works offline): a long ledger of records
    that refer back to earlier ones, so attention has structure to learn."""
    colours = ["red", "blue", "green", "amber", "violet", "grey", "white", "black"]
    things = ["lamp", "boat", "clock", "river", "garden", "letter", "bridge", "window"]
    lines = []
    for i in range(600):
        colour, thing = colours[i * 5 % 8], things[i * 3 % 8]
        ref = i * 7 % max(1, i) if i else 0
        lines.append(
            f"Record {i}: the {colour} {thing} in room {i * 13 % 41} holds {i * 31 % 97} "
            f"coins; see record {ref}, where the {colours[ref % 8]} {things[ref * 3 % 8]} was."
        )
    return "\n".join(lines)


def token_chunks(tokenizer: Any, texts: Sequence[str], length: int) -> list[list[int]]:
    """The texts tokenised and cut into chunks of ``length`` tokens; a text shorter than one
    chunk is kept whole when it has more than half a chunk, other short tails are dropped."""
    chunks: list[list[int]] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        for start in range(0, len(ids), length):
            piece = ids[start : start + length]
            if len(piece) == length or (len(piece) > length // 2 and start == 0):
                chunks.append(piece)
    return chunks


def capture_attention_inputs(adapter: Any, ids: list[int]) -> list[AttentionInputs]:
    """The attention inputs of every layer of one dense forward of ``ids`` (B = 1) through the
    adapter's research attention (it must hold a ResearchAttentionConfig, e.g. empty)."""
    research = adapter.research_attention
    if research is None:
        raise ValueError("capture_attention_inputs needs an adapter with a research attention")
    captured: list[AttentionInputs] = []

    def keep(inputs: AttentionInputs, mask: object) -> None:
        # a slim copy: no values, no exact-score cache (it would hold (B, H, Q, K) floats)
        captured.append(
            AttentionInputs(
                inputs.queries,
                inputs.keys,
                inputs.keys,
                inputs.attention_mask,
                inputs.scaling,
                layer_idx=inputs.layer_idx,
                query_start=inputs.query_start,
                key_start=inputs.key_offset,
            )
        )

    handle = research.register_mask_hook(keep)
    try:
        research.new_request()
        with torch.no_grad(), adapter.enable_sparse_mode():
            adapter.model(input_ids=torch.tensor([ids], device=adapter.device), use_cache=False)
    finally:
        handle.remove()
    return captured


def eligible_keys(inputs: AttentionInputs, sink_size: int, local_size: int) -> torch.Tensor:
    """Bool, broadcastable to (B, H, Q, K): keys neither sink (position < sink_size) nor local
    (position > query position - local_size), and allowed by the attention mask."""
    q_pos = inputs.query_positions().unsqueeze(-1)  # (Q, 1)
    k_pos = inputs.key_positions()  # (K,)
    keep = (k_pos >= sink_size) & (k_pos <= q_pos - local_size)  # (Q, K)
    allowed = inputs.allowed_keys()
    return keep if allowed is None else keep & allowed


def true_logits(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Unscaled q.k (B, H, Q, K) fp32 of queries (B, H, Q, D) and keys (B, Hkv, K, D), query
    head h against KV head h // G (the scale and a soft cap do not change the ranking)."""
    b, h, n_q, d = queries.shape
    h_kv = keys.shape[1]
    q = queries.float().reshape(b, h_kv, (h // h_kv) * n_q, d)  # (B, Hkv, G * Q, D)
    return (q @ keys.float().transpose(-1, -2)).reshape(b, h, n_q, -1)  # (B, H, Q, K)


def oracle_targets(logits: torch.Tensor, eligible: torch.Tensor, top_k: int) -> torch.Tensor:
    """(B, H, Q, K) float: 1 at the ``top_k`` eligible keys of largest ``logits``, else 0."""
    scores = logits.masked_fill(~eligible, float("-inf"))  # (B, H, Q, K)
    top = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
    target = torch.zeros_like(scores)
    target.scatter_(-1, top.indices, (top.values > float("-inf")).float())
    return target


# ---------------------------------------------------------------------- model


class HashMLPs(torch.nn.Module):
    """Trainable query and key MLPs of every layer, initialised from ``HatWeights``."""

    def __init__(self, weights: HatWeights) -> None:
        super().__init__()
        self.layer_ids = sorted(weights)
        self.params = torch.nn.ParameterDict()
        for i in self.layer_ids:
            for side, mlp in (("query", weights[i].query), ("key", weights[i].key)):
                for j, (weight, bias) in enumerate(mlp):
                    self.params[f"{i}_{side}_{j}_w"] = torch.nn.Parameter(weight.clone())
                    self.params[f"{i}_{side}_{j}_b"] = torch.nn.Parameter(bias.clone())
        self.depth = len(weights[self.layer_ids[0]].query)

    def mlp(self, layer: int, side: str) -> MLP:
        return tuple(
            (self.params[f"{layer}_{side}_{j}_w"], self.params[f"{layer}_{side}_{j}_b"])
            for j in range(self.depth)
        )

    def export(self) -> HatWeights:
        """The current weights, detached."""

        def detach(mlp: MLP) -> MLP:
            return tuple((w.detach().clone(), b.detach().clone()) for w, b in mlp)

        return {
            i: HatLayer(detach(self.mlp(i, "query")), detach(self.mlp(i, "key")))
            for i in self.layer_ids
        }


def layer_loss(
    mlps: HashMLPs,
    inputs: AttentionInputs,
    settings: HashAttentionTraining,
    generator: torch.Generator,
) -> torch.Tensor | None:
    """The weighted BCE of one layer's captured call on a seeded sample of query rows (None
    when no row has ``top_k`` eligible keys)."""
    eligible = eligible_keys(inputs, settings.sink_size, settings.local_size)
    eligible = eligible.expand(inputs.mask_shape)  # (B, H, Q, K)
    rows = torch.nonzero(eligible[0, 0].sum(-1) >= settings.top_k).flatten()  # (R,)
    if rows.numel() == 0:
        return None
    pick = torch.randperm(rows.numel(), generator=generator)[: settings.queries_per_step]
    rows = rows[pick.to(rows.device)].sort().values
    layer = 0 if inputs.layer_idx is None else inputs.layer_idx
    queries = inputs.queries[:, :, rows]  # (B, H, R, D)
    eligible = eligible[:, :, rows]  # (B, H, R, K)
    target = oracle_targets(true_logits(queries, inputs.keys), eligible, settings.top_k)
    q_hash = torch.tanh(mlp_logits(queries, mlps.mlp(layer, "query")))  # (B, H, R, bits)
    k_hash = torch.tanh(key_logits(inputs.keys, mlps.mlp(layer, "key")))  # (B, H, K, bits)
    y_hat = torch.sigmoid(q_hash @ k_hash.transpose(-1, -2))  # (B, H, R, K)
    weight = 1.0 + target * (settings.alpha - 1.0)
    bce = F.binary_cross_entropy(y_hat, target, weight=weight, reduction="none")
    return bce[eligible].mean()


# ---------------------------------------------------------------------- training

#: Captured chunks are kept in memory (not recomputed each step) up to this many bytes.
CAPTURE_CACHE_BYTES = 1 << 29


def train_hashattention(
    model_name: str,
    texts: Sequence[str] | None = None,
    settings: HashAttentionTraining | None = None,
    device: str | None = "cpu",
) -> TrainingResult:
    """Train the hash MLPs of every layer of ``model_name`` (frozen) on ``texts`` (the
    built-in :func:`default_text` when None) with the official objective (see the module)."""
    from tqdm.auto import tqdm

    from sparse_attention_hub.adapters import ModelAdapterHF
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

    settings = settings or HashAttentionTraining()
    adapter = ModelAdapterHF(model_name, ResearchAttentionConfig([]), device=device)
    adapter.model.requires_grad_(False)
    chunks = token_chunks(adapter.tokenizer, texts or [default_text()], settings.sequence_length)
    if not chunks:
        raise ValueError(
            f"the training texts give no chunk of more than {settings.sequence_length // 2} "
            "tokens; give longer texts or a smaller sequence_length"
        )
    cache: dict[int, list[AttentionInputs]] = {}
    first = cache[0] = capture_attention_inputs(adapter, chunks[0])
    _, heads, _, head_dim = first[0].queries.shape
    layers = sorted({0 if c.layer_idx is None else c.layer_idx for c in first})
    chunk_bytes = sum(c.queries.nbytes + c.keys.nbytes for c in first)
    init = random_hat_weights(
        len(layers), heads, head_dim, settings.hat_bits, settings.hidden, seed=settings.seed
    )
    mlps = HashMLPs({layer: init[n] for n, layer in enumerate(layers)}).to(adapter.device)
    optimizer = torch.optim.Adam(mlps.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    result = TrainingResult(weights={})
    log_every = max(1, settings.steps // 10)
    progress = tqdm(range(settings.steps), desc="hashattention", unit="step")
    for step in progress:
        index = step % len(chunks)
        captured = cache.get(index)
        if captured is None:
            captured = capture_attention_inputs(adapter, chunks[index])
            if chunk_bytes * (len(cache) + 1) <= CAPTURE_CACHE_BYTES:
                cache[index] = captured
        losses = [layer_loss(mlps, inputs, settings, generator) for inputs in captured]
        terms = [loss for loss in losses if loss is not None]
        if not terms:
            raise ValueError(
                f"no query of chunk {index} has {settings.top_k} keys beyond sink "
                f"{settings.sink_size} and local {settings.local_size}"
            )
        total = torch.stack(terms).mean()
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        result.losses.append(float(total.detach()))
        progress.set_postfix(loss=f"{result.losses[-1]:.4f}")
        if step % log_every == 0 or step == settings.steps - 1:
            logger.info("hashattention step %d/%d: loss %.4f", step + 1, settings.steps, total)
    result.weights = {layer: w.to(torch.device("cpu")) for layer, w in mlps.export().items()}
    return result


def train_to_file(
    model_name: str,
    out: str | Path,
    texts: Sequence[str] | None = None,
    settings: HashAttentionTraining | None = None,
    device: str | None = "cpu",
) -> TrainingResult:
    """:func:`train_hashattention`, then the weights written as safetensors to ``out``."""
    result = train_hashattention(model_name, texts, settings, device)
    path = save_hat_weights(result.weights, out)
    logger.info("wrote HashAttention weights of %d layers to %s", len(result.weights), path)
    return result


__all__ = [
    "HashAttentionTraining",
    "HashMLPs",
    "TrainingResult",
    "capture_attention_inputs",
    "default_text",
    "eligible_keys",
    "layer_loss",
    "oracle_targets",
    "token_chunks",
    "train_hashattention",
    "train_to_file",
    "true_logits",
]
