"""MagicPIG and vAttention: inclusion probabilities, unbiasedness, the (epsilon, delta)
guarantee on a real tiny model's attention rows, determinism, and the state."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    MaskerStates,
    ResearchAttention,
)
from sparse_attention_hub.sparse_attention.attention import ScoreCache
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    MagicPigConfig,
    MaskerConfig,
    OracleTopKConfig,
    SinkMaskerConfig,
    VAttentionConfig,
    create_masker,
)
from sparse_attention_hub.sparse_attention.maskers.magicpig import (
    collision_counts,
    inclusion_probability,
    pack_codes,
)
from sparse_attention_hub.sparse_attention.maskers.vattention import draw_without_replacement
from tests.support.captured import question_calls
from tests.support.tensors import random_qkv as qkv


def build(configs: list[MaskerConfig], inputs: AttentionInputs) -> Mask:
    attn = ResearchAttention([create_masker(c) for c in configs])
    return attn.build_mask(inputs)


def denominator(inputs: AttentionInputs, mask: Mask, weighted: bool = True) -> torch.Tensor:
    """(B, H, Q) float64 sum over the mask's keys of exp(s - max) / p (or without 1/p)."""
    scores = inputs.exact_scores().double()
    exps = torch.exp(scores - scores.amax(-1, keepdim=True))  # (B, H, Q, K)
    probs = mask.to_dense().double()
    weights = 1 / probs if weighted else torch.ones_like(probs)
    return torch.where(probs > 0, exps * weights, 0.0).sum(-1)


def exact_denominator(inputs: AttentionInputs) -> torch.Tensor:
    return denominator(inputs, Mask.create_full(inputs.mask_shape))


def assert_unbiased(estimates: torch.Tensor, exact: torch.Tensor, control: torch.Tensor) -> None:
    """Mean over trials (dim 0) within 5 standard errors of ``exact``; ``control`` is not."""
    trials = estimates.shape[0]
    error = estimates.std(0) / math.sqrt(trials) + 1e-12 * exact
    deviation = (estimates.mean(0) - exact).abs()
    assert torch.all(deviation < 5 * error), (deviation / error).max()
    wrong = (control.mean(0) - exact).abs()
    assert torch.any(wrong > 5 * error), (wrong / error).max()


# ---------------------------------------------------------------------- MagicPIG


@pytest.mark.parametrize(("lsh_k", "lsh_l", "min_collisions"), [(3, 10, 2), (2, 6, 1), (2, 8, 3)])
def test_magicpig_inclusion_probability_matches_monte_carlo(lsh_k, lsh_l, min_collisions):
    """The collision rate over random hyperplanes equals u(theta) (SimHash: a table matches
    with probability (1 - theta / pi) ** K)."""
    trials, d = 4000, 6
    g = torch.Generator().manual_seed(1)
    q = torch.randn(d, generator=g)
    keys = torch.randn(9, d, generator=g)
    keys[0] = q * 2  # theta = 0: always collides
    planes = torch.randn(trials, 1, d, lsh_l * lsh_k, generator=g)  # (T, 1, D, L*K)
    key_codes = pack_codes(keys.expand(trials, 1, 9, d) @ planes, lsh_k, lsh_l)  # (T, 1, L, 9)
    query_codes = pack_codes(q.expand(trials, 1, 1, d) @ planes, lsh_k, lsh_l)  # (T, 1, L, 1)
    counts = collision_counts(query_codes.transpose(2, 3), key_codes)  # (T, 1, 1, 9)
    rate = (counts >= min_collisions).double().mean(0).reshape(9)
    cos = torch.nn.functional.cosine_similarity(keys, q.unsqueeze(0))
    u = inclusion_probability(cos, lsh_k, lsh_l, min_collisions)
    tolerance = 5 * torch.sqrt(u * (1 - u) / trials) + 1e-3
    assert torch.all((rate - u).abs() < tolerance), (rate, u)
    assert float(u[0]) == 1.0


def test_magicpig_formula_is_the_official_one_for_two_collisions_and_stays_accurate():
    cos = torch.linspace(-0.9, 0.99, 50)
    big_p = (1 - torch.arccos(cos.double()) / math.pi) ** 10
    official = 1 - (1 - big_p) ** 150 - 150 * big_p * (1 - big_p) ** 149
    ours = inclusion_probability(cos, 10, 150, 2)
    large = official > 1e-6
    assert torch.allclose(ours[large], official[large], rtol=1e-8, atol=0)
    # Where the official difference cancels, the tail sum is C(L, 2) P^2 to leading order.
    small = ours[~large]
    approx = math.comb(150, 2) * big_p[~large] ** 2
    assert torch.all(small > 0) and torch.allclose(small, approx, rtol=0.05)


def magicpig_inputs(k_len: int = 96) -> AttentionInputs:
    q, k, v = qkv(4, 2, 1, k_len, d=8, seed=3)
    return AttentionInputs(q * 0.5, k, v, layer_idx=2)


def test_magicpig_denominator_is_unbiased_over_seeds_and_the_control_is_not():
    inputs = magicpig_inputs()
    stack: list[MaskerConfig] = [SinkMaskerConfig(4), LocalMaskerConfig(8)]
    weighted, unweighted = [], []
    for seed in range(300):
        cfg = MagicPigConfig(lsh_k=3, lsh_l=12, seed=seed, sink_size=4, window_size=8)
        mask = build([*stack, cfg], inputs)
        weighted.append(denominator(inputs, mask))
        unweighted.append(denominator(inputs, mask, weighted=False))
    assert_unbiased(torch.stack(weighted), exact_denominator(inputs), torch.stack(unweighted))


def test_magicpig_is_deterministic_per_seed_and_adds_only_inactive_keys():
    inputs = magicpig_inputs()
    stack: list[MaskerConfig] = [SinkMaskerConfig(4), LocalMaskerConfig(8)]
    config = MagicPigConfig(lsh_k=3, lsh_l=12, seed=5)
    first = build([*stack, config], inputs).to_dense()
    assert torch.equal(first, build([*stack, config], inputs).to_dense())
    other = build([*stack, MagicPigConfig(lsh_k=3, lsh_l=12, seed=6)], inputs).to_dense()
    assert not torch.equal(first, other)
    previous = build(stack, inputs).to_dense()
    assert torch.all(first[previous > 0] == 1)
    sampled = (first > 0) & (first < 1)
    assert sampled.any() and not torch.any(sampled & (previous > 0))


def test_magicpig_state_extends_and_a_rollback_into_the_prompt_rebuilds_it():
    """Codes are appended for new keys; the centre is the mean of the prompt's middle keys
    [sink, P - window), the prompt being the first call's keys (context and question, as in
    the official code); a rollback into the prompt (to the context, before the next question)
    drops the centre and the next call rebuilds it on its own prompt, as does a prompt
    extended by keys the state never saw (a dense prefill)."""
    q, k, v = qkv(2, 2, 3, 40, d=8, seed=9)
    masker = create_masker(MagicPigConfig(lsh_k=2, lsh_l=6, sink_size=2, window_size=4))
    states = MaskerStates()

    def call(q_len: int, k_len: int) -> AttentionInputs:
        inputs = AttentionInputs(q[:, :, :q_len], k[:, :, :k_len], v[:, :, :k_len], layer_idx=0)
        return states.read(masker, inputs)  # type: ignore[arg-type]

    state = call(3, 30)  # the prompt: a 27-key context and a 3-key question
    assert torch.allclose(state.centre, k[:, :, 2:26].mean(2))
    state = call(1, 31)
    assert state.index.size == 31 and state.prompt_end == 30
    states.truncate(30)
    assert states.entry(0, masker).value.centre is not None  # type: ignore[union-attr]
    states.truncate(27)
    assert states.entry(0, masker).value.centre is None  # type: ignore[union-attr]
    rebuilt = call(2, 29)  # the next question: 2 keys on the same context
    assert rebuilt.prompt_end == 29 and torch.allclose(rebuilt.centre, k[:, :, 2:25].mean(2))
    assert rebuilt.index.size == 29
    extended = call(3, 35)  # a dense prefill added keys 29..31 before the call's queries
    assert extended.prompt_end == 35 and torch.allclose(extended.centre, k[:, :, 2:31].mean(2))


# ---------------------------------------------------------------------- vAttention


def vattention_stack(**params) -> list[MaskerConfig]:
    defaults = {"init_offset": 2, "local_offset": 2}
    return [
        SinkMaskerConfig(2),
        LocalMaskerConfig(2),
        OracleTopKConfig(4),
        VAttentionConfig(**{**defaults, **params}),
    ]


@pytest.mark.parametrize("q_len", [1, 2])  # 1: a decode step, drawn by one sort per row
def test_vattention_denominator_is_unbiased_over_seeds_and_the_control_is_not(q_len, device_path):
    q, k, v = qkv(4, 2, q_len, 80, d=8, seed=4)
    inputs = AttentionInputs(q, k, v, layer_idx=1)
    weighted, unweighted = [], []
    for seed in range(300):
        mask = build(vattention_stack(epsilon=0.5, delta=0.3, seed=seed), inputs)
        weighted.append(denominator(inputs, mask))
        unweighted.append(denominator(inputs, mask, weighted=False))
    assert_unbiased(torch.stack(weighted), exact_denominator(inputs), torch.stack(unweighted))


def test_vattention_samples_only_residual_keys_and_is_deterministic_per_seed():
    q, k, v = qkv(4, 2, 2, 80, d=8, seed=4)
    inputs = AttentionInputs(q, k, v, layer_idx=1)
    deterministic = build(vattention_stack()[:-1], inputs).to_dense()
    mask = build(vattention_stack(epsilon=0.3), inputs).to_dense()
    assert torch.equal(mask, build(vattention_stack(epsilon=0.3), inputs).to_dense())
    assert not torch.equal(mask, build(vattention_stack(epsilon=0.3, seed=1), inputs).to_dense())
    sampled = (mask > 0) & (mask < 1)
    assert torch.all(mask[deterministic > 0] == 1) and sampled.any()
    assert not torch.any(sampled & (deterministic > 0))
    assert not sampled[..., :2].any() and not sampled[..., -2:].any()  # the offsets
    # Each row's probability is exactly (sampled count) / (residual count).
    residual = (deterministic == 0).clone()
    residual[..., :2] = residual[..., -2:] = False
    count, n = ((mask > 0) & residual).sum(-1), residual.sum(-1)
    rate = torch.where(sampled, mask, 0.0).amax(-1)
    full = count == n
    assert torch.allclose(rate[~full], (count / n).float()[~full])


@pytest.mark.parametrize("q_len", [1, 3])
@pytest.mark.parametrize("share", [0.02, 0.3, 1.0])
def test_a_draw_keeps_the_eligible_keys_with_the_smallest_uniform_draws(q_len, share, device_path):
    """Both paths (one sort per row on a decode step, candidates under a cut otherwise) keep
    exactly the eligible keys whose draw is at most the size-th smallest eligible draw."""
    g = torch.Generator().manual_seed(7)
    eligible = torch.rand(2, 3, q_len, 500, generator=g) < 0.8
    n = eligible.sum(-1)
    size = (n.double() * share).ceil().long().clamp(min=n.clamp(max=2), max=n)
    drawn = draw_without_replacement(eligible, size, torch.Generator().manual_seed(5), n)
    draws = torch.rand(eligible.shape, generator=torch.Generator().manual_seed(5))
    ranked = torch.sort(draws.masked_fill(~eligible, 2.0), dim=-1).values
    threshold = ranked.gather(-1, (size - 1).unsqueeze(-1))
    assert torch.equal(drawn, eligible & (draws <= threshold))
    assert torch.equal(drawn.sum(-1), size)


@pytest.fixture(scope="module")
def tiny_model_calls(tiny_model_dir: str) -> list[AttentionInputs]:
    """Attention inputs of question tokens over a long context, from a real tiny model."""
    return question_calls(tiny_model_dir)


@pytest.mark.parametrize(("epsilon", "delta"), [(0.05, 0.05), (0.1, 0.2)])
def test_vattention_guarantee_holds_on_tiny_model_rows(tiny_model_calls, epsilon, delta):
    """Over seeded trials, the share of rows whose relative denominator error exceeds
    epsilon is at most delta plus sampling slack; the budget varies across rows and heads.

    The queries are scaled by 0.2 (a softer temperature): at the random model's own
    temperature the top-k holds nearly all the mass and any sample passes."""
    failures = rows = 0
    budgets = []
    for trial in range(4):
        for call in tiny_model_calls:
            inputs = dataclasses.replace(call, queries=call.queries * 0.2, score_cache=ScoreCache())
            stack = [
                SinkMaskerConfig(8),
                LocalMaskerConfig(8),
                OracleTopKConfig(0.05),
                VAttentionConfig(epsilon, delta, init_offset=8, local_offset=8, seed=trial),
            ]
            mask = build(stack, inputs)
            exact = exact_denominator(inputs)
            error = (denominator(inputs, mask) - exact).abs() / exact
            failures += int((error > epsilon).sum())
            rows += error.numel()
            budgets.append(((mask.to_dense() > 0) & (mask.to_dense() < 1)).sum(-1).flatten())
    share = failures / rows
    slack = 3 * math.sqrt(delta * (1 - delta) / rows) + 0.01
    print(f"epsilon={epsilon} delta={delta}: {share:.4f} of {rows} rows fail")
    assert share <= delta + slack
    sizes = torch.cat(budgets).float()
    print(f"sampled keys per row: mean {sizes.mean():.1f}, std {sizes.std():.1f}")
    assert sizes.std() > 0.1 * sizes.mean() > 0  # the density adapts per row and head


def test_vattention_one_sided_z_samples_less_than_two_sided():
    two = VAttentionConfig(delta=0.1)
    one = VAttentionConfig(delta=0.1, z_rule="one_sided")
    assert one.z == pytest.approx(1.2815515, rel=1e-6) and two.z == pytest.approx(1.6448536)
    with pytest.raises(ValueError, match="z_rule"):
        VAttentionConfig(z_rule="both")


def test_the_sorted_code_index_counts_as_the_brute_force_comparison():
    """Sorted tables with a tail, appended, merged and cut, count exactly the collisions of a
    comparison of every code."""
    from sparse_attention_hub.sparse_attention.maskers import lsh_index

    g = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 8, (2, 3, 5, 60), generator=g, dtype=torch.int16)  # (B, Hkv, L, n)
    queries = torch.randint(0, 8, (2, 3, 4, 5), generator=g, dtype=torch.int16)  # (B, Hkv, R, L)
    index = lsh_index.index_codes(codes[..., :40], 3)
    index = lsh_index.append_codes(index, codes[..., 40:])  # a tail of 20
    assert index.tail.shape[-1] == 20
    for start, stop in [(0, 60), (0, 45), (5, 38), (12, 60), (41, 50)]:
        cut = lsh_index.cut_codes(index, start, stop)
        brute = collision_counts(queries, codes[..., start:stop]).long()
        assert torch.equal(lsh_index.count_collisions(cut, queries), brute), (start, stop)
        assert torch.equal(lsh_index.all_codes(cut), codes[..., start:stop])
    merged = lsh_index.append_codes(index, codes.repeat(1, 1, 1, 20)[..., :1100])
    assert merged.tail.shape[-1] == 0 and merged.size == 1160
