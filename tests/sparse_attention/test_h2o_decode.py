"""H2O's decode-time eviction (``decode_eviction: true``): equality with a plain reference of
the official heavy-hitter cache, permanence, the cache bound, rollback, no host read, config."""

from __future__ import annotations

import pytest
import torch

from sparse_attention_hub.sparse_attention import ResearchAttention
from sparse_attention_hub.sparse_attention.maskers import H2OConfig, masker_config_from_dict
from sparse_attention_hub.sparse_attention.maskers.eviction import n_kept
from sparse_attention_hub.sparse_attention.maskers.registry import masker_config_to_dict
from sparse_attention_hub.sparse_attention.research_config import ResearchAttentionConfig
from tests.support.op_count import count_ops

from .test_eviction import prefill, qkv

L, T = 16, 10  # context keys, decode steps


def _attn(config: H2OConfig) -> ResearchAttention:
    return ResearchAttention.create_from_config(ResearchAttentionConfig([config]))


def _state(attn: ResearchAttention):  # type: ignore[no-untyped-def]
    entry = attn.states.entry(0, attn.maskers[0])  # type: ignore[arg-type]
    assert entry is not None
    return entry.value


def _decode(attn: ResearchAttention, q, k, v, steps: list[int]) -> list[torch.Tensor]:
    """Calls of ``steps[i]`` new tokens after the context; the outputs (B, n, H, D)."""
    outs, position = [], L
    for n in steps:
        end = position + n
        out, _ = attn.custom_attention(
            None,
            q[:, :, position:end],
            k[:, :, :end],
            v[:, :, :end],
            None,
            layer_idx=0,
            query_start=position,
        )
        outs.append(out)
        position = end
    return outs


def reference(
    q, k, v, budget: int, recent: int, L: int = L
) -> tuple[list[torch.Tensor], list[list[set]]]:
    """The official rule, plainly (``H2OKVCache_LayerWise``, one query head per KV head
    averaged over its group): the context's column sums, then per decode step the cache plus
    the new key attend, the step's weights add to the scores, and the cache is cut back to
    ``budget`` (the top ``budget - recent`` scores outside the last ``recent`` + the recent).
    Returns the step outputs (H, D) and each step's attended positions per KV head."""
    h, kv_heads = q.shape[1], k.shape[1]
    g, scale = h // kv_heads, q.shape[-1] ** -0.5
    causal = torch.ones(L, L).tril().bool()
    logits = (q[0, :, :L] @ k[0].repeat_interleave(g, 0)[:, :L].transpose(-1, -2)) * scale
    prefill_w = torch.softmax(logits.masked_fill(~causal, float("-inf")), -1).sum(1)  # (H, L)
    score = {pos: prefill_w[:, pos].view(kv_heads, g).mean(1) for pos in range(L)}
    caches = [list(range(L)) for _ in range(kv_heads)]

    def cut(cache: list[int], kv: int) -> list[int]:
        if len(cache) <= budget:
            return cache
        older = cache[: len(cache) - recent]
        top = sorted(older, key=lambda p: -float(score[p][kv]))[: budget - recent]
        return sorted(top) + cache[len(cache) - recent :]

    caches = [cut(c, kv) for kv, c in enumerate(caches)]
    outs, attended = [], []
    for pos in range(L, q.shape[2]):
        score[pos] = torch.zeros(kv_heads)
        out = torch.zeros(h, q.shape[-1])
        for kv in range(kv_heads):
            cache = caches[kv] + [pos]
            weights = torch.zeros(g, len(cache))
            for j in range(g):
                head = kv * g + j
                w = torch.softmax((k[0, kv, cache] @ q[0, head, pos]) * scale, -1)
                out[head] = w @ v[0, kv, cache]
                weights[j] = w
            for i, p in enumerate(cache):
                score[p][kv] += weights[:, i].mean()
            caches[kv] = cut(cache, kv)
            attended.append(cache)
        outs.append(out)
    per_step = [
        [set(c) for c in attended[i : i + kv_heads]] for i in range(0, len(attended), kv_heads)
    ]
    return outs, per_step


@pytest.mark.parametrize(
    ("heads", "kv_heads", "recent_ratio", "length"), [(2, 2, 0.5, 16), (4, 2, 0.25, 8)]
)
def test_decode_eviction_equals_the_official_rule(heads, kv_heads, recent_ratio, length):
    """Long decoding after a short context: the generated keys' own scores decide."""
    config = H2OConfig(0.5, recent_ratio=recent_ratio, decode_eviction=True)
    steps = 40
    q, k, v = qkv(heads, kv_heads, length + steps, length + steps, seed=5)
    q = q * 3  # peaked attention: a few heavy hitters
    budget = n_kept(length, 0.5)
    ref_outs, ref_sets = reference(q, k, v, budget, int(budget * recent_ratio), length)
    attn = _attn(config)
    prefill(attn, q[:, :, :length], k[:, :, :length], v[:, :, :length])
    position = length
    for step in range(steps):
        out, _ = attn.custom_attention(
            None,
            q[:, :, position : position + 1],
            k[:, :, : position + 1],
            v[:, :, : position + 1],
            None,
            layer_idx=0,
            query_start=position,
        )
        keep = _state(attn).keep[0]  # (Hkv, position + 1)
        for kv in range(kv_heads):
            assert set(torch.nonzero(keep[kv]).flatten().tolist()) == ref_sets[step][kv]
        torch.testing.assert_close(out[0, 0], ref_outs[step], rtol=1e-5, atol=1e-6)
        position += 1


def test_an_evicted_key_never_reappears_and_the_cache_stays_at_its_budget():
    attn = _attn(H2OConfig(0.5, decode_eviction=True))
    q, k, v = qkv(4, 2, L + 30, L + 30, seed=7)
    prefill(attn, q[:, :, :L], k[:, :, :L], v[:, :, :L])
    budget, evicted, position = n_kept(L, 0.5), torch.zeros(1, 2, 0, dtype=torch.bool), L
    for n in (5, 1, 1, 3, 1, 1, 1, 2, 1):
        end = position + n
        _, weights = attn.custom_attention(
            None,
            q[:, :, position:end],
            k[:, :, :end],
            v[:, :, :end],
            None,
            layer_idx=0,
            query_start=position,
            output_attentions=True,
        )
        keep = _state(attn).keep  # (B, Hkv, end)
        old = evicted.shape[-1]
        assert not torch.any(keep[:, :, :old] & evicted), "an evicted key came back"
        # the cache was cut back to its budget before this call, which added n keys
        assert torch.all(keep.sum(-1) == budget + n)
        gone = (~keep).repeat_interleave(2, dim=1)[:, :, None, :]  # (B, H, 1, K)
        assert not torch.any((weights != 0) & gone)  # type: ignore[operator]
        evicted, position = ~keep, end
    assert evicted[:, :, L:].any(), "decode-time eviction evicted no generated key"


def test_without_decode_eviction_the_keys_after_the_context_are_kept():
    attn = _attn(H2OConfig(0.5))
    q, k, v = qkv(4, 2, L + 6, L + 6, seed=2)
    prefill(attn, q[:, :, :L], k[:, :, :L], v[:, :, :L])
    _decode(attn, q, k, v, [2, 1, 1, 1, 1])
    assert torch.all(_state(attn).keep[:, :, L:])


@pytest.mark.parametrize("query_aware", [False, True])
def test_a_rollback_to_the_context_equals_a_fresh_prefill(query_aware):
    config = H2OConfig(0.6, recent_ratio=0.25, query_aware=query_aware, decode_eviction=True)
    q, k, v = qkv(4, 2, L + 8, L + 8, seed=9)
    steps = [3, 1, 1, 1, 1, 1]
    reused = _attn(config)
    prefill(reused, q[:, :, :L], k[:, :, :L], v[:, :, :L])
    other = qkv(4, 2, L + 8, L + 8, seed=10)  # another question and answer on the same context
    k2 = torch.cat([k[:, :, :L], other[1][:, :, L:]], dim=2)
    v2 = torch.cat([v[:, :, :L], other[2][:, :, L:]], dim=2)
    _decode(reused, other[0], k2, v2, steps)
    reused.states.truncate(L)
    again = _decode(reused, q, k, v, steps)
    fresh = _attn(config)
    prefill(fresh, q[:, :, :L], k[:, :, :L], v[:, :, :L])
    expected = _decode(fresh, q, k, v, steps)
    for got, want in zip(again, expected, strict=True):
        assert torch.equal(got, want)
    assert torch.equal(_state(reused).keep, _state(fresh).keep)
    assert torch.equal(_state(reused).scores, _state(fresh).scores)


@pytest.mark.parametrize("keys", [64, 4096])
def test_an_evicting_decode_call_never_waits_for_the_device(keys):
    attn = _attn(H2OConfig(0.5, decode_eviction=True))
    q, k, v = (t.to(torch.bfloat16) for t in qkv(4, 2, keys + 3, keys + 3, seed=1, d=16))
    attn.observe_prefill(None, q[:, :, :keys], k[:, :, :keys], v[:, :, :keys], None, layer_idx=0)

    def call(position: int) -> object:
        return attn.custom_attention(
            None,
            q[:, :, position : position + 1],
            k[:, :, : position + 1],
            v[:, :, : position + 1],
            None,
            layer_idx=0,
            query_start=position,
        )

    call(keys)  # adds one key: the next call evicts one
    ops = count_ops(lambda: call(keys + 1))
    assert not ops.syncs, ops.syncs
    assert ops.counts["aten.topk"] >= 1  # the eviction ran
    assert torch.all(_state(attn).keep.sum(-1) == n_kept(keys, 0.5) + 1)


def test_decode_eviction_is_left_out_of_the_config_dict_while_off():
    assert masker_config_to_dict(H2OConfig(0.5)) == {
        "h2o": {
            "compression_ratio": 0.5,
            "query_aware": False,
            "head_budget": "uniform",
            "alpha_safeguard": 0.2,
            "recent_ratio": 0.5,
        }
    }
    on = H2OConfig(0.5, decode_eviction=True)
    ((name, params),) = masker_config_to_dict(on).items()
    assert params["decode_eviction"] is True
    assert masker_config_from_dict(name, params) == on


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: H2OConfig(decode_eviction=1),
            TypeError,
            "H2OConfig.decode_eviction must be a bool",
        ),
        (
            lambda: H2OConfig(decode_eviction=True, head_budget="adaptive"),
            ValueError,
            "H2OConfig.decode_eviction needs head_budget 'uniform'",
        ),
    ],
)
def test_bad_decode_eviction_configs_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()
