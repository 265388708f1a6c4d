"""Training HashAttention on a real tiny model: the trained MLPs beat random MLPs of the same
size (and random selection) on top-k recall of the oracle, deterministically for a seed."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sparse_attention_hub.offline.hashattention_training import (
    HashAttentionTraining,
    capture_attention_inputs,
    default_text,
    eligible_keys,
    oracle_targets,
    train_hashattention,
    true_logits,
)
from sparse_attention_hub.sparse_attention import Mask
from sparse_attention_hub.sparse_attention.maskers import HashAttentionConfig, create_masker
from sparse_attention_hub.sparse_attention.maskers.hashattention_weights import (
    load_hat_weights,
    random_hat_weights,
    save_hat_weights,
)

SINK, LOCAL, TOP, HEAVY = 128, 128, 32, 64
SETTINGS = HashAttentionTraining(steps=30, seed=0, sequence_length=512, queries_per_step=64)
#: Four chunks of 512 tokens of the built-in text: captured once, then reused.
TEXTS = [default_text()[:4000]]
HELD_OUT = " ".join(f"Item {i}: key {i * 7 % 13} holds {i * 31 % 97}." for i in range(90))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's tensors are small: one thread is several times faster than two
    threads contending on a shared box (the training test stays within seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    result = train_hashattention(tiny_model_dir, TEXTS, settings=SETTINGS)
    return result


@pytest.fixture(scope="module")
def held_out_calls(tiny_model_dir):
    from sparse_attention_hub.adapters import ModelAdapterHF
    from sparse_attention_hub.sparse_attention import ResearchAttentionConfig

    adapter = ModelAdapterHF(tiny_model_dir, ResearchAttentionConfig([]), device="cpu")
    ids = adapter.tokenizer(HELD_OUT, add_special_tokens=False)["input_ids"][:768]
    assert len(ids) > 600
    return capture_attention_inputs(adapter, ids)


def recall(weights_path, calls, g=None):
    """Share of the oracle top-32 (beyond sink and local) among the HEAVY keys HashAttention
    adds to sink + local (or, with a generator ``g``, HEAVY random eligible keys)."""
    hits = total = 0.0
    for inputs in calls:
        eligible = eligible_keys(inputs, SINK, LOCAL).expand(inputs.mask_shape)  # (B, H, Q, K)
        rows = eligible.sum(-1)[0, 0] >= HEAVY
        oracle = oracle_targets(true_logits(inputs.queries, inputs.keys), eligible, TOP) > 0
        if g is None:
            masker = create_masker(HashAttentionConfig(HEAVY, str(weights_path)))
            previous = Mask.from_dense((~eligible).float())
            chosen = masker.add_mask(inputs, previous).to_dense() > 0
            chosen &= eligible
        else:
            noise = torch.rand(eligible.shape, generator=g).masked_fill(~eligible, -1.0)
            top = noise.topk(HEAVY, dim=-1).indices
            chosen = torch.zeros_like(eligible).scatter_(-1, top, True) & eligible
        hits += float((chosen & oracle)[..., rows, :].sum())
        total += float(oracle[..., rows, :].sum())
    return hits / total


def test_trained_mlps_beat_random_mlps_and_random_keys_on_recall(
    trained, held_out_calls, tmp_path, tiny_model_dir
):
    trained_file = save_hat_weights(trained.weights, tmp_path / "trained.safetensors")
    layer = trained.weights[0]
    untrained = random_hat_weights(
        len(trained.weights), layer.heads, layer.head_dim, hidden=SETTINGS.hidden, seed=123
    )
    random_file = save_hat_weights(untrained, tmp_path / "random.safetensors")
    trained_recall = recall(trained_file, held_out_calls)
    random_mlp_recall = recall(random_file, held_out_calls)
    random_keys = recall(None, held_out_calls, torch.Generator().manual_seed(0))
    print(
        f"hashattention recall of the oracle top-{TOP} with {HEAVY} keys: trained "
        f"{trained_recall:.3f}, random MLPs {random_mlp_recall:.3f}, random keys {random_keys:.3f}"
    )
    assert trained_recall > random_mlp_recall + 0.05
    assert trained_recall > 1.3 * random_keys


def test_the_loss_falls(trained):
    first, last = trained.losses[:5], trained.losses[-5:]
    assert len(trained.losses) == SETTINGS.steps
    assert sum(last) / 5 < 0.9 * sum(first) / 5


def test_training_is_deterministic_for_a_seed(tiny_model_dir):
    short = HashAttentionTraining(steps=2, sequence_length=512, queries_per_step=8)
    a = train_hashattention(tiny_model_dir, TEXTS, settings=short)
    b = train_hashattention(tiny_model_dir, TEXTS, settings=short)
    other_seed = HashAttentionTraining(steps=2, sequence_length=512, queries_per_step=8, seed=1)
    c = train_hashattention(tiny_model_dir, TEXTS, settings=other_seed)
    assert a.losses == b.losses
    for i in a.weights:
        assert torch.equal(a.weights[i].query[0][0], b.weights[i].query[0][0])
        assert torch.equal(a.weights[i].key[-1][1], b.weights[i].key[-1][1])
    assert not torch.equal(a.weights[0].query[0][0], c.weights[0].query[0][0])


def test_the_default_text_is_long_enough_for_the_official_chunks(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert len(tokenizer(default_text(), verbose=False)["input_ids"]) > 4 * 1024


def test_settings_are_validated():
    with pytest.raises(ValueError, match="sequence_length must exceed"):
        HashAttentionTraining(sequence_length=256)
    with pytest.raises(ValueError, match=r"HashAttentionTraining\.steps"):
        HashAttentionTraining(steps=0)


def test_sah_train_hashattention_writes_a_file_the_masker_loads(tiny_model_dir, tmp_path):
    out = tmp_path / "hat.safetensors"
    texts = tmp_path / "texts.txt"
    texts.write_text(HELD_OUT * 2, encoding="utf-8")
    cmd = [sys.executable, "-m", "sparse_attention_hub", "train", "hashattention"]
    args = [tiny_model_dir, "--out", str(out), "--steps", "2", "--sequence-length", "512"]
    done = subprocess.run(
        [*cmd, *args, "--texts", str(texts)], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    assert "wrote HashAttention weights for 2 layers" in done.stdout
    assert "loss" in done.stderr  # logged
    assert sorted(load_hat_weights(out)) == [0, 1]
    create_masker(HashAttentionConfig(0.05, str(out)))
    missing = subprocess.run(
        [*cmd, *args, "--texts", str(tmp_path / "nope.txt")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "nope.txt" in missing.stderr
