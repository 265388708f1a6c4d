"""HashAttention's hash MLPs and packed signatures: the math the masker and training share.

An MLP is a tuple of (weight (H, in, out), bias (H, out)) pairs, one per linear layer, all
query heads stacked (see ``hashattention_weights`` for the file format). Signatures are the
sign bits of the MLP outputs, packed 16 per int32 word, so that a popcount is one lookup in a
2**16-entry table.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

#: One MLP: its linear layers' (weight (H, in, out), bias (H, out)) pairs.
MLP = tuple[tuple[torch.Tensor, torch.Tensor], ...]


def mlp_logits(x: torch.Tensor, mlp: MLP) -> torch.Tensor:
    """The MLP outputs of ``x`` (B, H, N, D), head h through weights [h]: (B, H, N, bits) fp32
    (SiLU between the linear layers, none after the last)."""
    out = x.float()
    for j, (weight, bias) in enumerate(mlp):
        out = torch.matmul(out, weight.unsqueeze(0)) + bias[None, :, None, :]  # (B, H, N, out)
        if j < len(mlp) - 1:
            out = F.silu(out)
    return out


def key_logits(keys: torch.Tensor, mlp: MLP) -> torch.Tensor:
    """Key-MLP outputs (B, H, N, bits) of keys (B, Hkv, N, D): query head h hashes the keys of
    KV head h // G (G = H / Hkv) through its own MLP, without repeating the keys in memory for
    the first (largest) product."""
    b, h_kv, n, d = keys.shape
    weight, bias = mlp[0]
    h = weight.shape[0]
    w = weight.reshape(h_kv, h // h_kv, d, -1)  # (Hkv, G, D, out)
    first = torch.matmul(keys.float().unsqueeze(2), w.unsqueeze(0))  # (B, Hkv, G, N, out)
    out = first.reshape(b, h, n, -1) + bias[None, :, None, :]  # (B, H, N, out)
    if len(mlp) == 1:
        return out
    return mlp_logits(F.silu(out), mlp[1:])


#: Bits per word of a packed signature: 16, so one table lookup counts a word's set bits.
WORD_BITS = 16


def pack_signs(logits: torch.Tensor) -> torch.Tensor:
    """Sign bits (logit > 0 -> 1) of ``logits`` (..., bits) packed 16 per int32 word:
    (..., ceil(bits / 16)) int32, each word in [0, 2**16)."""
    bits = logits.shape[-1]
    words = -(-bits // WORD_BITS)
    flags = F.pad((logits > 0).int(), (0, words * WORD_BITS - bits))  # (..., words * 16)
    flags = flags.reshape(*logits.shape[:-1], words, WORD_BITS)  # (..., words, 16)
    shifts = torch.arange(WORD_BITS, device=logits.device, dtype=torch.int32)
    return (flags << shifts).sum(-1, dtype=torch.int32)  # (..., words)


@functools.cache
def popcount_table(device: torch.device) -> torch.Tensor:
    """(65536,) uint8: the number of set bits of every 16-bit word, on ``device``."""
    values = torch.arange(1 << WORD_BITS, dtype=torch.int32)
    counts = torch.zeros_like(values)
    for bit in range(WORD_BITS):
        counts += (values >> bit) & 1
    return counts.to(torch.uint8).to(device)


def popcount16(words: torch.Tensor) -> torch.Tensor:
    """Set bits of each 16-bit word of ``words`` (any shape, int16 holding the bit pattern of
    a word in [0, 2**16)), in place: the same tensor, each entry now in [0, 16].

    The bit-parallel (SWAR) count: pairs, nibbles, bytes, then the two bytes. Arithmetic
    shifts of a negative int16 fill with ones, but every fill lands in bits the following
    mask clears. Two int16 tensors of ``words``' size are alive at once (a table lookup would
    turn its index into int64: 4x the memory)."""
    x = words
    x -= (x >> 1) & 0x5555  # 2-bit fields: the count of each bit pair
    low = x & 0x3333
    x >>= 2
    x &= 0x3333
    x += low  # 4-bit fields
    del low
    x += x >> 4
    x &= 0x0F0F  # 8-bit fields
    x += x >> 8
    x &= 0x1F
    return x


def hamming_distance(query_signs: torch.Tensor, key_signs: torch.Tensor) -> torch.Tensor:
    """Differing bits of packed signatures: queries (B, H, Q, W) and keys stored word-major
    (B, H, W, K), int32 words -> (B, H, Q, K), uint8 up to 255 bits (int32 beyond).

    One word at a time: an int16 xor of (B, H, Q, K), its popcount in place, added to the
    total, so the temporaries are three (B, H, Q, K) int16 tensors whatever the word count
    (no (B, H, Q, W, K) tensor)."""
    words = key_signs.shape[2]
    total: torch.Tensor | None = None
    for w in range(words):
        query = query_signs[..., w : w + 1].to(torch.int16)  # (B, H, Q, 1), the bit pattern
        key = key_signs[:, :, w].to(torch.int16).unsqueeze(2)  # (B, H, 1, K)
        counts = popcount16(query ^ key)  # (B, H, Q, K) int16 in [0, 16]
        total = counts if total is None else total.add_(counts)
        del counts
    if total is None:  # no word: no bit differs
        shape = (*query_signs.shape[:-1], key_signs.shape[-1])
        return torch.zeros(shape, dtype=torch.uint8, device=key_signs.device)
    return total.to(torch.uint8 if words * WORD_BITS <= 255 else torch.int32)


__all__ = [
    "MLP",
    "WORD_BITS",
    "hamming_distance",
    "key_logits",
    "mlp_logits",
    "pack_signs",
    "popcount16",
    "popcount_table",
]
