"""SOCKET: parity with a direct transcription of the reference code's math, the config, the
state, the memory and host-sync rules of a decode call, the recipe and recall on a tiny model.

The shared masker properties (tests/sparse_attention/test_maskers.py) and the rollback law
(tests/adapters/test_state_law.py) run it through ``example_masker_configs``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    Mask,
    MaskerStates,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    SinkMaskerConfig,
    SocketConfig,
    create_masker,
    resolve_size,
)
from tests.support.captured import oracle_top, question_calls


def qkv(b=2, h=4, h_kv=2, q_len=3, k_len=40, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, h, q_len, d, generator=g),
        torch.randn(b, h_kv, k_len, d, generator=g),
        torch.randn(b, h_kv, k_len, d, generator=g) * torch.rand(b, h_kv, k_len, 1, generator=g),
    )


def causal(q_len, k_len):
    pos = torch.arange(k_len - q_len, k_len).unsqueeze(-1)
    return (torch.arange(k_len) <= pos)[None, None]  # (1, 1, Q, K) bool, True = may attend


def reference_socket(q, k, v, allowed, previous, heavy, lsh_k, lsh_l, tau, seed=123456789):
    """The reference's socket_top_k.py / socket_utils.py math, transcribed directly: repeated
    K/V, einsum hashing, itertools corners, a (B, H, Q, L, R) softmax, top-M over all allowed
    keys, then max with the previous mask. Returns (dense mask, scores)."""
    b, h, q_len, d = q.shape
    group = h // k.shape[1]
    k_rep, v_rep = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    g = torch.Generator().manual_seed(seed + 7777)
    planes = torch.randn((lsh_l, lsh_k, d), generator=g, dtype=torch.float32)
    bits = torch.einsum("bhnd,lkd->bhnlk", k_rep, planes) >= 0
    weights = 1 << torch.arange(lsh_k - 1, -1, -1)
    buckets = (bits.long() * weights).sum(-1).permute(0, 1, 3, 2)  # (B, H, L, N)
    corners = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=lsh_k))).t()  # (P, R)
    qh = torch.tanh(torch.einsum("bhqd,lkd->bhqlk", q, planes)) / math.sqrt(d)
    probs = torch.softmax(torch.einsum("bhqlk,kr->bhqlr", qh, corners) / tau, dim=-1)
    n = k.shape[2]
    index = buckets.unsqueeze(2).expand(b, h, q_len, lsh_l, n)
    collision = torch.gather(probs, -1, index).sum(3)  # (B, H, Q, N)
    scores = collision * torch.linalg.vector_norm(v_rep, dim=-1).unsqueeze(2)
    scores = scores.masked_fill(~allowed, float("-inf"))
    top = scores.topk(resolve_size(heavy, n), dim=-1)
    chosen = torch.zeros_like(scores).scatter_(-1, top.indices, torch.isfinite(top.values).float())
    return torch.maximum(previous, chosen), scores


@pytest.mark.parametrize(
    ("lsh_k", "lsh_l", "tau", "heavy"), [(3, 4, 0.3, 5), (5, 7, 1.0, 0.25), (1, 1, 0.05, 2)]
)
def test_scores_and_mask_equal_the_reference_math(lsh_k, lsh_l, tau, heavy):
    q, k, v = qkv(q_len=3, k_len=40, seed=lsh_k)
    allowed = causal(3, 40).expand(2, 4, 3, 40)
    inputs = AttentionInputs(q, k, v, causal(3, 40))
    previous = Mask.create_empty(inputs.mask_shape)
    for config in (SinkMaskerConfig(3), LocalMaskerConfig(4)):
        previous = create_masker(config).add_mask(inputs, previous)
    masker = create_masker(SocketConfig(heavy, lsh_k=lsh_k, lsh_l=lsh_l, tau=tau))
    mask = masker.add_mask(inputs, previous).to_dense()
    expected, ref_scores = reference_socket(
        q, k, v, allowed, previous.to_dense(), heavy, lsh_k, lsh_l, tau
    )
    torch.testing.assert_close(masker.scores(inputs), ref_scores, rtol=1e-5, atol=1e-6)
    assert torch.equal(mask, expected)
    # Chosen among all allowed keys, as the reference: fewer than sink + local + heavy per row.
    k_sel = resolve_size(heavy, 40)
    assert (mask.sum(-1) < previous.to_dense().sum(-1) + k_sel).any()


def test_config_errors_name_the_field_and_what_is_allowed():
    with pytest.raises(ValueError, match=r"SocketConfig.lsh_k must be in \[1, 16\], got 17"):
        SocketConfig(4, lsh_k=17)
    with pytest.raises(ValueError, match=r"SocketConfig.lsh_l must be in \[1, 4096\], got 0"):
        SocketConfig(4, lsh_l=0)
    with pytest.raises(ValueError, match=r"SocketConfig.tau must be a finite number > 0"):
        SocketConfig(4, tau=0.0)
    with pytest.raises(TypeError, match=r"SocketConfig.lsh_k must be an int"):
        SocketConfig(4, lsh_k=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"SocketConfig\.heavy_size"):
        SocketConfig(0)


def test_state_extended_and_truncated_equals_a_fresh_build():
    masker = create_masker(SocketConfig(4, lsh_k=4, lsh_l=3))
    q, k, v = qkv(q_len=1, k_len=30, seed=3)
    states = MaskerStates()

    def call(stop):
        inputs = AttentionInputs(q, k[:, :, :stop], v[:, :, :stop], layer_idx=0)
        state = states.read(masker, inputs)
        fresh = masker.build_state(inputs)
        assert torch.equal(state.codes, fresh.codes)
        assert torch.equal(state.value_norms, fresh.value_norms)

    call(10)
    call(11)
    call(25)
    states.truncate(7)
    call(8)
    call(30)


class _OpRecorder(TorchDispatchMode):
    """The aten ops of a call and the largest tensor any of them returned."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append(str(func.overloadpacket))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


@pytest.mark.parametrize("k_len", [512, 4096])
def test_a_decode_call_never_waits_for_the_device_nor_builds_a_q_k_l_tensor(k_len):
    """With the state built: no .item()/nonzero (host syncs), no tensor larger than twice the
    (B, H, Q, K) scores or one table's (B, H, Q, R) probabilities, and the same number of ops
    at every K."""
    b, h, h_kv, q_len, lsh_k, lsh_l = 1, 8, 2, 2, 6, 16
    q, k, v = qkv(b, h, h_kv, q_len, k_len, d=16, seed=1)
    masker = create_masker(SocketConfig(32, lsh_k=lsh_k, lsh_l=lsh_l))
    inputs = AttentionInputs(q, k, v, causal(q_len, k_len))
    inputs = AttentionInputs(q, k, v, causal(q_len, k_len), state=masker.build_state(inputs))
    previous = Mask.create_empty(inputs.mask_shape)
    with _OpRecorder() as rec:
        masker.add_mask(inputs, previous)
    assert not {"aten._local_scalar_dense", "aten.nonzero", "aten.item"} & set(rec.ops)
    # at most two score-sized tensors at once (torch 2.6 dispatches one op as a pair), never
    # one per table (lsh_l = 16 times that)
    assert rec.largest <= 2 * b * h * q_len * max(k_len, 2**lsh_k)
    assert len(rec.ops) < 20 * lsh_l  # a fixed number per table: does not grow with K


def test_the_recipe_is_the_reference_stack():
    cfg = ResearchAttentionConfig.from_recipe("socket")
    assert cfg.masker_names() == ["sink", "local", "socket"] and cfg.dense_layers == []
    sink, local, sock = cfg.masker_configs
    assert (sink.sink_size, local.window_size) == (128, 128)
    assert (sock.heavy_size, sock.lsh_k, sock.lsh_l, sock.tau) == (0.2, 12, 60, 0.3)


def test_tiny_model_recall_of_the_oracle_top_k_beats_random_keys(tiny_model_dir):
    """On real queries and keys of a tiny model's question tokens, SOCKET's keys hold more
    of the oracle top-k than as many random keys."""
    top, budget = 32, 128
    g = torch.Generator().manual_seed(0)
    hits = random_hits = total = 0.0
    for inputs in question_calls(tiny_model_dir):
        scores = inputs.exact_scores()
        oracle = oracle_top(scores, top)
        masker = create_masker(SocketConfig(budget, lsh_k=8, lsh_l=30, tau=0.3))
        active = masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape)).to_dense() > 0
        noise = torch.rand(scores.shape, generator=g).masked_fill(scores == float("-inf"), -1)
        rand = torch.zeros_like(active).scatter_(-1, noise.topk(budget, -1).indices, True)
        hits += float((active & oracle).sum())
        random_hits += float((rand & oracle).sum())
        total += float(oracle.sum())
    recall, random_recall = hits / total, random_hits / total
    print(f"socket recall of the oracle top-{top}: {recall:.3f}, random keys: {random_recall:.3f}")
    assert recall > 1.3 * random_recall and recall > random_recall + 0.05
