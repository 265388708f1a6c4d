"""``SahLM``: the lm-eval model ``sah``, ModelAdapterHF with a sparse config (see ``scoring.py``).

Imported only when lm-eval runs (``register()`` in ``__init__``): it imports ``lm_eval``.
Tokenization follows lm-eval's ``hf`` model (the same ``add_bos_token`` / ``prefix_token_id``
handling, left truncation to ``max_length``, stop sequences and their post-processing), so with
no sparse config ``sah`` gives ``hf``'s answers: only the phasing differs (a dense prefill plus
an incremental pass instead of one forward over the whole prompt), which moves log-likelihoods
by float rounding only. Requests run one at a time (``batch_size`` is accepted and ignored).
"""

from __future__ import annotations

import logging
from itertools import count
from typing import Any

import torch
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import (
    handle_stop_sequences,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from sparse_attention_hub.adapters.generation import GenerationSettings
from sparse_attention_hub.adapters.huggingface import ModelAdapterHF
from sparse_attention_hub.lm_eval.options import SahOptions
from sparse_attention_hub.lm_eval.scoring import generate, score_continuation

logger = logging.getLogger(__name__)

LLRequest = tuple[tuple[str, str] | None, list[int], list[int]]
_SAMPLING_KWARGS = ("do_sample", "temperature", "top_p", "top_k")


class SahLM(TemplateLM):  # type: ignore[misc]
    """lm-eval's ``LM`` on :class:`ModelAdapterHF`; keyword arguments: see ``SahOptions``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.options = SahOptions.from_kwargs(kwargs)
        opts = self.options
        self.adapter = ModelAdapterHF(
            opts.pretrained,
            sparse_attention_config=opts.sparse_attention_config,
            model_kwargs=opts.model_kwargs(),
            tokenizer_kwargs=opts.tokenizer_kwargs(),
            device=opts.device,
        )
        self.tokenizer = self.adapter.tokenizer
        self._device = self.adapter.device
        self._requests = count()
        opts.configure_micro_metrics()

    # ------------------------------------------------------------------ lm-eval properties

    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        if self.options.prefix_token_id is not None:
            return self.options.prefix_token_id
        bos = self.tokenizer.bos_token_id
        return int(bos) if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self.options.max_length or _model_max_length(self.adapter.model, self.tokenizer)

    @property
    def max_gen_toks(self) -> int:
        return self.options.max_gen_toks

    @property
    def tokenizer_name(self) -> str:
        return str(self.tokenizer.name_or_path).replace("/", "__")

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                chat_history,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                continue_final_message=not add_generation_prompt,
            )
        )

    def get_model_info(self) -> dict[str, Any]:
        """Recorded in lm-eval's results under ``config``: the adapter and its sparse config."""
        return {"sah": self.adapter.describe()}

    # ------------------------------------------------------------------ tokenization

    def tok_encode(
        self,
        string: str,
        add_special_tokens: bool | None = None,
        left_truncate_len: int | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """As lm-eval's ``hf`` model: the tokenizer's default special tokens unless
        ``add_special_tokens`` or ``add_bos_token`` says otherwise; none when ``string``
        already starts with the prefix token."""
        special: dict[str, bool] = {}
        if add_special_tokens is not None:
            special["add_special_tokens"] = add_special_tokens
        elif self.options.add_bos_token is not None:
            special["add_special_tokens"] = self.options.add_bos_token
        if add_special_tokens is None and string.startswith(
            self.tokenizer.decode(self.prefix_token_id)
        ):
            special["add_special_tokens"] = False
        ids = list(self.tokenizer.encode(string, **special))
        return ids[-left_truncate_len:] if left_truncate_len else ids

    # ------------------------------------------------------------------ scoring

    def _loglikelihood_tokens(
        self, requests: list[LLRequest], disable_tqdm: bool = False, **kwargs: Any
    ) -> list[tuple[float, bool]]:
        """Each continuation scored on its context; the continuations of one context share
        one dense prefill (the adapter's questions on one context)."""
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        windows = [self._window(context, continuation) for _, context, continuation in requests]
        order = sorted(range(len(requests)), key=lambda i: windows[i][0][: -windows[i][1] - 1])
        context, held, request_index, question = None, None, 0, 0
        for i in tqdm(order, disable=disable_tqdm, desc="Running loglikelihood requests (sah)"):
            tokens, length = windows[i]
            prefix = tokens[: -length - 1]
            if context is None or prefix != held:
                context, held = self.adapter.new_context(), prefix
                request_index, question = next(self._requests), 0
            tags = {"request_index": request_index, "question_index": question}
            results[i] = score_continuation(self.adapter, context, tokens, length, tags)
            question += 1
            key = requests[i][0]
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, results[i])
        self.options.flush_micro_metrics()
        return [r for r in results if r is not None]

    def _window(self, context: list[int], continuation: list[int]) -> tuple[list[int], int]:
        """(the tokens fed, as ``hf`` left-truncates them to max_length + 1, the continuation
        length)."""
        if not context or not continuation or len(continuation) > self.max_length:
            raise ValueError(
                f"a loglikelihood request needs a context and a continuation of 1 to "
                f"{self.max_length} tokens, got {len(context)} and {len(continuation)}"
            )
        return (context + continuation)[-(self.max_length + 1) :], len(continuation)

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        """Each string's log-likelihood over disjoint windows of at most max_length tokens,
        as ``hf`` cuts them; each window runs under the sparse config from its first token
        (its only dense token is the prefix token or the previous window's last)."""
        totals = []
        for request in tqdm(requests, disable=disable_tqdm, desc="Rolling loglikelihood (sah)"):
            (string,) = request.args
            windows = map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                ),
            )
            scored = self._loglikelihood_tokens(
                [(None, ctx, cont) for ctx, cont in windows], disable_tqdm=True
            )
            totals.append(sum(logprob for logprob, _ in scored))
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), totals[-1])
        return totals

    # ------------------------------------------------------------------ generation

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled, with do_sample) generation until a stop sequence, EOS or
        max_gen_toks; the stop sequence is cut from the text, as ``hf`` does."""
        eos = self.tokenizer.decode(self.eot_token_id, skip_special_tokens=False)
        out = []
        for request in tqdm(requests, disable=disable_tqdm, desc="Running generate_until (sah)"):
            text, gen_kwargs = request.args
            kwargs = dict(normalize_gen_kwargs(gen_kwargs, self.max_gen_toks))
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            settings = self._settings(kwargs)
            max_ctx_len = self.max_length - settings.max_new_tokens
            if max_ctx_len <= 0:
                raise ValueError(
                    f"max_gen_toks={settings.max_new_tokens} must be below the model's "
                    f"max_length={self.max_length}"
                )
            prompt = self.tok_encode(text, left_truncate_len=max_ctx_len)
            tags = {"request_index": next(self._requests), "question_index": 0}
            ids = generate(self.adapter, prompt, settings, self._stop_check(until), tags)
            answer = postprocess_generated_text(
                self.tokenizer.decode(ids, skip_special_tokens=True), until, None
            )
            out.append(answer)
            self.cache_hook.add_partial("generate_until", (text, gen_kwargs), answer)
        self.options.flush_micro_metrics()
        return out

    def _settings(self, kwargs: dict[str, Any]) -> GenerationSettings:
        """GenerationSettings from lm-eval's normalised gen_kwargs (other keys: warned)."""
        max_new_tokens = int(kwargs.pop("max_gen_toks"))
        known = {k: kwargs.pop(k) for k in _SAMPLING_KWARGS if kwargs.get(k) is not None}
        if kwargs:
            logger.warning("sah: generation kwargs %s are not supported: ignored", sorted(kwargs))
        seed = None
        if known.get("do_sample") and known.get("temperature", 1.0) > 0:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())  # follows lm-eval's torch seed
        return GenerationSettings(max_new_tokens=max_new_tokens, seed=seed, **known)

    def _stop_check(self, until: list[str]) -> Any:
        stops = [s for s in until if s]

        def should_stop(generated: list[int]) -> bool:
            text = self.tokenizer.decode(generated, skip_special_tokens=False)
            return any(s in text for s in stops)

        return should_stop


def _model_max_length(model: Any, tokenizer: Any, default: int = 2048) -> int:
    """As lm-eval's ``resolve_max_length``: the text config's positions, the tokenizer's
    model_max_length, else ``default``."""
    config = getattr(model.config, "text_config", None) or model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit is not None and limit < 10**29 else default
