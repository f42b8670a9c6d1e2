"""Hidden-state codes and their bits: the one conversion used by the package (exact.py keeps its own).

A binary hidden state ``z`` (L bits) has the code ``c = sum_b z_b 2^b`` (bit
``b`` of ``c`` is ``z_b``), the same convention as the C++ core. One-hot states
are their index ``alpha``, so codes and states coincide.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "MAX_CODE_BITS",
    "bits_to_codes",
    "codes_to_bits",
    "codes_to_states",
    "state_labels",
    "words_to_bits",
]

#: Binary layers of at most this many units have int64 codes; wider ones (any L) are handled as
#: bits, or as the core's rows of ``ceil(L / 64)`` uint64 words (bit ``b % 64`` of word ``b // 64``).
MAX_CODE_BITS = 63


def codes_to_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """Bits of integer codes along a new last axis, ``(..., n_bits)`` uint8 (bit ``b`` of ``c``)."""
    c = np.asarray(codes).astype(np.uint64)
    return ((c[..., None] >> np.arange(int(n_bits), dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)


def bits_to_codes(bits: np.ndarray) -> np.ndarray:
    """Integer codes (int64) of bit rows ``(..., n_bits)``: ``sum_b bits[..., b] 2^b``."""
    b = np.asarray(bits).astype(np.int64)
    return (b << np.arange(b.shape[-1], dtype=np.int64)).sum(axis=-1)


def words_to_bits(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Bits of the core's state words ``(..., W)`` uint64 along the last axis, ``(..., n_bits)`` uint8."""
    w = np.ascontiguousarray(words, dtype=np.uint64)
    # Little-endian bytes, each unpacked least significant bit first: bit b of the state at b.
    as_bytes = w.astype("<u8", copy=False).view(np.uint8).reshape(*w.shape[:-1], w.shape[-1] * 8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., : int(n_bits)]


def state_labels(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct bit rows of ``(..., n_bits)`` and the label of every row: exact, for any width.

    Returns ``(states, labels)``: the distinct rows ``(U, n_bits)`` uint8, in an unspecified but
    fixed order, and int64 labels in ``[0, U)`` of the shape of ``bits`` without its last axis.
    The labels stand in for codes where a layer is too wide for them (counting transitions).
    """
    b = np.asarray(bits, dtype=np.uint8)
    n_bits = b.shape[-1]
    packed = np.packbits(b.reshape(-1, n_bits), axis=1)
    uniq, inv = np.unique(packed, axis=0, return_inverse=True)
    states = np.unpackbits(uniq, axis=1, count=n_bits)
    return states, inv.reshape(b.shape[:-1]).astype(np.int64)


def codes_to_states(codes: np.ndarray, hidden: str, n_hidden: int) -> np.ndarray:
    """Hidden states from codes: one-hot -> int64 indices; binary -> uint8 bits on a new last axis."""
    if hidden == "onehot":
        return np.asarray(codes).astype(np.int64)
    return codes_to_bits(codes, n_hidden)
