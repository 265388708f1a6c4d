"""HashAttention: budget, forbidden keys, dense limit, ties, determinism, state, weight files.

Runs the shared masker properties (tests/sparse_attention/test_maskers.py) on HashAttention
with weights written for fixed shapes (it is in ``ARTEFACT_EXAMPLES``); the recall figures on
a real tiny model, trained against random MLPs, are in tests/offline/.
"""

from __future__ import annotations

import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_attention_hub.cli import main
from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    Mask,
    MaskerStates,
    ResearchAttention,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.maskers import (
    HashAttentionConfig,
    LocalMaskerConfig,
    SinkMaskerConfig,
    create_masker,
    resolve_size,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention import (
    hamming_scores,
    nearest_by_distance_then_position,
)
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    HatLayer,
    load_hat_weights,
    mlp_logits,
    pack_signs,
    random_hat_weights,
    save_hat_weights,
    to_pickle_layout,
)

H, HKV, D, LAYERS = 4, 2, 8, 2


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    weights = random_hat_weights(LAYERS, H, D, hat_bits=32, hidden=16, seed=0)
    return str(save_hat_weights(weights, tmp_path_factory.mktemp("hat") / "w.safetensors"))


def qkv(b=2, q_len=3, k_len=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, H, q_len, D, generator=g),
        torch.randn(b, HKV, k_len, D, generator=g),
        torch.randn(b, HKV, k_len, D, generator=g),
    )


def causal(q_len, k_len):
    pos = torch.arange(k_len - q_len, k_len).unsqueeze(-1)
    return (torch.arange(k_len) <= pos)[None, None]  # (1, 1, Q, K)


def add(config, q, k, v, previous, mask=None, layer=0):
    inputs = AttentionInputs(q, k, v, mask, layer_idx=layer)
    return create_masker(config).add_mask(inputs, previous)


def sink_local(q, k, v, mask, sink=3, window=5):
    shape = (q.shape[0], H, q.shape[2], k.shape[2])
    prev = Mask.create_empty(shape)
    for config in (SinkMaskerConfig(sink), LocalMaskerConfig(window)):
        prev = create_masker(config).add_mask(AttentionInputs(q, k, v, mask), prev)
    return prev


@pytest.mark.parametrize("heavy", [1, 7, 0.25, 20])
def test_exactly_heavy_size_keys_beyond_the_previous_mask_never_a_forbidden_one(
    weights_file, heavy
):
    q, k, v = qkv()
    mask = causal(3, 40)
    previous = sink_local(q, k, v, mask)
    new = add(HashAttentionConfig(heavy, weights_file), q, k, v, previous, mask).to_dense() > 0
    before = previous.to_dense() > 0
    assert torch.all(new >= before)
    assert not torch.any(new & ~mask)
    eligible = (mask & ~before).sum(-1)  # (B, H, Q)
    want = int(heavy * 40) if isinstance(heavy, float) else heavy
    added = (new & ~before).sum(-1)
    assert torch.equal(added, eligible.clamp(max=want))


def test_a_budget_of_at_least_k_is_dense_attention(weights_file):
    q, k, v = qkv(k_len=24)
    mask = causal(3, 24)
    dense = ResearchAttention.create_from_config(ResearchAttentionConfig([]))
    sparse = ResearchAttention.create_from_config(
        ResearchAttentionConfig([HashAttentionConfig(24, weights_file)])
    )
    ref, _ = dense.custom_attention(None, q, k, v, mask, None, layer_idx=1)
    out, _ = sparse.custom_attention(None, q, k, v, mask, None, layer_idx=1)
    assert torch.allclose(out, ref, atol=1e-5, rtol=0)


def test_the_same_inputs_give_the_same_mask(weights_file):
    q, k, v = qkv(seed=3)
    config = HashAttentionConfig(6, weights_file)
    a = add(config, q, k, v, Mask.create_empty((2, H, 3, 40)), causal(3, 40)).to_dense()
    b = add(config, q, k, v, Mask.create_empty((2, H, 3, 40)), causal(3, 40)).to_dense()
    assert torch.equal(a, b)
    other = add(config, q, k, v, Mask.create_empty((2, H, 3, 40)), causal(3, 40), layer=1)
    assert not torch.equal(a, other.to_dense())  # each layer has its own MLPs


def test_ties_go_to_the_earlier_key(tmp_path):
    """All-zero last layers: every signature is all zeros, every score ties at hat_bits, so
    the selected keys are the first eligible ones."""
    weights = random_hat_weights(1, H, D, hat_bits=32, hidden=16)
    layer = weights[0]

    def flat(mlp):
        return (*mlp[:-1], (torch.zeros_like(mlp[-1][0]), torch.zeros_like(mlp[-1][1])))

    path = save_hat_weights({0: HatLayer(flat(layer.query), flat(layer.key))}, tmp_path / "t")
    q, k, v = qkv(b=1, q_len=2, k_len=30)
    mask = causal(2, 30)
    previous = sink_local(q, k, v, mask, sink=2, window=4)
    new = add(HashAttentionConfig(5, str(path)), q, k, v, previous, mask).to_dense() > 0
    added = new & ~(previous.to_dense() > 0)  # (1, H, 2, 30)
    expected = torch.zeros(30, dtype=torch.bool)
    expected[2:7] = True
    assert torch.equal(added, expected.expand_as(added))


def test_tie_rule_on_integer_distances():
    distance = torch.tensor([[[[3, 1, 1, 4, 1, 1]]]], dtype=torch.int32)
    ineligible = torch.tensor([False, False, True, False, False, False]).expand(1, 1, 1, 6)
    indices, keep = nearest_by_distance_then_position(distance, ineligible, 3, bits=8)
    assert sorted(indices[keep].tolist()) == [1, 4, 5]
    indices, keep = nearest_by_distance_then_position(distance, ineligible, 2, bits=8)
    assert sorted(indices[keep].tolist()) == [1, 4]
    indices, keep = nearest_by_distance_then_position(distance, None, 4, bits=8)
    assert sorted(indices[keep].tolist()) == [1, 2, 4, 5]
    _, keep = nearest_by_distance_then_position(
        distance, torch.ones(1, 1, 1, 6, dtype=torch.bool), 2, bits=8
    )
    assert not keep.any()


@pytest.mark.parametrize("bits", [32, 40, 7, 300])
def test_hamming_score_is_the_dot_product_of_sign_signatures(bits):
    g = torch.Generator().manual_seed(bits)
    q_logits, k_logits = (
        torch.randn(2, 3, 4, bits, generator=g),
        torch.randn(2, 3, 9, bits, generator=g),
    )
    expected = torch.where(q_logits > 0, 1, -1) @ torch.where(k_logits > 0, 1, -1).transpose(-1, -2)
    got = hamming_scores(pack_signs(q_logits), pack_signs(k_logits).transpose(-1, -2), bits)
    assert torch.equal(got, expected)


def test_key_mlps_are_per_query_head(weights_file):
    """Query head h hashes its KV head's keys with its own key MLP (as the official code)."""
    weights = load_hat_weights(weights_file)
    masker = create_masker(HashAttentionConfig(4, weights_file))
    _, k, v = qkv(b=1, k_len=5)
    q = torch.randn(1, H, 1, D)
    state = masker.build_state(AttentionInputs(q, k, v, layer_idx=0))
    repeated = k.repeat_interleave(H // HKV, dim=1)  # (B, H, K, D)
    assert torch.equal(state, pack_signs(mlp_logits(repeated, weights[0].key)).transpose(-1, -2))


def test_state_extended_and_truncated_equals_a_fresh_build(weights_file):
    masker = create_masker(HashAttentionConfig(4, weights_file))
    states = MaskerStates()
    g = torch.Generator().manual_seed(1)
    keys = torch.randn(1, HKV, 40, D, generator=g)

    def call(start: int, stop: int) -> None:
        q = torch.randn(1, H, 1, D, generator=g)
        inputs = AttentionInputs(
            q, keys[:, :, start:stop], keys[:, :, start:stop], layer_idx=0, query_start=stop - 1
        )
        state = states.read(masker, inputs)
        assert torch.equal(state, masker.build_state(inputs)), (start, stop)

    call(0, 9)
    call(0, 10)
    call(0, 17)
    states.truncate(6)
    call(0, 13)
    call(3, 19)  # a sliding window dropped keys
    entry = states.entry(0, masker)
    assert entry is not None and entry.value.shape == (1, H, 2, 16)


@st.composite
def problems(draw):
    b, q_len, k_len = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**16))
    levels = draw(st.sampled_from([(0.0,), (0.0, 1.0), (0.0, 1.0, 0.4), (1.0,)]))
    g = torch.Generator().manual_seed(seed)
    shape = (b, H, q_len, k_len)
    previous = torch.tensor(levels)[torch.randint(0, len(levels), shape, generator=g)]
    q, k, v = qkv(b, q_len, k_len, seed)
    mask = causal(q_len, k_len) if draw(st.booleans()) else None
    return q, k, v, previous, mask, draw(st.sampled_from([1, 3, 0.5, 1.0]))


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(problem=problems())
def test_the_shared_additive_property(weights_file, problem):
    q, k, v, previous, mask, heavy = problem
    prev_mask = Mask.from_dense(previous)
    saved = previous.clone()
    dense = add(HashAttentionConfig(heavy, weights_file), q, k, v, prev_mask, mask).to_dense()
    assert torch.all(dense >= previous) and torch.all(dense <= 1)
    assert torch.equal(prev_mask.dense_view(), saved)
    k_len = k.shape[2]
    if mask is not None and resolve_size(heavy, k_len) < k_len:  # (a budget >= K is dense)
        assert not torch.any((dense > previous) & ~mask)


# ---------------------------------------------------------------------- weight files


def test_a_pickle_is_refused_without_allow_pickle(tmp_path, weights_file):
    weights = load_hat_weights(weights_file)
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(to_pickle_layout(weights)))
    with pytest.raises(ValueError, match="allow_pickle"):
        create_masker(HashAttentionConfig(4, str(path)))
    masker = create_masker(HashAttentionConfig(4, str(path), allow_pickle=True))
    q, k, v = qkv()
    a = masker.add_mask(
        AttentionInputs(q, k, v, causal(3, 40), layer_idx=1), Mask.create_empty((2, H, 3, 40))
    )
    b = add(
        HashAttentionConfig(4, weights_file),
        q,
        k,
        v,
        Mask.create_empty((2, H, 3, 40)),
        causal(3, 40),
        layer=1,
    )
    assert torch.equal(a.to_dense(), b.to_dense())


def test_the_converter_round_trips_a_pickle(tmp_path, weights_file, capsys):
    weights = load_hat_weights(weights_file)
    source, target = tmp_path / "w.pkl", tmp_path / "out" / "w.safetensors"
    source.write_bytes(pickle.dumps(to_pickle_layout(weights)))
    assert main(["convert", "hashattention", str(source), "--out", str(target)]) == 0
    assert "2 layers" in capsys.readouterr().out
    again = load_hat_weights(target)
    for i in weights:
        for side in ("query", "key"):
            for (w, b), (w2, b2) in zip(
                getattr(weights[i], side), getattr(again[i], side), strict=True
            ):
                assert torch.equal(w, w2) and torch.equal(b, b2)


class OfficialUSA(torch.nn.Module):
    """The official repository's per-layer module (hashattention_llama.USA, 3 layers)."""

    def __init__(self, heads: int, dim: int, hidden: int, bits: int) -> None:
        super().__init__()

        def mlp() -> torch.nn.Sequential:
            return torch.nn.Sequential(
                torch.nn.Linear(dim, hidden),
                torch.nn.SiLU(),
                torch.nn.Linear(hidden, hidden),
                torch.nn.SiLU(),
                torch.nn.Linear(hidden, bits),
            )

        self.learning_to_hash_transformation_k = torch.nn.ModuleList(mlp() for _ in range(heads))
        self.learning_to_hash_transformation_q = torch.nn.ModuleList(mlp() for _ in range(heads))


def test_the_converter_reads_an_official_checkpoint(tmp_path):
    """An official ``.pt`` (ModuleList of USA modules) converts to MLPs with the same outputs."""
    torch.manual_seed(0)
    official = torch.nn.ModuleList(OfficialUSA(H, D, 16, 32) for _ in range(LAYERS))
    torch.save(official.state_dict(), tmp_path / "usa.pt")
    target = tmp_path / "usa.safetensors"
    assert main(["convert", "hashattention", str(tmp_path / "usa.pt"), "--out", str(target)]) == 0
    weights = load_hat_weights(target)
    x = torch.randn(1, H, 5, D)
    for i in range(LAYERS):
        for side, attr in (
            ("query", "learning_to_hash_transformation_q"),
            ("key", "learning_to_hash_transformation_k"),
        ):
            expected = torch.stack([getattr(official[i], attr)[h](x[0, h]) for h in range(H)])
            got = mlp_logits(x, getattr(weights[i], side))[0]
            assert torch.allclose(got, expected, atol=1e-5), (i, side)


def test_bad_files_are_clear_errors(tmp_path, weights_file):
    q, k, v = qkv()
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        create_masker(HashAttentionConfig(4, str(tmp_path / "missing.safetensors")))
    with pytest.raises(ValueError, match=r"no HashAttention weights for layer 5"):
        add(
            HashAttentionConfig(4, weights_file), q, k, v, Mask.create_empty((2, H, 3, 40)), layer=5
        )
    q3 = torch.randn(2, 2, 3, D)
    with pytest.raises(ValueError, match=r"w.safetensors: layer 0: .*expected shape \(2, 8, out\)"):
        add(HashAttentionConfig(4, weights_file), q3, k, v, Mask.create_empty((2, 2, 3, 40)))
    with pytest.raises(ValueError, match="hat_bits = 16"):
        create_masker(HashAttentionConfig(4, weights_file, hat_bits=16))
    broken = random_hat_weights(1, H, D, hidden=16)
    from safetensors.torch import save_file

    from sparse_attention_hub.sparse_attention.maskers.hashattention_checks import METADATA
    from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import to_tensors

    tensors = to_tensors(broken)
    tensors["layers.0.key.1.weight"] = torch.zeros(H, 5, 16)
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=METADATA)
    with pytest.raises(
        ValueError,
        match=r"bad.safetensors: layer 0: layers.0.key.1.weight has shape \(4, 5, 16\), expected \(4, 16, out\)",
    ):
        create_masker(HashAttentionConfig(4, str(tmp_path / "bad.safetensors")))
    del tensors["layers.0.key.1.weight"]
    save_file(tensors, str(tmp_path / "gap.safetensors"), metadata=METADATA)
    with pytest.raises(ValueError, match=r"missing layers.0.key.1.weight"):
        create_masker(HashAttentionConfig(4, str(tmp_path / "gap.safetensors")))
    (tmp_path / "junk.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(ValueError, match="neither a safetensors file nor a pickle"):
        create_masker(HashAttentionConfig(4, str(tmp_path / "junk.safetensors")))


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"heavy_size": -1}, ValueError),
        ({"heavy_size": 1.5}, ValueError),
        ({"weights_file": ""}, TypeError),
        ({"hat_bits": 0}, ValueError),
        ({"hat_bits": True}, TypeError),
        ({"allow_pickle": "yes"}, TypeError),
    ],
)
def test_config_validation(kwargs, error):
    base = {"heavy_size": 4, "weights_file": "w.safetensors"}
    with pytest.raises(error, match="HashAttentionConfig"):
        HashAttentionConfig(**{**base, **kwargs})
