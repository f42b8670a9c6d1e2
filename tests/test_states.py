"""nemm._states: the one hidden code <-> bits conversion, checked against exact.py's own copy."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nemm._states import bits_to_codes, codes_to_bits, codes_to_states
from nemm.exact import hidden_states


@given(st.integers(1, 12))
def test_codes_to_bits_matches_the_exact_enumeration(L: int) -> None:
    codes = np.arange(1 << L, dtype=np.uint64)
    bits = codes_to_bits(codes, L)
    assert bits.dtype == np.uint8 and bits.shape == (1 << L, L)
    np.testing.assert_array_equal(bits, hidden_states(L, "binary").astype(np.uint8))
    np.testing.assert_array_equal(bits_to_codes(bits), codes.astype(np.int64))


def test_codes_to_states_keeps_shape_and_modes() -> None:
    codes = np.array([[0, 5], [3, 7]], dtype=np.uint64)
    s = codes_to_states(codes, "binary", 3)
    assert s.shape == (2, 2, 3)
    np.testing.assert_array_equal(s[0, 1], [1, 0, 1])
    one = codes_to_states(codes, "onehot", 8)
    assert one.dtype == np.int64
    np.testing.assert_array_equal(one, codes.astype(np.int64))
