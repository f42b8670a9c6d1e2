"""nemm._seeds: seeds are hashed, never offset."""

from __future__ import annotations

from nemm._seeds import derive_seed


def test_derive_seed_is_reproducible_and_separates_streams() -> None:
    assert derive_seed(3, 1) == derive_seed(3, 1)
    assert derive_seed(None, 1) is None
    seeds = {derive_seed(s, k) for s in range(20) for k in range(5)}
    assert len(seeds) == 100  # seed s, stream k+1 never collides with seed s+1, stream k (unlike offsets)
    assert all(0 <= s < 2**63 for s in seeds)
