"""The trained tiny model's training data is synthetic_ruler's needle format, token for token."""

from __future__ import annotations

import random

import pytest

from sparse_attention_hub.benchmarks.synthetic_ruler import tasks
from sparse_attention_hub.testing.retrieval_data import (
    ADJECTIVES,
    NOISE,
    NOUNS,
    UnitSizer,
    needle_text,
    prompt_ids,
    target_ids,
)
from sparse_attention_hub.testing.tiny_model import _build_tokenizer


def test_word_lists_and_noise_are_the_benchmarks() -> None:
    assert (ADJECTIVES, NOUNS, NOISE) == (tasks._ADJECTIVES, tasks._NOUNS, tasks.NOISE)


@pytest.mark.parametrize(("seed", "depth", "units"), [(0, 0.0, 3), (7, 0.5, 10), (9, 1.0, 4)])
def test_single_needle_sample_is_the_benchmarks(seed: int, depth: float, units: int) -> None:
    ours = needle_text(random.Random(seed), 1, units, depth)
    theirs = tasks.task_builder("niah_single", 1024)(random.Random(seed), depth, units)
    assert (ours.context, ours.question, ours.answer_prefix) == (
        theirs.context,
        theirs.question,
        theirs.answer_prefix,
    )
    assert [ours.value] == theirs.answer


def test_multikey_sample_has_the_benchmarks_parts() -> None:
    ours = needle_text(random.Random(3), 4, 6, 0.5)
    theirs = tasks.task_builder("niah_multikey", 1024)(random.Random(3), 0.5, 6)
    assert ours.question == theirs.question and ours.answer_prefix == theirs.answer_prefix
    needles = sorted(s for s in ours.context.split(". ") if "magic numbers for" in s)
    assert needles == sorted(s for s in theirs.context.split(". ") if "magic numbers for" in s)


def test_prompt_is_the_chat_rendering_and_the_target_ends_the_turn() -> None:
    tokenizer = _build_tokenizer(1024)
    sample = needle_text(random.Random(1), 1, 2, 0.5)
    ids = prompt_ids(tokenizer, sample)
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    text = tokenizer.decode(ids)
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n" + sample.answer_prefix)
    target = target_ids(tokenizer, sample)
    assert target[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(target[:-1]) == f" {sample.value}."
    sizer = UnitSizer(tokenizer)
    assert (
        len(prompt_ids(tokenizer, needle_text(random.Random(2), 1, sizer.units(900), 0.3))) <= 900
    )


def test_a_few_training_steps_write_a_loadable_seeded_model(tmp_path) -> None:
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sparse_attention_hub.testing import tiny_model_fingerprint
    from sparse_attention_hub.testing.train_retrieval_model import (
        TrainConfig,
        train_retrieval_model,
    )

    phase = TrainConfig(
        stages=((160, 200, 3, 2),), warmup_steps=1, eval_lengths=(512,), eval_samples=1
    )
    first = train_retrieval_model(tmp_path / "a", (phase,), command="test")
    second = train_retrieval_model(tmp_path / "b", (phase,), command="test")
    record = json.loads((tmp_path / "a" / "training.json").read_text())
    assert record["steps"] == 3 and record["command"] == "test" and record["seed"] == 0
    assert set(record["exact_match"]) == {"512/niah_single", "512/niah_multikey"}
    model = AutoModelForCausalLM.from_pretrained(first)
    assert model.config.num_key_value_heads == 2 and AutoTokenizer.from_pretrained(first)
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("a", "b")]
    assert weights[0] == weights[1]  # seeded: the same weights twice
    assert tiny_model_fingerprint(second)


def test_train_config_rejects_bad_stages() -> None:
    from sparse_attention_hub.testing.train_retrieval_model import TrainConfig

    with pytest.raises(ValueError, match="stage"):
        TrainConfig(stages=((300, 200, 5, 2),))
    with pytest.raises(ValueError, match="num_key_value_heads"):
        TrainConfig(num_attention_heads=4, num_key_value_heads=3)
