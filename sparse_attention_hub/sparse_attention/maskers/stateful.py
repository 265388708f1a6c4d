"""``StatefulMasker``: the base of maskers that keep per-layer state between calls.

The research attention owns the state (one ``MaskerStates`` per request, see
``sparse_attention.masker_state``) and calls the three operations a stateful masker declares;
``add_mask`` then reads the state of the call with :meth:`StatefulMasker.state`, which covers
exactly the call's keys: state key i is ``inputs.keys[:, :, i]``. Example, a per-key value::

    class KeyMaxMasker(StatefulMasker[torch.Tensor], TopKMasker):
        def build_state(self, inputs):
            return inputs.keys.abs().amax(-1)                     # (B, Hkv, K)
        def extend_state(self, state, inputs, new_keys):
            new = inputs.keys[:, :, -new_keys:].abs().amax(-1)    # (B, Hkv, new_keys)
            return torch.cat([state, new], dim=2)
        def truncate_state(self, state, start, stop):
            return state[:, :, start:stop]

The law every stateful masker must keep (``tests/adapters/test_state_law.py`` checks it for
every registered one): answers and masks with state reuse and KV-cache rollback equal those of
a fresh prefill and fresh state for every question.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Generic, TypeVar

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.maskers.base import Masker

S = TypeVar("S")


class StatefulMasker(Masker, Generic[S]):
    """A masker with typed per-layer state ``S``, built once and then only extended."""

    is_stateful: ClassVar[bool] = True

    @abstractmethod
    def build_state(self, inputs: AttentionInputs) -> S:
        """The state of all keys of ``inputs`` (absolute positions ``inputs.key_positions()``)."""

    @abstractmethod
    def extend_state(self, state: S, inputs: AttentionInputs, new_keys: int) -> S:
        """``state`` plus the last ``new_keys`` keys of ``inputs`` (the others it has seen)."""

    @abstractmethod
    def truncate_state(self, state: S, start: int, stop: int) -> S:
        """``state`` cut to its keys ``[start, stop)`` (a rollback, or a window that slid)."""

    def state(self, inputs: AttentionInputs) -> S:
        """The state for this call: the research attention's, or, when the masker is called
        without one (a direct ``add_mask`` call), built from ``inputs`` on the spot."""
        if inputs.state is None:
            return self.build_state(inputs)
        state: S = inputs.state
        return state
