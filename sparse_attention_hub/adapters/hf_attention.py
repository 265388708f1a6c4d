"""Sparse attention inside a HuggingFace model, through transformers' attention interface.

ONE attention function (and the mask function that builds the masks it accepts) is registered,
once per process and through the public ``AttentionInterface.register`` /
``AttentionMaskInterface.register`` only, under :data:`ATTENTION_NAME`. Nothing registers at
import time (the first :class:`SparseAttentionSwitch` does it) and nothing is unregistered.

That function dispatches to the switch whose sparse mode is active in the current context (a
:class:`contextvars.ContextVar`), so any number of adapters share the name without interfering.
:meth:`SparseAttentionSwitch.enable` is a context manager that makes its switch the active one
and points every attention layer of the model at the name (``model.set_attn_implementation``);
on exit, also after an exception, it restores the previous implementation (of the model and of
every sub-config) and the previously active switch. The model's forward is never patched and no
state is stored on HF modules.

The mask function materialises the boolean causal mask (True = may attend), shape
``(B, 1, Q, K)``; for a single question token after a context of 3 tokens (Q=2, K=5)::

    q3 ■ ■ ■ ■ ⬚
    q4 ■ ■ ■ ■ ■
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

logger = logging.getLogger(__name__)

#: The attention-implementation name of the research attention, the same for every adapter.
ATTENTION_NAME = "sah_research"
#: The name under which the context prefill is observed (:meth:`SparseAttentionSwitch.observe`):
#: the previous implementation's own mask and attention run, unchanged.
OBSERVE_NAME = "sah_observe"
#: The name under which the context prefill runs sparse (:meth:`SparseAttentionSwitch.prefill`):
#: the research attention's ``prefill_attention`` (FlexAttention), with no (Q, K) mask built.
PREFILL_NAME = "sah_prefill"

_ACTIVE: contextvars.ContextVar[SparseAttentionSwitch | None] = contextvars.ContextVar(
    "sah_active_attention_switch", default=None
)
_REGISTER_LOCK = threading.Lock()
_registered = False


def _materialised_sdpa_mask(*args: Any, **kwargs: Any) -> torch.Tensor | None:
    """``sdpa_mask`` that always builds the boolean ``(B, 1, Q, K)`` mask (never skips it)."""
    from transformers.masking_utils import sdpa_mask

    kwargs["allow_is_causal_skip"] = False
    kwargs.pop("dtype", None)
    kwargs.pop("config", None)
    return sdpa_mask(*args, **kwargs)


def _register_once() -> None:
    """Register :data:`ATTENTION_NAME` in transformers' interfaces (public API, idempotent)."""
    global _registered
    with _REGISTER_LOCK:
        if _registered:
            return
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface

        AttentionInterface.register(ATTENTION_NAME, _dispatch_attention)
        AttentionMaskInterface.register(ATTENTION_NAME, _materialised_sdpa_mask)
        AttentionInterface.register(OBSERVE_NAME, _dispatch_observe)
        AttentionMaskInterface.register(OBSERVE_NAME, _previous_mask)
        AttentionInterface.register(PREFILL_NAME, _dispatch_prefill)
        AttentionMaskInterface.register(PREFILL_NAME, _no_mask)
        _registered = True


def _dispatch_attention(module: Any, *args: Any, **kwargs: Any) -> Any:
    """The registered function: runs the attention of the switch active in this context."""
    switch = _ACTIVE.get()
    if switch is None:
        owner = type(module).__name__ if module is not None else "a model"
        raise RuntimeError(
            f"{owner} runs the attention implementation {ATTENTION_NAME!r} outside an active "
            "SparseAttentionSwitch.enable() block (use the adapter's enable_sparse_mode())"
        )
    return switch.attention(module, *args, **kwargs)


def _active_switch(module: Any, name: str) -> SparseAttentionSwitch:
    switch = _ACTIVE.get()
    if switch is None:
        owner = type(module).__name__ if module is not None else "a model"
        raise RuntimeError(
            f"{owner} runs the attention implementation {name!r} outside an active "
            "SparseAttentionSwitch block (use the adapter's enable_sparse_mode())"
        )
    return switch


def _dispatch_observe(module: Any, *args: Any, **kwargs: Any) -> Any:
    """The observing function: the research attention sees the call, the previous runs it."""
    return _active_switch(module, OBSERVE_NAME).observe_attention(module, *args, **kwargs)


def _dispatch_prefill(module: Any, *args: Any, **kwargs: Any) -> Any:
    """The sparse-prefill function: the research attention's ``prefill_attention``."""
    return _active_switch(module, PREFILL_NAME).prefill_attention(module, *args, **kwargs)


def _no_mask(*args: Any, **kwargs: Any) -> None:
    """The sparse prefill builds no (Q, K) mask: causality and windows come from positions.
    A padded batch (a 2-D ``attention_mask`` with a zero) is refused here, once per forward:
    the prefill would attend its padding keys."""
    padding = kwargs.get("attention_mask")
    if isinstance(padding, torch.Tensor) and padding.dim() == 2 and not bool(padding.all()):
        raise ValueError(
            f"the sparse prefill ({PREFILL_NAME!r}) attends every earlier key of a row, but "
            f"this batch is padded (its attention_mask of shape {tuple(padding.shape)} has "
            "zeros); prefill one row at a time (batch 1, as the model adapter does) or rows "
            "of one length without padding"
        )
    return None


def _previous_mask(*args: Any, **kwargs: Any) -> Any:
    """The mask function of the active switch's previous implementation (unchanged masks)."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    previous = _active_switch(None, OBSERVE_NAME)._previous
    if previous not in ALL_MASK_ATTENTION_FUNCTIONS:
        return None
    return ALL_MASK_ATTENTION_FUNCTIONS[previous](*args, **kwargs)


class SparseAttentionSwitch:
    """Switches a model to the research attention (:data:`ATTENTION_NAME`) and back.

    Attributes:
        name: the attention-implementation name (:data:`ATTENTION_NAME`, shared).
        research_attention: the object whose ``custom_attention`` runs in sparse mode (None:
            the model's previous implementation runs, with every argument).
        query_start: absolute position of the first token of the next forward (the tokens
            already in the KV cache), set by the adapter; passed on so that maskers know the
            key positions without reading ``position_ids`` from the device.
        calls: number of attention calls routed through the research attention so far.
    """

    def __init__(self, model: Any, research_attention: Any = None) -> None:
        _register_once()
        self.model = model
        self.research_attention = research_attention
        self.query_start: int | None = None
        self.calls = 0
        self.name = ATTENTION_NAME
        self._previous = "sdpa"

    def new_request(self) -> Any:
        """Start a request (a new KV cache): fresh masker states, returned (None when dense)."""
        if self.research_attention is None:
            return None
        return self.research_attention.new_request()

    @property
    def is_active(self) -> bool:
        """Whether the model currently runs this switch's attention function."""
        return _ACTIVE.get() is self and bool(
            getattr(self.model.config, "_attn_implementation", None) == self.name
        )

    @contextmanager
    def enable(self) -> Iterator[None]:
        """Run every attention layer through the research attention inside the ``with`` block.

        The previous implementation (e.g. "sdpa", of the model and of each sub-config) and the
        previously active switch are restored on exit, also after an exception.
        """
        with self._switched(self.name):
            yield

    @contextmanager
    def observe(self) -> Iterator[None]:
        """Inside the ``with`` block every attention call is handed to the research
        attention's ``observe_prefill`` and then computed by the previous implementation,
        with its own mask and every argument, unchanged (the context prefill of an eviction
        masker). Restored on exit like :meth:`enable`."""
        with self._switched(OBSERVE_NAME):
            yield

    @contextmanager
    def prefill(self) -> Iterator[None]:
        """Inside the ``with`` block every attention call runs the research attention's
        sparse prefill (``prefill_attention``: observing maskers observe first, then
        FlexAttention on the prefill maskers' blocks). Restored on exit like :meth:`enable`."""
        with self._switched(PREFILL_NAME):
            yield

    @contextmanager
    def _switched(self, name: str) -> Iterator[None]:
        token = _ACTIVE.set(self)
        try:
            previous = self.model.config._attn_implementation
            if previous in (ATTENTION_NAME, OBSERVE_NAME, PREFILL_NAME):
                yield
                return
            # A single name would overwrite every sub-config: restore the whole tree instead.
            saved = _implementation_tree(self.model.config)
            self._previous = previous
            self.model.set_attn_implementation(name)
            try:
                yield
            finally:
                self.model.set_attn_implementation(saved)
        finally:
            _ACTIVE.reset(token)

    def observe_attention(
        self, module: torch.nn.Module | None, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The function of :meth:`observe`: the research attention observes the call, then
        the previous implementation computes it with the same arguments."""
        from transformers import AttentionInterface

        interface = AttentionInterface()
        if self._previous not in interface:
            raise RuntimeError(
                f"the previous attention implementation {self._previous!r} is not in "
                "transformers' AttentionInterface: the context prefill cannot be observed"
            )
        if self.research_attention is not None:
            seen = dict(kwargs, query_start=self.query_start)
            self.research_attention.observe_prefill(module, *args, **seen)
        return interface[self._previous](module, *args, **kwargs)  # type: ignore[no-any-return]

    def prefill_attention(
        self, module: torch.nn.Module | None, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The function of :meth:`prefill`: the research attention's ``prefill_attention``
        with ``query_start``."""
        from sparse_attention_hub.sparse_attention.research_attention import (
            check_attention_kwargs,
        )

        if self.research_attention is None:
            raise RuntimeError("the sparse prefill needs a research attention (a sparse config)")
        check_attention_kwargs(kwargs, module, self.model)  # names the model class
        kwargs.setdefault("query_start", self.query_start)
        return self.research_attention.prefill_attention(  # type: ignore[no-any-return]
            module, *args, **kwargs
        )

    def attention(
        self, module: torch.nn.Module | None, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The HF attention-interface function of this switch: ``(module, query (B, H, Q, D),
        key, value (B, Hkv, K, D), attention_mask (B, 1, Q, K) bool, scaling, dropout,
        **kwargs) -> (output (B, Q, H, D), weights or None)``.

        Routed to the research attention's ``custom_attention`` (with ``query_start``), or,
        when the switch has no research attention, to the implementation registered under
        the model's previous name, with every argument (``s_aux``, ``softcap``, ...).
        """
        if self.research_attention is None:
            from transformers import AttentionInterface

            interface = AttentionInterface()
            if self._previous not in interface:
                raise RuntimeError(
                    f"no research attention is set and the previous implementation "
                    f"{self._previous!r} is not in transformers' AttentionInterface"
                )
            return interface[self._previous](module, *args, **kwargs)  # type: ignore[no-any-return]
        from sparse_attention_hub.sparse_attention.research_attention import (
            check_attention_kwargs,
        )

        check_attention_kwargs(kwargs, module, self.model)  # names the model class
        self.calls += 1
        kwargs.setdefault("query_start", self.query_start)
        return self.research_attention.custom_attention(  # type: ignore[no-any-return]
            module, *args, **kwargs
        )


def _implementation_tree(config: Any) -> Any:
    """The attention implementation of ``config`` and of each sub-config (vision/text
    towers), in the nested-dict form ``set_attn_implementation`` accepts (a plain name when
    there are no sub-configs)."""
    own = config._attn_implementation
    subs = {
        key: _implementation_tree(sub)
        for key in getattr(config, "sub_configs", {}) or {}
        if (sub := getattr(config, key, None)) is not None
    }
    return {"": own, **subs} if subs else own
