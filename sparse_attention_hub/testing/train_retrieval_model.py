"""Train the tiny llama that retrieves needles: the model behind the demo and the science test.

``train_retrieval_model(directory)`` trains a small Llama (GQA) with the package's tiny-model
tokenizer on synthetic_ruler's needle prompts (``niah_single`` and ``niah_multikey``: one or
four keys, needles at random depths in the noise haystack, the question at the end), with a
curriculum over prompt lengths, and writes a directory that ``from_pretrained`` loads, with
``training.json`` (the command, seed, configuration, cost and final accuracies). The loss is
the cross-entropy of the answer tokens (`` VALUE.`` and end of turn) only. Accuracy is exact
match of every answer token under teacher forcing, which equals greedy decoding's exact match.

Seeded: the same arguments give the same weights on the same CPU and thread count
(deterministic algorithms on). ``sah make-tiny-model DIR --trained`` runs it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sparse_attention_hub.testing.retrieval_data import (
    GENERATION_BUDGET,
    UnitSizer,
    needle_text,
    prompt_ids,
    target_ids,
)

logger = logging.getLogger(__name__)

#: One curriculum stage: (shortest prompt, longest prompt, steps, batch size).
Stage = tuple[int, int, int, int]

DEFAULT_STAGES: tuple[Stage, ...] = (
    (160, 320, 900, 8),
    (320, 1000, 250, 4),
    (1000, 2000, 100, 2),
)
#: The second phase: a fresh warm-up, then the short prompts again and longer ones.
SECOND_STAGES: tuple[Stage, ...] = (
    (160, 400, 400, 8),
    (400, 1000, 200, 4),
    (1000, 2000, 80, 2),
)


@dataclass(frozen=True)
class TrainConfig:
    """The model and the schedule; every field is recorded in ``training.json``.

    Attributes:
        seed: seeds the weights and the data.
        hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim,
        intermediate_size: the Llama's sizes (GQA when kv heads < heads).
        rope_theta: RoPE base; 10,000 keeps the slowest rotation's wavelength (~35k tokens at
            head_dim 32) far above the longest prompt, so relative offsets stay distinct.
        stages: the curriculum, (shortest, longest prompt in tokens, steps, batch size) each.
        lr, warmup_steps, weight_decay: AdamW with linear warm-up and cosine decay to 10 %.
        multikey_fraction: share of samples with 4 keys (3 distractor needles).
        log_every: steps between log lines.
        max_steps: stop after this many steps of the stages (the learning-rate schedule still
            spans all of them); None runs them all.
    """

    seed: int = 0
    hidden_size: int = 128
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 256
    rope_theta: float = 10000.0
    stages: tuple[Stage, ...] = DEFAULT_STAGES
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    multikey_fraction: float = 0.3
    log_every: int = 25
    max_steps: int | None = None
    threads: int = 1
    eval_lengths: tuple[int, ...] = (512, 1024, 2048)
    eval_samples: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"TrainConfig: num_attention_heads={self.num_attention_heads} is not a multiple "
                f"of num_key_value_heads={self.num_key_value_heads}"
            )
        if not self.stages:
            raise ValueError("TrainConfig: stages is empty; give at least one curriculum stage")
        for stage in self.stages:
            low, high, steps, batch = stage
            if not (0 < low <= high) or steps < 1 or batch < 1:
                raise ValueError(
                    f"TrainConfig: stage {stage!r} must be (low, high, steps, batch) with "
                    "0 < low <= high, steps >= 1 and batch >= 1"
                )
        if not 0.0 <= self.multikey_fraction <= 1.0:
            raise ValueError(
                f"TrainConfig: multikey_fraction={self.multikey_fraction!r} must be in [0, 1]"
            )
        if self.lr <= 0:
            raise ValueError(f"TrainConfig: lr={self.lr!r} must be > 0")

    @property
    def total_steps(self) -> int:
        return sum(stage[2] for stage in self.stages)


#: Prompt positions before the answer that are also trained (next-token loss): the question,
#: the template and the answer prefix, where the key is copied from the needle. This copying
#: signal forms the retrieval (induction) heads much sooner than the answer tokens alone.
QUESTION_WINDOW = 80


#: The third phase: more of the middle lengths, a little more of the longest.
THIRD_STAGES: tuple[Stage, ...] = (
    (200, 600, 300, 8),
    (600, 1400, 150, 4),
    (1400, 2000, 50, 2),
)
#: The fourth phase: 2,000 steps at the demo's lengths (800 to 2,200 tokens, batch 2), in ten
#: stages of 200 so that each leaves a checkpoint.
FOURTH_STAGES: tuple[Stage, ...] = ((800, 2200, 200, 2),) * 10
#: The shipped model's recipe: the first 900 steps of :data:`DEFAULT_STAGES` (whose
#: learning-rate schedule spans all 1,250), then :data:`SECOND_STAGES`, :data:`THIRD_STAGES`
#: and :data:`FOURTH_STAGES` (lower learning rate, 10 % multi-key samples), each from the
#: previous phase's weights.
DEFAULT_PHASES: tuple[TrainConfig, ...] = (
    TrainConfig(max_steps=900),
    TrainConfig(seed=1, stages=SECOND_STAGES, lr=1.5e-3, warmup_steps=50),
    TrainConfig(seed=2, stages=THIRD_STAGES, lr=1e-3, warmup_steps=30, eval_lengths=(1024, 2048)),
    TrainConfig(
        seed=3,
        stages=FOURTH_STAGES,
        lr=5e-4,
        warmup_steps=20,
        multikey_fraction=0.1,
        eval_lengths=(1024, 2048),
    ),
)


def make_batch(
    tokenizer: Any,
    sizer: UnitSizer,
    rng: random.Random,
    length: int,
    batch: int,
    multikey_fraction: float,
    depths: list[float] | None = None,
) -> tuple[Any, Any, Any]:
    """Token ids (B, T), targets (B, W + A) and the positions that predict them (B, W + A).

    The first ``W = QUESTION_WINDOW`` targets are the prompt's last tokens, the last ``A`` the
    answer (`` VALUE.`` and end of turn; -100 where a row's answer is shorter). Every sample
    has the same haystack size (a prompt of about ``length`` tokens); shorter rows are
    right-padded with the pad token (causal attention: padding never reaches the answer).
    """
    import torch

    units = sizer.units(length)
    rows, targets = [], []
    for i in range(batch):
        depth = depths[i] if depths is not None else rng.random()
        keys = 4 if rng.random() < multikey_fraction else 1
        sample = needle_text(rng, keys, units, depth)
        rows.append(prompt_ids(tokenizer, sample))
        targets.append(target_ids(tokenizer, sample))
    width = max(len(p) + len(t) for p, t in zip(rows, targets, strict=True))
    answer = max(len(t) for t in targets)
    span = QUESTION_WINDOW + answer
    ids = torch.full((batch, width), tokenizer.pad_token_id, dtype=torch.long)
    gold = torch.full((batch, span), -100, dtype=torch.long)
    where = torch.zeros((batch, span), dtype=torch.long)
    for b, (p, t) in enumerate(zip(rows, targets, strict=True)):
        ids[b, : len(p) + len(t)] = torch.tensor(p + t)
        start = len(p) - 1 - QUESTION_WINDOW
        where[b] = torch.arange(start, start + span).clamp(0, width - 1)
        gold[b, :QUESTION_WINDOW] = ids[b, start + 1 : len(p)]
        gold[b, QUESTION_WINDOW : QUESTION_WINDOW + len(t)] = torch.tensor(t)
    return ids, gold, where


def answer_logits(model: Any, ids: Any, where: Any) -> Any:
    """Logits (B, A, V) at the answer positions only (the LM head skips the haystack)."""
    import torch

    hidden = model.model(input_ids=ids).last_hidden_state  # (B, T, hidden)
    picked = torch.gather(hidden, 1, where.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
    return model.lm_head(picked)  # (B, A, V)


def exact_match(logits: Any, gold: Any) -> Any:
    """(B,) bool: every answer token is the argmax (teacher forcing = greedy exact match)."""
    logits, gold = logits[:, QUESTION_WINDOW:], gold[:, QUESTION_WINDOW:]  # the answer only
    ok = (logits.argmax(-1) == gold) | (gold == -100)
    return ok.all(dim=-1)


def _learning_rate(config: TrainConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.total_steps - config.warmup_steps)
    return config.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


def build_model(config: TrainConfig, tokenizer: Any) -> Any:
    """The untrained Llama with ``config``'s sizes and the tokenizer's special ids."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=0.02,
    )
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    model.generation_config.do_sample = False
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def evaluate(model: Any, tokenizer: Any, sizer: UnitSizer, config: TrainConfig) -> dict[str, float]:
    """Exact-match accuracy (%) per "<benchmark length>/<task>", depths spread over [0, 1]."""
    import torch

    model.eval()
    scores: dict[str, float] = {}
    n = config.eval_samples
    depths = [i / (n - 1) if n > 1 else 0.5 for i in range(n)]
    with torch.no_grad():
        for length in config.eval_lengths:
            for task, fraction in (("niah_single", 0.0), ("niah_multikey", 1.0)):
                rng = random.Random(f"eval:{config.seed}:{length}:{task}")
                prompt = length - GENERATION_BUDGET
                hits = 0
                for depth in depths:  # one at a time: the eval must not need much memory
                    ids, gold, where = make_batch(
                        tokenizer, sizer, rng, prompt, 1, fraction, [depth]
                    )
                    hits += int(exact_match(answer_logits(model, ids, where), gold).sum())
                scores[f"{length}/{task}"] = 100.0 * hits / n
    model.train()
    return scores


def _loss(logits: Any, gold: Any) -> Any:
    """Mean next-token loss of the question window plus that of the answer."""
    import torch.nn.functional as F

    w = QUESTION_WINDOW
    question = F.cross_entropy(logits[:, :w].flatten(0, 1), gold[:, :w].flatten())
    answer = F.cross_entropy(logits[:, w:].flatten(0, 1), gold[:, w:].flatten())
    return question + answer


def _schedule(config: TrainConfig, rng: random.Random) -> list[tuple[int, int]]:
    """(prompt length, batch size) of every step, in order."""
    steps: list[tuple[int, int]] = []
    for low, high, count, batch in config.stages:
        steps.extend((rng.randint(low, high), batch) for _ in range(count))
    return steps[: config.max_steps] if config.max_steps is not None else steps


def _train_loop(
    model: Any,
    tokenizer: Any,
    sizer: UnitSizer,
    config: TrainConfig,
    checkpoint: Path | None,
    phase: int = 0,
) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    rng = random.Random(config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.98)
    )
    schedule = _schedule(config, rng)
    stage_ends = [sum(s[2] for s in config.stages[: i + 1]) for i in range(len(config.stages))]
    losses: list[float] = []
    hits: list[float] = []
    bar = tqdm(schedule, desc="training", unit="step", file=sys.stderr)
    for step, (length, batch) in enumerate(bar):
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        ids, gold, where = make_batch(
            tokenizer, sizer, rng, length, batch, config.multikey_fraction
        )
        logits = answer_logits(model, ids, where)
        loss = _loss(logits, gold)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
        hits.append(float(exact_match(logits.detach(), gold).float().mean()))
        window = config.log_every
        bar.set_postfix(
            len=length,
            loss=f"{sum(losses[-window:]) / len(losses[-window:]):.3f}",
            acc=f"{100 * sum(hits[-window:]) / len(hits[-window:]):.0f}%",
        )
        if (step + 1) % window == 0 or step + 1 == len(schedule):
            logger.info(
                "step %d/%d len %d loss %.4f acc %.1f%%",
                step + 1,
                len(schedule),
                length,
                sum(losses[-window:]) / len(losses[-window:]),
                100 * sum(hits[-window:]) / len(hits[-window:]),
            )
        if checkpoint is not None and (step + 1) in stage_ends:
            model.save_pretrained(checkpoint / f"phase{phase}_stage{stage_ends.index(step + 1)}")
    return {"final_loss": sum(losses[-50:]) / len(losses[-50:]), "steps": len(schedule)}


def train_retrieval_model(
    directory: str | os.PathLike[str],
    phases: tuple[TrainConfig, ...] | None = None,
    command: str | None = None,
    initial_weights: str | os.PathLike[str] | None = None,
) -> str:
    """Train the needle-retrieval Llama and write it to ``directory``; return the directory.

    ``phases`` (default :data:`DEFAULT_PHASES`) run one after the other on the same model,
    each with a fresh AdamW and its own schedule; the first one's seed initialises the
    weights unless ``initial_weights`` (a directory written by a previous phase) gives them.
    The directory holds the safetensors weights, the config, the tokenizer (the tiny models'
    byte-level BPE) and ``training.json``: ``command`` (default: this process's argv), the
    phases, the wall time, the steps and the exact-match accuracies at the last phase's
    ``eval_lengths`` (prompts sized as synthetic_ruler sizes them).
    """
    import torch

    from sparse_attention_hub.testing.tiny_model import DEFAULT_SIZES, _build_tokenizer

    phases = phases or DEFAULT_PHASES
    out = Path(directory).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(phases[0].threads)
    tokenizer = _build_tokenizer(DEFAULT_SIZES["vocab_size"])
    sizer = UnitSizer(tokenizer)
    model = build_model(phases[0], tokenizer)
    if initial_weights is not None:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(Path(initial_weights) / "model.safetensors")))
    started = time.perf_counter()
    summaries = [
        _train_loop(model, tokenizer, sizer, config, out / "checkpoints", phase)
        for phase, config in enumerate(phases)
    ]
    seconds = time.perf_counter() - started
    accuracies = evaluate(model, tokenizer, sizer, phases[-1])
    logger.info("trained in %.0f s; exact match: %s", seconds, accuracies)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {
        "command": command or " ".join(["sah", "make-tiny-model", *sys.argv[2:]]),
        "seed": phases[0].seed,
        "phases": [asdict(config) for config in phases],
        "initial_weights": str(initial_weights) if initial_weights is not None else None,
        "train_seconds": round(seconds, 1),
        "steps": sum(summary["steps"] for summary in summaries),
        "final_loss": summaries[-1]["final_loss"],
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "exact_match": accuracies,
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    return str(out)
