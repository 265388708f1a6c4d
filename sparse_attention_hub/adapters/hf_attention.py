"""Sparse attention inside a HuggingFace model, through transformers' attention interface.

A :class:`SparseAttentionSwitch` registers ONE attention function (and the mask function that
builds the masks it accepts) under a name unique to it, e.g. ``"sah_research_3"``, in
transformers' ``AttentionInterface`` / ``AttentionMaskInterface``. Nothing registers at import
time: registration happens when a switch is created (one per adapter), and the names are
removed again when the switch is garbage collected.

:meth:`SparseAttentionSwitch.enable` is a context manager that points every attention layer of
the model at that name (``model.set_attn_implementation``) and restores the previous
implementation on exit, also after an exception. The model's forward is never patched and no
state is stored on HF modules: the research attention (which owns the masker states of the
current request) and the position of the next forward live in the switch, which the
registered function reaches through a weak reference.

The mask function materialises the boolean causal mask (True = may attend), shape
``(B, 1, Q, K)``; for a single question token after a context of 3 tokens (Q=2, K=5)::

    q3 ■ ■ ■ ■ ⬚
    q4 ■ ■ ■ ■ ■
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

logger = logging.getLogger(__name__)

_NAME_COUNTER = itertools.count()


def _materialised_sdpa_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """``sdpa_mask`` that always builds the boolean ``(B, 1, Q, K)`` mask (never skips it)."""
    from transformers.masking_utils import sdpa_mask

    kwargs["allow_is_causal_skip"] = False
    kwargs.pop("dtype", None)
    kwargs.pop("config", None)
    return sdpa_mask(*args, **kwargs)


def _unregister(name: str) -> None:
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface._global_mapping.pop(name, None)
    AttentionMaskInterface._global_mapping.pop(name, None)


class SparseAttentionSwitch:
    """Owns one registered attention function and switches a model to it and back.

    Attributes:
        name: the attention-implementation name registered for this switch.
        research_attention: the object whose ``custom_attention`` runs in sparse mode (None:
            the registered function falls back to transformers' sdpa).
        query_start: absolute position of the first token of the next forward (the tokens
            already in the KV cache), set by the adapter; passed on so that maskers know the
            key positions without reading ``position_ids`` from the device.
        calls: number of attention calls routed through the research attention so far.
    """

    def __init__(self, model: Any, research_attention: Any = None) -> None:
        from transformers.masking_utils import AttentionMaskInterface
        from transformers.modeling_utils import AttentionInterface

        self.model = model
        self.research_attention = research_attention
        self.query_start: int | None = None
        self.calls = 0
        self.name = f"sah_research_{next(_NAME_COUNTER)}"
        AttentionInterface.register(self.name, _make_attention_function(weakref.ref(self)))
        AttentionMaskInterface.register(self.name, _materialised_sdpa_mask)
        self._finalizer = weakref.finalize(self, _unregister, self.name)

    def close(self) -> None:
        """Remove the registered names (also done automatically when the switch is collected)."""
        self._finalizer()

    def new_request(self) -> Any:
        """Start a request (a new KV cache): fresh masker states, returned (None when dense)."""
        if self.research_attention is None:
            return None
        return self.research_attention.new_request()

    @property
    def is_active(self) -> bool:
        """Whether the model currently runs this switch's attention function."""
        return bool(getattr(self.model.config, "_attn_implementation", None) == self.name)

    @contextmanager
    def enable(self) -> Iterator[None]:
        """Run every attention layer through the research attention inside the ``with`` block.

        The previous implementation (e.g. "sdpa") is restored on exit, also after an exception.
        """
        previous = self.model.config._attn_implementation
        if previous == self.name:
            yield
            return
        self.model.set_attn_implementation(self.name)
        try:
            yield
        finally:
            self.model.set_attn_implementation(previous)

    def attention(
        self, module: torch.nn.Module | None, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The HF attention-interface function of this switch: ``(module, query (B, H, Q, D),
        key, value (B, Hkv, K, D), attention_mask (B, 1, Q, K) bool, scaling, dropout,
        **kwargs) -> (output (B, Q, H, D), weights or None)``.

        Routed to the research attention's ``custom_attention`` (with ``query_start``), or to
        transformers' sdpa when the switch has no research attention.
        """
        if self.research_attention is None:
            from transformers.integrations.sdpa_attention import sdpa_attention_forward

            return sdpa_attention_forward(module, *args, **kwargs)  # type: ignore[arg-type,no-any-return]
        self.calls += 1
        kwargs.setdefault("query_start", self.query_start)
        return self.research_attention.custom_attention(  # type: ignore[no-any-return]
            module, *args, **kwargs
        )


def _make_attention_function(switch_ref: weakref.ref[SparseAttentionSwitch]) -> Callable[..., Any]:
    """The function registered in the AttentionInterface: forwards to the live switch."""

    def sah_research_attention(*args: Any, **kwargs: Any) -> Any:
        switch = switch_ref()
        if switch is None:
            raise RuntimeError(
                "this sparse-attention implementation belongs to an adapter that no longer exists"
            )
        return switch.attention(*args, **kwargs)

    return sah_research_attention
