"""Hidden-state codes and their bits: the one conversion used by the package (exact.py keeps its own).

A binary hidden state ``z`` (L bits) has the code ``c = sum_b z_b 2^b`` (bit
``b`` of ``c`` is ``z_b``), the same convention as the C++ core. One-hot states
are their index ``alpha``, so codes and states coincide.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bits_to_codes", "codes_to_bits", "codes_to_states"]


def codes_to_bits(codes: np.ndarray, n_bits: int) -> np.ndarray:
    """Bits of integer codes along a new last axis, ``(..., n_bits)`` uint8 (bit ``b`` of ``c``)."""
    c = np.asarray(codes).astype(np.uint64)
    return ((c[..., None] >> np.arange(int(n_bits), dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)


def bits_to_codes(bits: np.ndarray) -> np.ndarray:
    """Integer codes (int64) of bit rows ``(..., n_bits)``: ``sum_b bits[..., b] 2^b``."""
    b = np.asarray(bits).astype(np.int64)
    return (b << np.arange(b.shape[-1], dtype=np.int64)).sum(axis=-1)


def codes_to_states(codes: np.ndarray, hidden: str, n_hidden: int) -> np.ndarray:
    """Hidden states from codes: one-hot -> int64 indices; binary -> uint8 bits on a new last axis."""
    if hidden == "onehot":
        return np.asarray(codes).astype(np.int64)
    return codes_to_bits(codes, n_hidden)
