"""vAttention: a sampled estimate of the tail, sized per row for an (epsilon, delta) guarantee.

Desai et al., 2025, "vAttention: Verified Sparse Attention" (arXiv 2510.05688; reference code
in xAlg-ai/sparse-attention-hub). The deterministic part (sink, window, top-k or an approximate
top-k) is the maskers before this one in the stack; this masker samples only the **residual**
keys they left out, between ``init_offset`` and K - ``local_offset``. Per (B, H, Q) row, with n
residual keys and e_j = exp(s_j - max) their exponentiated scores:

1. a base sample of ``b0 = max(2, ceil(base_rate_sampling * n))`` residual keys, drawn
   uniformly without replacement, estimates the spread sigma of e over the residual and the
   denominator D = sum over active keys of e_j + n * mean(e over the base sample);
2. the budget is b = ceil(((z * sigma * n) / (epsilon * D))^2), clamped to [b0, n], the CLT
   sample size for |D_hat - D| <= epsilon * D with probability 1 - delta;
3. b residual keys are drawn uniformly without replacement, independently of the base sample:
   each is included with probability exactly b / n, which is its mask entry (weight n / b).

The denominator estimate is unbiased (given b, every residual key is included with
probability b / n, whatever the base sample was), and the density adapts per row and head.

    previous   residual (offsets 1, 1)   sample (b = 2 of n = 4, p = 0.5)   result
    #.#...#    .+.++++.                   ...+..+.                            #.#+..#   (+ = 0.5)

Choices, written down here:

- ``z_rule="two_sided"`` (default): z = Phi^-1(1 - delta / 2), the paper's two-sided CLT
  bound on |D_hat - D|; ``"one_sided"``: z = Phi^-1(1 - delta), the reference code's rule. Both
  bound the denominator only: the paper's practical algorithm uses this denominator-only
  relaxation of its bound on the output N / D, and so does this masker.
- Sampling without replacement with known inclusion probability b / n replaces the reference
  code's draw with replacement, which drops duplicates yet weighs by b / n (biased low) and
  can land on keys the deterministic part already holds: here only residual keys are drawn.
- The final sample is drawn independently of the base sample (the reference code reuses
  neither); the base sample is used for the budget only.
- Draws come from a generator seeded by ``seed``, the layer, the first query's position and
  the key range, so a run is reproducible and a question sees the same draws with KV reuse as
  after a fresh prefill.
- Offsets are key indices of the call (on a sliding-window layer, of the cached keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import (
    Masker,
    MaskerConfig,
    Size,
    check_probability,
    check_size,
    resolve_size,
)
from sparse_attention_hub.sparse_attention.maskers.device_paths import host_reads_free
from sparse_attention_hub.sparse_attention.maskers.registry import register_masker

Z_RULES = ("two_sided", "one_sided")


@dataclass(frozen=True)
class VAttentionConfig(MaskerConfig):
    """``epsilon`` relative error and ``delta`` failure probability of the denominator (0.05
    each), ``base_rate_sampling`` the base sample's share of the residual, ``init_offset`` and
    ``local_offset`` the keys at either end never sampled (int tokens or float fraction of K),
    ``z_rule`` two- or one-sided z, ``seed`` of the draws."""

    epsilon: float = 0.05
    delta: float = 0.05
    base_rate_sampling: float = 0.05
    init_offset: Size = 128
    local_offset: Size = 128
    z_rule: str = "two_sided"
    seed: int = 0

    def __post_init__(self) -> None:
        for field in ("epsilon", "delta", "base_rate_sampling"):
            value = check_probability(self, field, getattr(self, field), low_open=True)
            if field == "delta" and value >= 1.0:
                raise ValueError(f"VAttentionConfig.delta must lie in (0, 1), got {value}")
        check_size(self, "init_offset", self.init_offset)
        check_size(self, "local_offset", self.local_offset)
        if self.z_rule not in Z_RULES:
            raise ValueError(
                f"VAttentionConfig.z_rule must be one of {Z_RULES}, got {self.z_rule!r}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"VAttentionConfig.seed must be an int >= 0, got {self.seed!r}")

    @property
    def z(self) -> float:
        """The normal quantile of the budget rule."""
        tail = self.delta / 2 if self.z_rule == "two_sided" else self.delta
        return NormalDist().inv_cdf(1.0 - tail)


def draw_without_replacement(
    eligible: torch.Tensor,
    size: torch.Tensor,
    generator: torch.Generator,
    n: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per row, ``size`` of the ``eligible`` keys uniformly without replacement: the keys with
    the ``size`` smallest of i.i.d. uniform draws.

    A decode step (one query row per head) on an accelerator sorts each row's draws and keeps
    those up to the ``size``-th smallest: no value is read to the host. A call with several
    query rows, and a decode step on a CPU (where a host read waits for nothing,
    ``device_paths``), finds
    them without ranking all keys, which needs the sizes on the host (a top-k's k is a host
    int): the keys under a threshold a few standard deviations above size / n are candidates,
    and the surplus largest candidates are dropped (a top-k of the surplus only); a row with
    too few candidates falls back to the top-k of all keys. Every path keeps exactly the
    eligible keys whose draw is at most the ``size``-th smallest eligible draw.

    Args:
        eligible: (B, H, Q, K) bool; size: (B, H, Q) int64, at most each row's eligible count;
        n: (B, H, Q) the eligible counts, if known.
    Returns:
        (B, H, Q, K) bool, exactly ``size`` eligible keys per row.
    """
    keys = torch.rand(eligible.shape, generator=generator, device=eligible.device)
    if eligible.shape[-2] == 1 and not host_reads_free(eligible):
        return _smallest_by_sort(keys, eligible, size)
    if not size.numel() or int(size.max()) == 0:
        return torch.zeros_like(eligible)
    n = eligible.sum(-1) if n is None else n  # (B, H, Q)
    wanted = size.double()
    cut = (wanted + 4 * wanted.sqrt() + 8) / n.clamp_min(1).double()  # (B, H, Q)
    candidates = (keys < cut.float().unsqueeze(-1)) & eligible  # (B, H, Q, K)
    surplus = candidates.sum(-1) - size  # (B, H, Q)
    if int(surplus.min()) < 0:  # too few candidates in some row: rank every key
        keys = keys.masked_fill(~eligible, 2.0)  # (B, H, Q, K)
        smallest = torch.topk(keys, int(size.max()), dim=-1, largest=False).values
        threshold = smallest.gather(-1, (size - 1).clamp_min(0).unsqueeze(-1))  # (B, H, Q, 1)
        return (keys <= threshold) & eligible & (size > 0).unsqueeze(-1)
    ranked = torch.where(candidates, keys, -1.0)  # (B, H, Q, K)
    largest = torch.topk(ranked, int(surplus.max()) + 1, dim=-1, largest=True).values
    threshold = largest.gather(-1, surplus.unsqueeze(-1))  # (B, H, Q, 1): first one kept
    return candidates & (keys <= threshold) & (size > 0).unsqueeze(-1)


def _smallest_by_sort(
    keys: torch.Tensor, eligible: torch.Tensor, size: torch.Tensor
) -> torch.Tensor:
    """(B, H, Q, K) bool: the eligible keys whose draw ``keys`` (B, H, Q, K) in [0, 1) is at
    most the ``size`` (B, H, Q)-th smallest eligible draw of the row; one sort per row, no
    host read."""
    ranked = keys.masked_fill(~eligible, 2.0)  # (B, H, Q, K)
    ordered = torch.sort(ranked, dim=-1).values
    threshold = ordered.gather(-1, (size - 1).clamp_min(0).unsqueeze(-1))  # (B, H, Q, 1)
    return (ranked <= threshold) & (size > 0).unsqueeze(-1)


def call_generator(seed: int, inputs: AttentionInputs) -> torch.Generator:
    """A generator on the keys' device seeded by ``seed``, the layer, the first query's
    position and the key range of the call (the same call always draws the same keys)."""
    parts = (
        seed,
        inputs.layer_idx or 0,
        inputs.query_start or 0,
        inputs.key_offset,
        inputs.keys.shape[2],
    )
    mixed = 0
    for part in parts:
        mixed = (mixed * 1_000_003 + int(part) + 1) % (2**61 - 1)
    return torch.Generator(device=inputs.keys.device).manual_seed(mixed)


@register_masker(
    "vattention",
    "Desai et al., 2025, 'vAttention: Verified Sparse Attention': samples the residual keys "
    "the preceding maskers left out, b per row sized for |D_hat - D| <= epsilon * D with "
    "probability 1 - delta, weighted n / b (unbiased).",
)
class VAttentionMasker(Masker):
    """Adaptive uniform sampling of the residual keys (see the module)."""

    config_class = VAttentionConfig
    config: VAttentionConfig
    is_sampling = True

    def residual(self, inputs: AttentionInputs, previous_mask: Mask) -> torch.Tensor:
        """(B, H, Q, K) bool: allowed, inactive keys between the two offsets."""
        shape = inputs.mask_shape
        k_len = shape[3]
        low = resolve_size(self.config.init_offset, k_len)
        high = k_len - resolve_size(self.config.local_offset, k_len)
        positions = torch.arange(k_len, device=inputs.keys.device)
        residual = ((positions >= low) & (positions < high)).expand(shape)  # (B, H, Q, K)
        allowed = inputs.allowed_keys()
        if allowed is not None:
            residual = residual & allowed
        active = previous_mask.active()
        return residual & ~active if active is not None else residual.clone()

    def budget(
        self,
        exps: torch.Tensor,
        residual: torch.Tensor,
        deterministic: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, n), both (B, H, Q) int64: the budget of every row from a base sample of its
        residual (``exps`` (B, H, Q, K) exponentiated scores, ``deterministic`` (B, H, Q)
        their sum over the active keys)."""
        cfg = self.config
        n = residual.sum(-1)  # (B, H, Q)
        base_size = torch.minimum(
            torch.ceil(cfg.base_rate_sampling * n.double()).long().clamp_min(2), n
        )
        base = draw_without_replacement(residual, base_size, generator, n)  # (B, H, Q, K)
        count = base_size.clamp_min(1).double()
        picked = exps * base  # (B, H, Q, K)
        mean = picked.sum(-1).double() / count  # (B, H, Q)
        squares = torch.linalg.vecdot(picked, picked).double()  # (B, H, Q)
        spread = (squares - count * mean.square()).clamp_min(0.0)
        sigma = (spread / (base_size - 1).clamp_min(1).double()).sqrt()
        total = (deterministic.double() + n.double() * mean).clamp_min(1e-300)
        wanted = torch.ceil((cfg.z * sigma * n.double() / (cfg.epsilon * total)).square())
        wanted = torch.minimum(wanted.nan_to_num(nan=0.0), n.double())  # +inf: every key
        return torch.minimum(torch.maximum(wanted.long(), base_size), n), n

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus b of each row's n residual keys at p = b / n."""
        shape, device = inputs.mask_shape, inputs.keys.device
        if previous_mask.is_full_flag or shape[3] == 0:
            return previous_mask.merge(Mask.create_empty(shape, device=device))
        residual = self.residual(inputs, previous_mask)
        scores = inputs.exact_scores()  # (B, H, Q, K), forbidden -inf
        top = scores.amax(-1, keepdim=True)
        exps = torch.exp(scores - torch.where(torch.isfinite(top), top, 0.0))  # (B, H, Q, K)
        active = previous_mask.active()
        deterministic = (
            torch.where(active, exps, 0.0).sum(-1)
            if active is not None
            else exps.new_zeros(shape[:3])
        )  # (B, H, Q)
        generator = call_generator(self.config.seed, inputs)
        size, n = self.budget(exps, residual, deterministic, generator)
        sample = draw_without_replacement(residual, size, generator, n)  # (B, H, Q, K)
        rate = (size.double() / n.clamp_min(1).double()).float().unsqueeze(-1)  # (B, H, Q, 1)
        probs = sample * rate  # (B, H, Q, K)
        return previous_mask.merge(Mask.from_dense(probs, copy=False))


__all__ = ["VAttentionConfig", "VAttentionMasker", "call_generator", "draw_without_replacement"]
