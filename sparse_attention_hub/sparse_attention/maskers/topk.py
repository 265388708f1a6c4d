"""The "score, then keep the top k" template that most maskers only fill a score into.

Per (B, H, Q) row, the k keys with the highest score among the keys not yet active are added
with p = 1. Keys the attention mask forbids (score -inf) are never added.

    previous   scores          top-2 of the rest   result
    #.....#    . 3 1 9 2 7 .   . . . # . # .       #..#.##
"""

from __future__ import annotations

from abc import abstractmethod

import torch

from sparse_attention_hub.sparse_attention.inputs import AttentionInputs
from sparse_attention_hub.sparse_attention.mask import Mask
from sparse_attention_hub.sparse_attention.maskers.base import Masker, Size, resolve_size


def budget_or_mask(
    size: Size, inputs: AttentionInputs, previous_mask: Mask
) -> tuple[int, Mask | None]:
    """The per-row budget k of ``size`` at this call's K, and the finished mask when no score
    is needed: ``previous_mask`` unchanged (it is full, or k == 0) or every key (k >= K).
    ``(k, None)`` means the masker must choose k keys per row."""
    shape, device = inputs.mask_shape, inputs.keys.device
    k = resolve_size(size, shape[3])
    if previous_mask.is_full_flag or k == 0:
        return k, previous_mask.merge(Mask.create_empty(shape, device=device))
    if k >= shape[3]:
        return k, previous_mask.merge(Mask.create_full(shape, device=device))
    return k, None


#: Elements per step of the tie rule's running count in :func:`top_k_earliest` (int32).
TIE_CHUNK_ELEMENTS = 2**22


def top_k_earliest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Bool (..., K): the ``k`` highest finite ``scores`` of each row, ties at the k-th value
    broken by position (earliest first); a row with fewer finite scores keeps all of them.

    No host read (the same ops whether or not a tie crosses the k-th place), and no (..., K)
    int64 temporary: the running count of the tied keys is int32, taken over blocks of rows of
    at most ``TIE_CHUNK_ELEMENTS`` entries."""
    kth = torch.topk(scores, k, dim=-1, sorted=False).values.amin(-1, keepdim=True)  # (..., 1)
    keep = scores > kth  # (..., K)
    tied = (scores == kth) & (kth > float("-inf"))  # (..., K)
    room = k - keep.sum(-1, keepdim=True, dtype=torch.int32)  # (..., 1)
    n_keys = scores.shape[-1]
    rows_keep, rows_tied = keep.view(-1, n_keys), tied.view(-1, n_keys)  # (R, K)
    rows_room = room.view(-1, 1)  # (R, 1)
    step = max(1, TIE_CHUNK_ELEMENTS // max(1, n_keys))
    for first in range(0, rows_keep.shape[0], step):
        part = rows_tied[first : first + step]  # (r, K)
        earliest = part.cumsum(-1, dtype=torch.int32) <= rows_room[first : first + step]
        rows_keep[first : first + step] |= part & earliest
    return keep


class TopKMasker(Masker):
    """Base of top-k maskers: subclasses implement :meth:`score` and :meth:`size`."""

    @abstractmethod
    def size(self) -> Size:
        """How many keys to add per row: int tokens or a float fraction of K."""

    @abstractmethod
    def score(self, inputs: AttentionInputs) -> torch.Tensor:
        """(B, H, Q, K) scores, higher = keep; -inf = never keep. Read only for the caller."""

    def add_mask(self, inputs: AttentionInputs, previous_mask: Mask) -> Mask:
        """``previous_mask`` plus the top-k scoring inactive keys of every row (see module)."""
        k, done = budget_or_mask(self.size(), inputs, previous_mask)
        if done is not None:
            return done
        scores = self.score(inputs)
        active = previous_mask.active()
        if active is not None:
            scores = torch.where(active, float("-inf"), scores)  # (B, H, Q, K), a new tensor
        top = torch.topk(scores, k, dim=-1, sorted=False)
        # Picks with score -inf are forbidden or already active: add nothing there.
        keep = top.values > float("-inf")  # (B, H, Q, k)
        return previous_mask.with_active_indices(top.indices, keep)
