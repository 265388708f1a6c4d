"""Tiny random-weight causal LMs with a real, locally built tokenizer.

``make_tiny_model(path)`` writes a directory that ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load offline. The model is small enough to run long prompts on a
CPU in tests, yet it is a genuine Llama / Qwen2 / Mistral model, so every code path of the adapter
(attention interface, masks, KV cache, GQA) is exercised for real.

The tokenizer is a byte-level BPE trained on a small corpus embedded below, so ANY text encodes
(unknown characters fall back to their UTF-8 bytes). It has ``<|begin_of_text|>`` (BOS, prepended
by the tokenizer like Llama's), ``<|eot_id|>`` (EOS), ``<|pad|>`` and a Llama-3-like chat
template. Output is deterministic for a seed: the same arguments give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ARCHS = ("llama", "qwen2", "qwen3", "mistral", "gemma2", "gpt_oss", "phi3")

#: Default sizes: fast on a CPU, long enough for 8k-token contexts.
DEFAULT_SIZES: dict[str, int] = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "head_dim": 16,
    "intermediate_size": 128,
    "max_position_embeddings": 16384,
    "vocab_size": 1024,  # an upper bound: the trained BPE may stop a little short of it
}

#: Std of the random weights. Large enough that the random model's attention and next-token
#: choices are peaked (as a trained model's are), so a sparse config that keeps the heavy keys
#: also keeps the dense answers while one that drops them does not; at 0.1 logits are so flat
#: that any change to attention flips every answer.
INITIALIZER_RANGE = 0.35

BOS, EOS, PAD, EOT_TEXT = "<|begin_of_text|>", "<|eot_id|>", "<|pad|>", "<|end_of_text|>"
HEADER_START, HEADER_END = "<|start_header_id|>", "<|end_header_id|>"
SPECIAL_TOKENS = [BOS, EOT_TEXT, EOS, PAD, HEADER_START, HEADER_END]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{ message['content'] | trim }}{{ '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

#: Bumped whenever the files written for the same arguments change.
_FORMAT_VERSION = 2
_SPEC_FILE = "sah_tiny_model.json"

_CORPUS = """
The quick brown fox jumps over the lazy dog. A long context is a document of many thousand
tokens; a question asks about one detail hidden somewhere inside it. What is the magic number?
The magic number is 4217. Answer the question based on the context below. Question: Where did
the meeting take place? Answer: The meeting took place in the library on Tuesday afternoon.
Sparse attention keeps only a few keys for every query: the sink tokens at the start, a local
window of recent tokens, and the top-k keys with the largest scores. Researchers compare methods
such as StreamingLLM, oracle top-k, Quest, MagicPig and HashAttention on long-context benchmarks.
The model reads the passage, then the question, then writes its answer one token at a time.
Once upon a time there was a small village by the river. The people of the village grew wheat,
apples and grapes, and every autumn they held a festival with music and dancing. The children
played in the fields while their parents worked. In the evening everyone gathered around the
fire to tell stories about the mountains, the sea and the stars.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 25 30 42 50 64 100 128 256 512
1000 1024 2048 4096 8192 2024 2025 2026. Dates: January February March April May June July
August September October November December. Monday Tuesday Wednesday Thursday Friday Saturday
Sunday. Punctuation: , . ; : ! ? ' " ( ) [ ] { } < > / \\ | - _ + = * & ^ % $ # @ ~ `.
def main():\n    return {"key": "value", "items": [1, 2, 3]}\nimport torch\nx = torch.zeros(4, 8)
Special keys: uuid 3f2a-9b1c, name Alice, Bob, Carol, Dave. The capital of France is Paris.
The capital of Germany is Berlin. Water boils at one hundred degrees Celsius at sea level.
Summarize the following text in one sentence. Translate the passage into French. Count the
words. Which of the following statements is true? Read the code and find the bug. The value of
the variable is stored in the cache, and the cache is reused for every question on the context.
"""


def _build_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on the embedded corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    tok.train_from_iterator(lines * 4, trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0",
        pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1",
        special_tokens=[(BOS, bos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=DEFAULT_SIZES["max_position_embeddings"],
        clean_up_tokenization_spaces=False,
    )


def _build_config(
    arch: str, sizes: dict[str, int], tokenizer: Any, sliding_window: int | None = None
) -> Any:
    """The transformers config for ``arch`` with ``sizes`` and the tokenizer's special ids.

    ``sliding_window``: Mistral and Phi-3 get it on every layer; Qwen2/Qwen3 on every layer
    but the first (``max_window_layers=1``); Gemma-2 and GPT-OSS on every other layer (their
    own alternating layout; None keeps their default window). Gemma-2 also soft-caps its
    attention logits (``attn_logit_softcapping``), GPT-OSS adds per-head sink logits and a
    small mixture of experts.
    """
    from transformers import AutoConfig

    extra: dict[str, Any] = _ARCH_EXTRAS.get(arch, {}).copy()
    if arch == "gemma2":
        extra["query_pre_attn_scalar"] = sizes["head_dim"]
    if arch == "phi3":
        sizes = {k: v for k, v in sizes.items() if k != "head_dim"}
    if arch in ("qwen2", "qwen3", "mistral", "phi3") or sliding_window is not None:
        extra["sliding_window"] = sliding_window
    if arch in ("qwen2", "qwen3"):
        extra["use_sliding_window"] = sliding_window is not None
        if sliding_window is not None:
            extra["max_window_layers"] = 1
    return AutoConfig.for_model(
        arch,
        **sizes,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        initializer_range=INITIALIZER_RANGE,
        rope_theta=10000.0,
        **extra,
    )


#: Architecture settings beyond the sizes.
_ARCH_EXTRAS: dict[str, dict[str, Any]] = {
    "gemma2": {"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
    "gpt_oss": {
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
    },
}


def _resolve_sizes(arch: str, sizes: dict[str, int]) -> dict[str, int]:
    if arch not in ARCHS:
        raise ValueError(f"make_tiny_model: arch={arch!r} is not one of {list(ARCHS)}")
    unknown = sorted(set(sizes) - set(DEFAULT_SIZES))
    if unknown:
        raise ValueError(
            f"make_tiny_model: unknown size argument(s) {unknown}; allowed: {sorted(DEFAULT_SIZES)}"
        )
    resolved = {**DEFAULT_SIZES, **sizes}
    for name, value in resolved.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"make_tiny_model: {name}={value!r} must be a positive int")
    if resolved["num_attention_heads"] % resolved["num_key_value_heads"]:
        raise ValueError(
            "make_tiny_model: num_attention_heads="
            f"{resolved['num_attention_heads']} is not a multiple of "
            f"num_key_value_heads={resolved['num_key_value_heads']}"
        )
    if resolved["vocab_size"] < 300:
        raise ValueError(
            f"make_tiny_model: vocab_size={resolved['vocab_size']} must be >= 300 "
            "(256 byte tokens + specials + merges)"
        )
    return resolved


def _check_sliding_window(arch: str, sliding_window: int | None) -> None:
    if sliding_window is None:
        return
    if arch == "llama":
        raise ValueError(
            "make_tiny_model: sliding_window needs an arch with sliding layers, not 'llama'"
        )
    if (
        not isinstance(sliding_window, int)
        or isinstance(sliding_window, bool)
        or sliding_window < 2
    ):
        raise ValueError(f"make_tiny_model: sliding_window={sliding_window!r} must be an int >= 2")


def _spec(
    arch: str, seed: int, sizes: dict[str, int], sliding_window: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"format": _FORMAT_VERSION, "arch": arch, "seed": seed, "sizes": sizes}
    if sliding_window is not None:  # absent otherwise: older directories stay valid
        spec["sliding_window"] = sliding_window
    return spec


def _already_there(directory: Path, spec: dict[str, Any]) -> bool:
    spec_path = directory / _SPEC_FILE
    if not spec_path.is_file() or not (directory / "config.json").is_file():
        return False
    try:
        return bool(json.loads(spec_path.read_text()) == spec)
    except (OSError, ValueError):
        return False


def _write_model(
    directory: Path, arch: str, seed: int, sizes: dict[str, int], sliding_window: int | None
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = _build_tokenizer(sizes["vocab_size"])
    model_sizes = {k: v for k, v in sizes.items() if k != "vocab_size"}
    config = _build_config(arch, model_sizes, tokenizer, sliding_window)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.do_sample = False
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(directory)
    finally:
        if bars_were_on:
            hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(directory)


def make_tiny_model(
    path: str | os.PathLike[str],
    arch: str = "llama",
    seed: int = 0,
    sliding_window: int | None = None,
    **sizes: int,
) -> str:
    """Write a tiny random ``arch`` model and its tokenizer to ``path``; return the directory.

    Args:
        path: the directory to write (created if needed).
        arch: one of :data:`ARCHS`: "llama", "qwen2", "qwen3", "mistral", "gemma2" (soft-capped
            logits, alternating sliding layers), "gpt_oss" (sink logits, sliding layers, MoE)
            or "phi3" (phi3 derives head_dim from the sizes).
        seed: the seed of the random weights; the same arguments give the same files.
        sliding_window: None (full attention everywhere; Gemma-2 / GPT-OSS keep their default
            window), or a window in tokens: every layer of a Mistral / Phi-3, every layer but
            the first of a Qwen2/Qwen3, every other layer of Gemma-2 / GPT-OSS (not Llama).
        **sizes: overrides of :data:`DEFAULT_SIZES` (e.g. ``num_key_value_heads=2`` for GQA).

    If ``path`` already holds the model for the same arguments, nothing is rewritten. The files
    are built in a temporary sibling directory and moved in, so concurrent callers never see a
    half-written model.
    """
    if not str(path).strip():  # Path("") is the working directory
        raise ValueError(f"path {str(path)!r} is empty: give the directory to write the model to")
    resolved = _resolve_sizes(arch, sizes)
    _check_sliding_window(arch, sliding_window)
    directory = Path(path).expanduser().resolve()
    spec = _spec(arch, int(seed), resolved, sliding_window)
    if _already_there(directory, spec):
        logger.debug("tiny model already present at %s", directory)
        return str(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=directory.parent))
    try:
        _write_model(tmp, arch, int(seed), resolved, sliding_window)
        (tmp / _SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
        directory.mkdir(exist_ok=True)
        # The spec file goes in last: its presence marks a complete model.
        (directory / _SPEC_FILE).unlink(missing_ok=True)
        for item in sorted(tmp.iterdir(), key=lambda p: p.name == _SPEC_FILE):
            os.replace(item, directory / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("wrote a tiny %s model (seed %d) to %s", arch, seed, directory)
    return str(directory)


def tiny_model_fingerprint(path: str | os.PathLike[str]) -> str:
    """A short hash of every file in a tiny-model directory (for determinism checks)."""
    digest = hashlib.sha256()
    for item in sorted(Path(path).iterdir()):
        if item.is_file():
            digest.update(item.name.encode())
            digest.update(item.read_bytes())
    return digest.hexdigest()[:16]
