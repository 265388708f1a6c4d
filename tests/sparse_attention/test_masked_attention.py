"""masked_attention against torch SDPA and against a direct formula."""

import pytest
import torch
import torch.nn.functional as F

from sparse_attention_hub.sparse_attention import Mask, masked_attention


def make_qkv(b, h, h_kv, q, k, d, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, h, q, d, generator=g).to(dtype),
        torch.randn(b, h_kv, k, d, generator=g).to(dtype),
        torch.randn(b, h_kv, k, d, generator=g).to(dtype),
    )


def causal_additive(b, q, k, pad=0, fill=float("-inf")):
    """(B, 1, Q, K) additive mask: causal with queries at the end, batch 1 left-padded."""
    pos = torch.arange(k - q, k).unsqueeze(-1)
    allowed = (torch.arange(k) <= pos).expand(b, 1, q, k).clone()
    if pad and b > 1:
        allowed[1, :, :, :pad] = False
    return torch.zeros(b, 1, q, k).masked_fill(~allowed, fill)


@pytest.mark.parametrize("h, h_kv", [(4, 4), (6, 2)])
@pytest.mark.parametrize("q_len", [1, 5])
@pytest.mark.parametrize("padding", [False, True])
def test_full_mask_matches_sdpa(h, h_kv, q_len, padding):
    b, k_len, d = 2, 11, 8
    q, k, v = make_qkv(b, h, h_kv, q_len, k_len, d)
    fill = torch.finfo(torch.float32).min if padding else float("-inf")
    bias = causal_additive(b, q_len, k_len, pad=3 if padding else 0, fill=fill)
    if q_len == 1 and not padding:
        bias = None
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=h != h_kv)
    for mask in (
        None,
        Mask.create_full((b, h, q_len, k_len)),
        Mask.from_dense(torch.ones(b, h, q_len, k_len)),
    ):
        out, weights = masked_attention(q, k, v, mask, attention_mask=bias)
        assert weights is None and out.shape == (b, q_len, h, d)
        torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-5, rtol=0)


def test_bool_attention_mask_equals_additive():
    q, k, v = make_qkv(2, 4, 2, 3, 9, 8, seed=1)
    bias = causal_additive(2, 3, 9, pad=2)
    out_bool, _ = masked_attention(q, k, v, attention_mask=bias == 0)
    out_add, _ = masked_attention(q, k, v, attention_mask=bias)
    torch.testing.assert_close(out_bool, out_add, atol=0, rtol=0)


def reference(q, k, v, probs, scaling, sinks=None):
    """Direct formula: out_i = sum_j w_ij v_j / (sum_j w_ij + sink), w = exp(s - max) / p."""
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1).double(), v.repeat_interleave(g, 1).double()
    s = q.double() @ k.transpose(-1, -2) * scaling
    s_act = s.masked_fill(probs == 0, float("-inf"))
    m = s_act.amax(-1, keepdim=True)
    if sinks is not None:
        m = torch.maximum(m, sinks.double().view(1, -1, 1, 1))
    w = torch.where(probs > 0, torch.exp(s - m) / probs.double().clamp_min(1e-30), 0.0)
    den = w.sum(-1, keepdim=True)
    if sinks is not None:
        den = den + torch.exp(sinks.double().view(1, -1, 1, 1) - m)
    return ((w @ v) / den).transpose(1, 2), w / den


@pytest.mark.parametrize("with_sinks", [False, True])
def test_probability_weights_and_sinks_match_the_formula(with_sinks):
    b, h, h_kv, q_len, k_len, d = 2, 4, 2, 3, 10, 8
    q, k, v = make_qkv(b, h, h_kv, q_len, k_len, d, seed=2)
    g = torch.Generator().manual_seed(3)
    probs = torch.tensor([0.0, 1.0, 0.5, 0.2])[
        torch.randint(0, 4, (b, h, q_len, k_len), generator=g)
    ]
    probs[..., 0] = 1.0
    sinks = torch.randn(h, generator=g) if with_sinks else None
    out, weights = masked_attention(
        q, k, v, Mask.from_dense(probs), scaling=0.3, sinks=sinks, return_weights=True
    )
    exp_out, exp_w = reference(q, k, v, probs, 0.3, sinks)
    torch.testing.assert_close(out.double(), exp_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(weights.double(), exp_w, atol=1e-6, rtol=0)


def test_sinks_match_gpt_oss_eager_formula():
    q, k, v = make_qkv(1, 4, 2, 2, 6, 8, seed=4)
    sinks = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out, _ = masked_attention(q, k, v, sinks=sinks)
    s = q @ k.repeat_interleave(2, 1).transpose(-1, -2) / 8**0.5
    combined = torch.cat([s, sinks.view(1, 4, 1, 1).expand(1, 4, 2, 1)], dim=-1)
    probs = torch.softmax(combined, dim=-1)[..., :-1]
    torch.testing.assert_close(
        out, (probs @ v.repeat_interleave(2, 1)).transpose(1, 2), atol=1e-6, rtol=0
    )


def test_rows_with_no_active_key_are_zero_not_nan():
    q, k, v = make_qkv(1, 2, 1, 3, 5, 4, seed=5)
    probs = torch.ones(1, 2, 3, 5)
    probs[0, 0, 1] = 0.0  # mask removes every key of one row
    bias = torch.zeros(1, 1, 3, 5)
    bias[0, 0, 2] = float("-inf")  # attention mask removes every key of another row
    out, weights = masked_attention(
        q, k, v, Mask.from_dense(probs), attention_mask=bias, return_weights=True
    )
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert torch.all(out[0, 1, 0] == 0) and torch.all(out[0, 2, :] == 0)
    empty, _ = masked_attention(q, k, v, Mask.create_empty((1, 2, 3, 5)))
    assert torch.all(empty == 0)


def test_finfo_min_mask_rows_stay_finite():
    q, k, v = make_qkv(1, 2, 2, 2, 4, 4, seed=6)
    bias = torch.full((1, 1, 2, 4), torch.finfo(torch.float32).min)
    out, _ = masked_attention(q, k, v, attention_mask=bias)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_finfo_min_forbids_keys_exactly_like_a_bool_mask(dtype):
    """finfo.min (HF's additive "forbidden") behaves as False, also in a row whose only active
    keys are forbidden: zeros, not an average over forbidden values."""
    q, k, v = make_qkv(1, 2, 1, 3, 6, 4, seed=8, dtype=dtype)
    allowed = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1]]).bool()
    bias = torch.zeros(1, 1, 3, 6, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    probs = torch.zeros(1, 2, 3, 6)
    probs[..., :2] = 1.0  # row 2 keeps only keys its attention mask forbids
    probs[..., 3] = 0.5
    out_add, w_add = masked_attention(
        q, k, v, Mask.from_dense(probs), attention_mask=bias, return_weights=True
    )
    out_bool, w_bool = masked_attention(
        q, k, v, Mask.from_dense(probs), attention_mask=allowed[None, None], return_weights=True
    )
    assert out_add.dtype == dtype and torch.isfinite(out_add).all()
    torch.testing.assert_close(out_add, out_bool, atol=0, rtol=0)
    torch.testing.assert_close(w_add, w_bool, atol=0, rtol=0)
    assert torch.all(out_add[0, 2] == 0) and torch.all(out_add[0, :2] != 0)


def test_low_precision_inputs_return_query_dtype_with_fp32_math():
    q, k, v = make_qkv(1, 4, 2, 2, 16, 8, seed=7, dtype=torch.bfloat16)
    out, weights = masked_attention(q, k, v, return_weights=True)
    assert out.dtype == torch.bfloat16 and weights.dtype == torch.bfloat16
    ref, _ = masked_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=0)


def test_inputs_and_precomputed_scores_are_not_modified():
    from sparse_attention_hub.sparse_attention import attention_scores

    q, k, v = make_qkv(1, 4, 2, 3, 8, 8, seed=8)
    scores = attention_scores(q, k)
    saved = scores.clone()
    mask = Mask.from_dense((torch.rand(1, 4, 3, 8) > 0.5).float())
    masked_attention(q, k, v, mask, scores=scores)
    masked_attention(q, k, v, None, scores=scores)
    assert torch.equal(scores, saved)


def test_bad_head_counts_raise():
    q, k, v = make_qkv(1, 3, 2, 1, 4, 4)
    with pytest.raises(ValueError, match="multiple"):
        masked_attention(q, k, v)
    q, k, v = make_qkv(1, 4, 2, 1, 4, 4)
    with pytest.raises(ValueError, match="values must be"):
        masked_attention(q, k, v[:, :, :3])


@pytest.mark.parametrize("with_sinks", [False, True])
def test_nan_input_gives_nan(with_sinks):
    """A NaN in q, k or v is not hidden: exactly the outputs it reaches are NaN."""
    sinks = torch.zeros(2) if with_sinks else None
    q, k, v = make_qkv(1, 2, 2, 3, 5, 4, seed=7)
    q[0, 0, 1, 0] = float("nan")  # head 0, query 1: that output row only
    out, _ = masked_attention(q, k, v, sinks=sinks)  # (B, Q, H, D)
    expected = torch.zeros(1, 3, 2, 4, dtype=torch.bool)
    expected[0, 1, 0] = True
    assert torch.equal(out.isnan(), expected)
    q, k, v = make_qkv(1, 2, 2, 3, 5, 4, seed=7)
    k[0, 1, 2, 3] = float("nan")  # head 1, key 2: every query of head 1
    out, _ = masked_attention(q, k, v, sinks=sinks)
    assert out[0, :, 1].isnan().all() and not out[0, :, 0].isnan().any()
    q, k, v = make_qkv(1, 2, 2, 3, 5, 4, seed=7)
    v[0, 0, 4, 2] = float("nan")  # head 0, key 4, dim 2: dim 2 of every query of head 0
    out, _ = masked_attention(q, k, v, sinks=sinks)
    expected = torch.zeros(1, 3, 2, 4, dtype=torch.bool)
    expected[0, :, 0, 2] = True
    assert torch.equal(out.isnan(), expected)


def test_softcap_matches_the_gemma2_formula():
    q, k, v = make_qkv(1, 2, 1, 3, 6, 4, seed=8)
    q = q * 10.0  # scores large enough for the cap to bite
    cap = 2.0
    out, _ = masked_attention(q, k, v, softcap=cap)
    k2, v2 = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    scores = q @ k2.transpose(-1, -2) / 2.0  # D = 4: scale 1/2
    ref = torch.softmax(cap * torch.tanh(scores / cap), dim=-1) @ v2
    torch.testing.assert_close(out, ref.transpose(1, 2))
    plain, _ = masked_attention(q, k, v)
    assert (plain - out).abs().max() > 1e-2
