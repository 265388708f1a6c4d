"""Quest: whole pages, a true page bound, the budget, determinism, state and recall."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparse_attention_hub.sparse_attention import (
    AttentionInputs,
    MaskerStates,
    ResearchAttention,
    ResearchAttentionConfig,
)
from sparse_attention_hub.sparse_attention.attention import masked_attention
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers import QuestConfig, create_masker, quest_pages
from sparse_attention_hub.sparse_attention.maskers.quest import (
    fake_quantise,
    page_bounds,
    page_summaries,
)
from sparse_attention_hub.testing import trained_model_dir
from tests.support.captured import oracle_top, question_calls
from tests.support.tensors import random_qkv as qkv


def quest_mask(config: QuestConfig, q, k, v, attention_mask=None, query_start=None) -> torch.Tensor:
    inputs = AttentionInputs(q, k, v, attention_mask, layer_idx=0, query_start=query_start)
    mask = create_masker(config).add_mask(inputs, Mask.create_empty(inputs.mask_shape))
    return mask.to_dense() > 0  # (B, H, Q, K)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset=st.integers(0, 40),
    n_keys=st.integers(1, 50),
    page=st.integers(1, 9),
    bits=st.sampled_from([2, 4, 8, 16]),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
    seed=st.integers(0, 2**16),
)
def test_the_page_bound_is_an_upper_bound_of_every_score_in_the_page(
    offset, n_keys, page, bits, scale, seed
):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(2, 2, n_keys, 6, generator=g) * scale
    queries = torch.randn(2, 4, 3, 6, generator=g) * scale
    mins, maxs = fake_quantise(*page_summaries(keys, offset, page), bits)
    bound = page_bounds(queries, mins, maxs)  # (B, H, Q, P)
    scores = queries @ keys.repeat_interleave(2, dim=1).transpose(-1, -2)  # (B, H, Q, K)
    page_of_key = (torch.arange(offset, offset + n_keys) // page) - offset // page
    assert bound.shape[-1] == int(page_of_key[-1]) + 1
    per_key = bound[..., page_of_key]  # (B, H, Q, K)
    # fp32 rounding scales with the terms' magnitudes, not the (possibly cancelled) score's
    magnitude = queries.abs() @ keys.abs().repeat_interleave(2, dim=1).transpose(-1, -2)
    assert torch.all(scores <= per_key + 1e-5 * (1 + magnitude))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("chunk", [4, 8, 64, 8192])
def test_chunked_page_summaries_equal_the_padded_fp32_summaries(monkeypatch, dtype, chunk):
    """Summaries built in chunks of whole pages, in the keys' dtype, equal the per-page min
    and max of an fp32 copy of the keys padded with +-inf to whole pages."""
    monkeypatch.setattr(quest_pages, "SUMMARY_CHUNK_KEYS", chunk)
    g = torch.Generator().manual_seed(0)
    for n_keys in range(1, 45, 4):
        for offset in (0, 1, 5, 8, 13):
            for page in (1, 4, 8):
                keys = torch.randn(2, 3, n_keys, 5, generator=g).to(dtype)
                lead = offset % page
                pages = -(-(lead + n_keys) // page)
                tail = pages * page - lead - n_keys
                low = F.pad(keys.float(), (0, 0, lead, tail), value=float("inf"))
                high = F.pad(keys.float(), (0, 0, lead, tail), value=float("-inf"))
                mins, maxs = page_summaries(keys, offset, page)
                assert torch.equal(mins, low.reshape(2, 3, pages, page, 5).amin(3))
                assert torch.equal(maxs, high.reshape(2, 3, pages, page, 5).amax(3))
    assert page_summaries(torch.randn(2, 3, 0, 5).to(dtype), 5, 4)[0].shape == (2, 3, 0, 5)
    strided = torch.randn(1, 2, 6, 40, generator=g).to(dtype).transpose(2, 3)  # not contiguous
    assert torch.equal(
        page_summaries(strided, 3, 4)[0], page_summaries(strided.contiguous(), 3, 4)[0]
    )


@pytest.mark.parametrize("h, h_kv", [(4, 4), (4, 2)])
@pytest.mark.parametrize("n_keys, budget, page", [(64, 16, 8), (70, 40, 8), (100, 0.3, 4)])
def test_whole_pages_per_query_head_within_the_budget(h, h_kv, n_keys, budget, page):
    q, k, v = qkv(h, h_kv, 3, n_keys, seed=n_keys)
    active = quest_mask(QuestConfig(budget, page), q, k, v)
    n_pages = -(-n_keys // page)
    tokens = int(budget * n_keys) if isinstance(budget, float) else budget
    want = min(max(3, tokens // page), n_pages)
    padded = torch.nn.functional.pad(active, (0, n_pages * page - n_keys))
    pages = padded.reshape(1, h, 3, n_pages, page)
    whole = pages.all(-1) | ~pages.any(-1)
    assert whole[..., :-1].all()  # every full page is all in or all out
    assert (pages.any(-1).sum(-1) == want).all()  # the budget in pages, per row and head
    # Each query head picks its own pages: they are the top pages of its own bound.
    mins, maxs = page_summaries(k, 0, page)
    bound = page_bounds(q, mins, maxs)
    top = torch.sort(bound, dim=-1, descending=True, stable=True).indices[..., :want]
    expected = torch.zeros_like(bound, dtype=torch.bool).scatter_(-1, top, True)
    assert torch.equal(pages.any(-1), expected)


def test_the_last_partial_page_is_scored_from_its_tokens_and_not_forced_in():
    q, k, v = qkv(2, 2, 1, 35, seed=3)  # pages of 8: the last has 3 keys
    k[:, :, 32:] = -5 * q[:, :1].expand(1, 2, 1, 8)  # its keys score badly for the query
    active = quest_mask(QuestConfig(24, 8), q, k, v)
    assert not active[..., 32:].any()
    k[:, :, 34] = 5 * q[:, :, 0]  # one very good valid key lifts the page
    active = quest_mask(QuestConfig(24, 8), q, k, v)
    assert active[..., 32:].all()


def test_the_kernel_path_always_keeps_the_own_page():
    q, k, v = qkv(2, 2, 1, 35, seed=3)
    k[:, :, 32:] = -5 * q[:, :1].expand(1, 2, 1, 8)
    active = quest_mask(QuestConfig(24, 8, keep_last_page=True), q, k, v)
    assert active[..., 32:].all()
    n_pages = active.reshape(1, 2, 1, 35)[..., :32].reshape(1, 2, 1, 4, 8).any(-1).sum(-1)
    assert (n_pages == 2).all()  # 24 // 8 = 3 pages: the own page and the best 2 others


@pytest.mark.parametrize("fill", ["bool", float("-inf")])
def test_forbidden_keys_stay_forbidden(fill):
    q, k, v = qkv(4, 2, 4, 40, seed=5)
    allowed = torch.arange(40) <= torch.arange(20, 24).unsqueeze(-1)  # causal, queries at 20..23
    allowed = allowed & (torch.arange(40) % 5 != 1)  # and some holes
    bias = allowed if fill == "bool" else torch.zeros(4, 40).masked_fill(~allowed, fill)
    active = quest_mask(QuestConfig(16, 4), q, k, v, bias[None, None], query_start=20)
    assert not (active & ~allowed).any() and active.any()
    pages = active.reshape(1, 4, 4, 10, 4).any(-1)
    assert (pages.sum(-1) == 4).all()  # 16 // 4 pages, all among the pages a row may see


@pytest.mark.parametrize("budget", [200, 1.0])
def test_a_budget_of_at_least_k_is_dense_attention(budget):
    q, k, v = qkv(4, 2, 3, 200, seed=9)
    attn = ResearchAttention.create_from_config(ResearchAttentionConfig([QuestConfig(budget)]))
    out, _ = attn.custom_attention(None, q, k, v, None, layer_idx=0)
    dense, _ = masked_attention(q, k, v, None)
    assert torch.allclose(out, dense, atol=1e-5)


def test_the_same_inputs_give_the_same_mask_and_ties_go_to_the_earlier_page():
    q, k, v = qkv(2, 2, 2, 64, seed=11)
    config = QuestConfig(32, 8, label_bits=4)
    assert torch.equal(quest_mask(config, q, k, v), quest_mask(config, q, k, v))
    k_tied = k[:, :, :8].repeat(1, 1, 8, 1)  # every page has the same summary
    active = quest_mask(QuestConfig(16, 8), q, k_tied, v)
    assert active[..., :24].all() and not active[..., 24:].any()  # pages 0, 1, 2 (floor 3)


def test_label_bits_quantise_the_summaries_conservatively():
    k = torch.randn(1, 2, 64, 8)
    mins, maxs = page_summaries(k, 0, 16)
    q_min, q_max = fake_quantise(mins, maxs, 2)
    assert torch.all(q_min <= mins) and torch.all(q_max >= maxs)
    assert not torch.equal(q_min, mins)
    assert fake_quantise(mins, maxs, 16)[0] is mins


def _reference_state(masker, keys, offset):
    inputs = AttentionInputs(keys[:, :, -1:], keys, keys, key_start=offset, query_start=None)
    return masker.build_state(inputs)


def test_state_extends_truncates_and_slides_like_a_fresh_build():
    masker = create_masker(QuestConfig(8, 4))
    keys = torch.randn(1, 2, 30, 8)
    states = MaskerStates()

    def call(start: int, stop: int) -> None:
        inputs = AttentionInputs(
            keys[:, :, stop - 1 : stop],
            keys[:, :, start:stop],
            keys[:, :, start:stop],
            layer_idx=0,
            query_start=stop - 1,
        )
        state = states.read(masker, inputs)
        fresh = masker.build_state(inputs)
        mins, maxs = masker._summaries(
            AttentionInputs(
                inputs.queries,
                inputs.keys,
                inputs.values,
                layer_idx=0,
                query_start=stop - 1,
                state=state,
            )
        )
        assert torch.equal(mins, fresh.mins) and torch.equal(maxs, fresh.maxs), (start, stop)

    call(0, 9)
    call(0, 10)  # extends: the last partial page is recomputed
    call(0, 17)
    states.truncate(6)  # a rollback into a page
    call(0, 13)
    call(3, 19)  # a sliding window dropped keys from the middle of the first page
    call(5, 26)
    entry = states.entry(0, masker)
    assert entry is not None and entry.value.mins.shape[2] == 26 // 4 - 5 // 4 + 1


def test_tiny_model_recall_of_the_oracle_top_k_beats_random_pages(tiny_model_dir):
    """Queries and keys of a real tiny model's attention on a real prompt (question tokens over
    a long context), not i.i.d. noise: Quest's pages hold more of the oracle top-k than the
    same number of random pages."""
    calls = question_calls(tiny_model_dir)
    page, budget, top = 16, 128, 32
    g = torch.Generator().manual_seed(0)
    quest_hits = random_hits = total = 0.0
    for inputs in calls:
        scores = inputs.exact_scores()  # (B, H, Q, K)
        oracle = oracle_top(scores, top)
        masker = create_masker(QuestConfig(budget, page))
        active = masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape)).to_dense() > 0
        n_k = scores.shape[-1]
        n_pages = -(-n_k // page)
        chosen = torch.rand((*scores.shape[:3], n_pages), generator=g).argsort(-1)[
            ..., : budget // page
        ]
        pages = torch.zeros((*scores.shape[:3], n_pages), dtype=torch.bool).scatter_(
            -1, chosen, True
        )
        rand = pages[..., torch.arange(n_k) // page] & (scores > float("-inf"))
        quest_hits += float((active & oracle).sum())
        random_hits += float((rand & oracle).sum())
        total += float(oracle.sum())
    quest_recall, random_recall = quest_hits / total, random_hits / total
    print(
        f"quest recall of the oracle top-{top}: {quest_recall:.3f}, random pages: {random_recall:.3f}"
    )
    # A random tiny model's attention is only mildly peaked: a clear, not a huge, margin.
    assert quest_recall > 1.5 * random_recall and quest_recall > random_recall + 0.08


def _rows_against_decode_steps(config: QuestConfig, inputs: AttentionInputs) -> list[int]:
    """The rows of a multi-token call whose attended keys differ from those of a decode step at
    the row's position (the row's query alone over the keys up to and including its own)."""
    masker = create_masker(config)
    active = masker.add_mask(inputs, Mask.create_empty(inputs.mask_shape)).to_dense() > 0
    allowed = inputs.allowed_keys()
    if allowed is not None:
        active = active & allowed  # (B, H, Q, K) what each row attends
    offset, differ = inputs.key_offset, []
    for row, position in enumerate(inputs.query_positions().tolist()):
        n_k = position + 1 - offset
        mask = None if allowed is None else allowed[..., row : row + 1, :n_k]
        step = AttentionInputs(
            inputs.queries[:, :, row : row + 1],
            inputs.keys[:, :, :n_k],
            inputs.values[:, :, :n_k],
            mask,
            layer_idx=inputs.layer_idx,
            query_start=position,
            key_start=offset,
        )
        one = masker.add_mask(step, Mask.create_empty(step.mask_shape)).to_dense() > 0
        if mask is not None:
            one = one & mask
        if not torch.equal(active[:, :, row, :n_k], one[:, :, 0]) or active[:, :, row, n_k:].any():
            differ.append(row)
    return differ


@pytest.fixture(scope="module")
def trained_question_calls() -> list[AttentionInputs]:
    return question_calls(trained_model_dir())


@pytest.mark.parametrize(
    "config",
    [
        QuestConfig(128, 16),
        QuestConfig(64, 8, label_bits=4),
        QuestConfig(96, 16, keep_last_page=True),
    ],
    ids=["pages-16", "pages-8-4-bits", "kernel-path"],
)
def test_every_question_row_chooses_the_pages_of_a_decode_step_at_its_position(
    trained_question_calls, config
):
    """The trained model's real question call (causal mask, several rows): a row's own page
    is summarised from the keys up to its position only, so no later key of the call changes
    its choice."""
    rows = total = 0
    for inputs in trained_question_calls:
        differ = _rows_against_decode_steps(config, inputs)
        rows += len(differ)
        total += inputs.queries.shape[2]
    assert total > 0 and rows == 0, f"{rows} of {total} question rows differ from decode steps"


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offset=st.integers(0, 20),
    n_context=st.integers(0, 30),
    n_rows=st.integers(2, 12),
    page=st.integers(1, 8),
    budget=st.integers(1, 40),
    bits=st.sampled_from([3, 16]),
    keep_last_page=st.booleans(),
    holes=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_question_rows_choose_the_pages_of_decode_steps(
    offset, n_context, n_rows, page, budget, bits, keep_last_page, holes, seed
):
    """Random queries and keys under a causal mask (with random holes on some calls), the
    call's keys starting at position ``offset`` (mid-page on some calls): every row selects
    what a decode step at its position selects, whatever the budget (dense rows included)."""
    n_k = n_context + n_rows
    q, k, v = qkv(4, 2, n_rows, n_k, d=6, seed=seed)
    rows = torch.arange(n_context, n_k).unsqueeze(-1)  # (Q, 1) key index of each row
    allowed = torch.arange(n_k) <= rows  # (Q, K) causal
    if holes:
        g = torch.Generator().manual_seed(seed)
        allowed = allowed & (torch.rand(n_rows, n_k, generator=g) > 0.3)
    inputs = AttentionInputs(
        q, k, v, allowed[None, None], layer_idx=0, query_start=offset + n_context, key_start=offset
    )
    config = QuestConfig(budget, page, label_bits=bits, keep_last_page=keep_last_page)
    assert _rows_against_decode_steps(config, inputs) == []
