"""Generate synthetic samples to a token length, and cache them on disk.

Each sample is sized with the tokenizer: the largest haystack whose prompt plus the task's
generation budget fits the requested length. The prompt is counted as the adapter encodes it:
``context + question + answer_prefix`` with the tokenizer's special tokens, or, when the
tokenizer has a chat template, rendered as one user turn (whichever is longer), so a row fits
its length with or without ``apply_chat_template``. Generated rows are
cached as JSON lines under ``$SAH_CACHE_DIR`` (default ``~/.cache/sparse_attention_hub``) in
``synthetic_ruler/<tokenizer fingerprint>/<task>_len<L>_seed<S>_n<N>_v<V>.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

from sparse_attention_hub.benchmarks.synthetic_ruler.tasks import (
    TASK_MAX_NEW_TOKENS,
    TASKS,
    Sample,
    task_builder,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2


def default_cache_dir() -> Path:
    """``$SAH_CACHE_DIR`` or ``~/.cache/sparse_attention_hub``."""
    root = os.environ.get("SAH_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "sparse_attention_hub"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short hash of the tokenizer's full definition (vocab, merges, normalizer, ...) and of
    its chat template (it counts towards the prompt length)."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    digest.update(str(getattr(tokenizer, "chat_template", None) or "").encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return digest.hexdigest()[:16]


def count_tokens(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _chat_prompt(tokenizer: Any, text: str) -> str | None:
    """``text`` as one user turn with the generation prompt, or None without a template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return rendered if isinstance(rendered, str) else None


def _prompt_tokens(tokenizer: Any, sample: Sample) -> int:
    """The sample's prompt length as the adapter encodes it (the longer of plain and chat)."""
    text = sample.context + sample.question
    plain = len(tokenizer(text + sample.answer_prefix, add_special_tokens=True)["input_ids"])
    chat = _chat_prompt(tokenizer, text)
    if chat is None:
        return plain
    return max(plain, count_tokens(tokenizer, chat + sample.answer_prefix))


def fit_sample(tokenizer: Any, task: str, length: int, seed: int, depth: float) -> Sample:
    """The sample of ``task`` with the largest haystack that fits ``length`` tokens."""
    build = task_builder(task, length)
    budget = length - TASK_MAX_NEW_TOKENS[task]

    def make(size: int) -> tuple[Sample, int]:
        sample = build(random.Random(seed), depth, size)
        return sample, _prompt_tokens(tokenizer, sample)

    best, used = make(0)
    if used > budget:
        raise ValueError(
            f"synthetic task {task!r} does not fit in {length} tokens (needs {used} + "
            f"{TASK_MAX_NEW_TOKENS[task]} to generate even with an empty haystack); use a longer subset"
        )
    per_unit = max(1.0, make(8)[1] - used) / 8
    low, high = 0, max(1, int((budget - used) / per_unit * 1.2) + 2)
    while make(high)[1] <= budget:  # grow until the upper bound no longer fits
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if make(middle)[1] <= budget:
            low = middle
        else:
            high = middle
    best, used = make(low)
    best.meta.update({"haystack_units": low, "prompt_tokens": used})
    return best


def generate_task(
    tokenizer: Any, task: str, length: int, seed: int, num_samples: int
) -> list[dict[str, Any]]:
    """``num_samples`` rows of ``task`` at ``length`` tokens, needle depths spread over [0, 1]."""
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; known: {', '.join(TASKS)}")
    rows = []
    for index in range(num_samples):
        depth = index / (num_samples - 1) if num_samples > 1 else 0.5
        sample_seed = int(
            hashlib.sha256(f"{seed}:{task}:{length}:{index}".encode()).hexdigest()[:8], 16
        )
        sample = fit_sample(tokenizer, task, length, sample_seed, depth)
        rows.append(
            {
                "context": sample.context,
                "question": sample.question,
                "answer_prefix": sample.answer_prefix,
                "max_new_tokens": TASK_MAX_NEW_TOKENS[task],
                "task": task,
                "answer": sample.answer,
                "length": length,
                "depth": round(depth, 4),
                "prompt_tokens": sample.meta.get("prompt_tokens"),
            }
        )
    return rows


def cache_path(
    cache_dir: Path, fingerprint: str, task: str, length: int, seed: int, num_samples: int
) -> Path:
    name = f"{task}_len{length}_seed{seed}_n{num_samples}_v{GENERATOR_VERSION}.jsonl"
    return cache_dir / "synthetic_ruler" / fingerprint / name


def _read_cache(path: Path, num_samples: int) -> list[dict[str, Any]] | None:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    except (OSError, ValueError):
        return None
    return rows if len(rows) == num_samples else None


def _write_cache(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write through a unique temp file and a rename: concurrent writers never tear it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_or_generate(
    tokenizer: Any,
    task: str,
    length: int,
    seed: int,
    num_samples: int,
    cache_dir: Path | None = None,
    fingerprint: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``task`` at ``length`` from the disk cache, generating (and caching) on a miss."""
    root = cache_dir if cache_dir is not None else default_cache_dir()
    path = cache_path(
        root, fingerprint or tokenizer_fingerprint(tokenizer), task, length, seed, num_samples
    )
    cached = _read_cache(path, num_samples) if path.exists() else None
    if cached is not None:
        logger.debug("synthetic_ruler cache hit: %s", path)
        return cached
    logger.info(
        "generating synthetic_ruler %s at %d tokens (%d samples)", task, length, num_samples
    )
    rows = generate_task(tokenizer, task, length, seed, num_samples)
    try:
        _write_cache(path, rows)
    except OSError as exc:  # a read-only cache must not stop a run
        logger.warning("could not write the synthetic_ruler cache %s: %s", path, exc)
    return rows
