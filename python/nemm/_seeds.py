"""The one way nemm derives a seed from other integers: numpy's SeedSequence hash, never an offset."""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed", "engine_seed"]


def derive_seed(*parts: int | None) -> int | None:
    """A reproducible 63-bit seed hashed from integers (``None`` if the first part is ``None``).

    ``derive_seed(seed, k)`` gives unrelated streams for different ``k`` (SeedSequence
    hashing), unlike ``seed + k``, which makes seed 0's stream 1 equal to seed 1's stream 0.
    """
    if not parts or parts[0] is None:
        return None
    words = [int(p) for p in parts if p is not None]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def engine_seed(seed_seq: np.random.SeedSequence) -> int:
    """A 64-bit seed for the C++ core drawn from a SeedSequence (hashing, never offsets)."""
    return int(seed_seq.generate_state(1, dtype=np.uint64)[0])
