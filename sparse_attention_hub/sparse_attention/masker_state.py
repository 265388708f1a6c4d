"""Per-layer, per-request masker state that follows the KV cache.

A stateful masker (``maskers.StatefulMasker``) computes something per key (a signature, a page
summary, a code) and reuses it on later calls, so that only new keys are processed. It declares
three operations; :class:`MaskerStates` decides which one each call needs and tracks which
absolute key positions ``[start, end)`` every state covers:

- build: from all keys of the call, on the first call of a layer (or when the call's keys
  start before the state's, or after a gap the state never saw);
- extend: with the keys past the state's end (the last ``new_keys`` keys of the call);
- truncate: to a slice of its keys, when the KV cache is rolled back (:meth:`truncate`,
  called by the adapter in the same step as the cache crop) and when a sliding window drops
  old keys (the state then covers exactly the call's keys again).

A masker with ``state_keeps_front = True`` (an eviction decision, which cannot be rebuilt
from the keys) is never cut at the front: its state keeps covering the keys a sliding window
dropped, so a rollback that brings them back reuses it.

A state that covers more keys than the call has (the cache was rolled back, the state was not)
is an error naming the layer and both lengths: it is never silently reused.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs


class StateRules(Protocol):
    """What a stateful masker declares (see ``maskers.StatefulMasker``)."""

    def build_state(self, inputs: AttentionInputs) -> Any: ...

    def extend_state(self, state: Any, inputs: AttentionInputs, new_keys: int) -> Any: ...

    def truncate_state(self, state: Any, start: int, stop: int) -> Any: ...


@dataclasses.dataclass
class StateEntry:
    """One masker's state on one layer and the absolute key positions [start, end) it covers."""

    value: Any
    start: int
    end: int


class MaskerStates:
    """The masker states of one request: one :class:`StateEntry` per (layer, masker).

    Owned by the research attention; a new request (a new KV cache) gets a new one.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[int | None, StateRules], StateEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, layer_idx: int | None, masker: StateRules) -> StateEntry | None:
        """The entry of ``masker`` on ``layer_idx`` (None before its first call)."""
        return self._entries.get((layer_idx, masker))

    def read(self, masker: StateRules, inputs: AttentionInputs) -> Any:
        """The state of ``masker`` for this call, built, extended or cut to cover exactly the
        call's keys (absolute positions ``inputs.key_offset .. inputs.sequence_length - 1``).

        Raises:
            ValueError: the state covers keys past the call's last key (naming the layer and
                both lengths): the KV cache was rolled back without :meth:`truncate`.
        """
        key = (inputs.layer_idx, masker)
        start, end = inputs.key_offset, inputs.sequence_length
        entry = self._entries.get(key)
        if entry is not None and entry.end > end:
            raise ValueError(
                f"layer {inputs.layer_idx}: the state of {masker!r} covers {entry.end} keys but "
                f"this attention call has {end}; roll masker states back with the KV cache "
                "(MaskerStates.truncate) or start a new request"
            )
        if entry is None or start < entry.start or start > entry.end:
            value = masker.build_state(inputs)
        else:
            value = entry.value
            if entry.end < end:
                value = masker.extend_state(value, inputs, end - entry.end)
            if start > entry.start and not getattr(masker, "state_keeps_front", False):
                value = masker.truncate_state(value, start - entry.start, end - entry.start)
            elif start > entry.start:  # the state keeps the keys the window dropped
                start = entry.start
        self._entries[key] = StateEntry(value, start, end)
        return value

    def put(
        self, masker: StateRules, layer_idx: int | None, value: Any, start: int, end: int
    ) -> None:
        """Set the state of ``masker`` on ``layer_idx`` to ``value``, covering the absolute key
        positions ``[start, end)`` (a state made from an observed context prefill)."""
        self._entries[(layer_idx, masker)] = StateEntry(value, start, end)

    def truncate(self, length: int) -> None:
        """Cut every state to the keys at absolute positions < ``length`` (a KV-cache rollback
        to ``length`` tokens); a state with no key left is dropped."""
        for (layer_idx, masker), entry in list(self._entries.items()):
            if entry.end <= length:
                continue
            if entry.start >= length:
                del self._entries[(layer_idx, masker)]
                continue
            entry.value = masker.truncate_state(entry.value, 0, length - entry.start)
            entry.end = length

    def clear(self) -> None:
        """Drop every state (the KV cache was reset)."""
        self._entries.clear()
