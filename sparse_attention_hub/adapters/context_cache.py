"""The KV cache of one context, rolled back to the context before every question.

Full-attention layers roll back with ``DynamicCache.crop``. A sliding-window layer keeps only
its last ``sliding_window - 1`` states, so once the context fills the window it cannot roll back
by itself. After the first context prefill the cache therefore records the past
(``activate_past_recording``): question and generated states are kept next to the window until
the next crop drops them again, so every later question starts from the context state without
a second prefill. A rollback to fewer tokens than the last point the window was cut at (only
when a later question's context tokenizes differently) resets the cache instead.

The masker states of the request (``sparse_attention.MaskerStates``) follow the cache in the
same step: a rollback truncates them to the kept length, a reset clears them.
"""

from __future__ import annotations

import logging
from typing import Any

from sparse_attention_hub.adapters.prompting import common_prefix_length

logger = logging.getLogger(__name__)

_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen in this process (a lost prefill reuse)."""
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


class ContextCache:
    """A ``DynamicCache`` plus the context ids it holds.

    Attributes:
        cache: the transformers cache the model reads and extends.
        ids: the context ids the cache held after the last :meth:`prefilled`.
        states: the request's masker states (anything with ``truncate(length)`` and
            ``clear()``), or None (dense attention, or no research attention).
    """

    def __init__(self, model_config: Any, states: Any = None) -> None:
        from transformers import DynamicCache

        self.cache: Any = DynamicCache(config=model_config)
        self.states = states
        self.ids: list[int] = []
        self._recording = False
        self._floor = 0  # sliding layers can roll back to no fewer tokens than this

    def rollback(self, context_ids: list[int]) -> int:
        """Drop every state past the longest prefix shared with ``context_ids``; returns its
        length (0 after a reset), i.e. ``context_ids[returned:]`` still need a prefill."""
        keep = common_prefix_length(self.ids, context_ids)
        current = self.cache.get_seq_length()
        if current <= keep:
            self._truncate_states(current)
            return current
        if keep < self._floor and any(getattr(self.cache, "is_sliding", ())):
            logger.debug("a sliding-window cache cannot roll back to %d tokens: reset", keep)
            return self._reset()
        try:
            self.cache.crop(keep - current)
        except (RuntimeError, ValueError, NotImplementedError) as err:
            _warn_once(
                "crop",
                "cannot crop the KV cache (%s): the context is prefilled again for each "
                "question (warned once)",
                err,
            )
            return self._reset()
        self._truncate_states(keep)
        return keep

    def prefilled(self, context_ids: list[int], kept: int) -> None:
        """Record that the cache now holds ``context_ids`` (``kept`` of them were already
        there), and from now on keep the past of sliding-window layers for :meth:`rollback`."""
        self.ids = list(context_ids)
        # Without recording, the prefill cut sliding windows at its end; with it, at ``kept``.
        self._floor = kept if self._recording else len(context_ids)
        if self._recording:
            return
        if hasattr(self.cache, "activate_past_recording"):
            self.cache.activate_past_recording()
            self._recording = True
        elif any(getattr(self.cache, "is_sliding", ())):
            _warn_once(
                "recording",
                "this transformers' DynamicCache has no activate_past_recording: sliding-window "
                "layers cannot roll back, so contexts longer than the window are prefilled "
                "again for each question (warned once; transformers >= 5.24 keeps one prefill)",
            )

    def _truncate_states(self, length: int) -> None:
        if self.states is not None:
            self.states.truncate(length)

    def _reset(self) -> int:
        if self.states is not None:
            self.states.clear()
        self.cache.reset()
        self.ids = []
        self._floor = 0  # recording stays on: everything from here on is kept
        return 0
