"""The papers' central result on the shipped trained model, as a regression test.

The trained tiny llama finds synthetic RULER's needles at 1k tokens. Under sink + local +
oracle top-k (10 % of the keys) it still finds them; under StreamingLLM (sink + local) it
loses those in the middle of the context, which its window cannot see. The research path with
an empty masker list is dense attention, token for token. A change that breaks the attention
maths, the masks or the KV-cache rollback fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from sparse_attention_hub.adapters import ModelAdapterHF, Request
from sparse_attention_hub.benchmarks.scoring import match_all_sample
from sparse_attention_hub.benchmarks.synthetic_ruler.generate import generate_task
from sparse_attention_hub.sparse_attention import ResearchAttentionConfig
from sparse_attention_hub.testing import trained_model_dir

pytestmark = pytest.mark.slow

SINK, LOCAL = {"sink": {"sink_size": 4}}, {"local": {"window_size": 64}}
# 10 % of the keys keep every dense answer here (5 of 5; 19 of 20 needles over 20 depths, and
# 18 of 20 at 5 %): a margin over the 5 % target for a regression test.
ORACLE_TOP_K = {"maskers": [SINK, LOCAL, {"oracle_top_k": {"heavy_size": 0.10}}]}
STREAMING = {"maskers": [SINK, {"local": {"window_size": 0.3}}]}
MID = (0.25, 0.5, 0.75)  # needle depths StreamingLLM's window cannot reach


@pytest.fixture(scope="module")
def adapter() -> ModelAdapterHF:
    return ModelAdapterHF(trained_model_dir(), device="cpu")


@pytest.fixture(scope="module")
def rows(adapter: ModelAdapterHF) -> list[dict[str, Any]]:
    """5 niah_single rows at 1,024 tokens, needles at depths 0, 0.25, 0.5, 0.75 and 1."""
    return generate_task(adapter.tokenizer, "niah_single", 1024, seed=42, num_samples=5)


def _answer(adapter: ModelAdapterHF, config: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """(text, generated ids, score in [0, 1]) per row under ``config`` (None: dense)."""
    adapter.set_sparse_attention_config(config)
    out = []
    for row in rows:
        response = adapter.process_request(
            Request(row["context"], row["question"], row["answer_prefix"]),
            {"max_new_tokens": 12, "do_sample": False},
        )
        text = response.responses
        assert isinstance(text, str)
        ids = response.metadata[0]["generated_ids"]
        out.append((text, ids, match_all_sample(text, row["answer"])))
    return out


@pytest.fixture(scope="module")
def dense(adapter: ModelAdapterHF, rows: list[dict[str, Any]]) -> list[Any]:
    return _answer(adapter, None, rows)


def test_dense_finds_the_needles(dense: list[Any], rows: list[dict[str, Any]]) -> None:
    scores = [score for _, _, score in dense]
    assert sum(scores) >= 4, [
        (row["answer"], text) for row, (text, _, _) in zip(rows, dense, strict=True)
    ]


def test_oracle_top_k_keeps_the_dense_answers(
    adapter: ModelAdapterHF, rows: list[dict[str, Any]], dense: list[Any]
) -> None:
    top_k = _answer(adapter, ORACLE_TOP_K, rows)
    assert sum(s for _, _, s in top_k) >= sum(s for _, _, s in dense) - 1
    assert sum(a[0] == b[0] for a, b in zip(top_k, dense, strict=True)) >= 4


def test_streaming_loses_the_needles_in_the_middle(
    adapter: ModelAdapterHF, rows: list[dict[str, Any]], dense: list[Any]
) -> None:
    streaming = _answer(adapter, STREAMING, rows)
    top_k = _answer(adapter, ORACLE_TOP_K, rows)
    mid = [i for i, row in enumerate(rows) if row["depth"] in MID]
    assert len(mid) == 3
    assert sum(streaming[i][2] for i in mid) <= 1  # depth 0.75 can fall inside the window
    assert sum(top_k[i][2] for i in mid) > sum(streaming[i][2] for i in mid)


def test_research_path_with_no_maskers_is_dense(
    adapter: ModelAdapterHF, rows: list[dict[str, Any]], dense: list[Any]
) -> None:
    empty = _answer(adapter, ResearchAttentionConfig([]), rows)
    assert [ids for _, ids, _ in empty] == [ids for _, ids, _ in dense]
