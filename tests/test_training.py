"""nemm.training: the minibatch stream (resumable bit for bit) and the batch-size schedule."""

from __future__ import annotations

import numpy as np
import pytest

from nemm.training import _BatchStream, batch_size_schedule


def test_schedule_is_linear_between_the_ends() -> None:
    sizes = [batch_size_schedule(e, 5, (16, 160)) for e in range(5)]
    assert sizes == [16, 52, 88, 124, 160]
    assert batch_size_schedule(0, 1, (16, 160)) == 160
    assert batch_size_schedule(9, 5, (16, 160)) == 160  # past the end: the final size


def test_stream_walks_permutations_and_resumes_exactly() -> None:
    stream = _BatchStream(7, np.random.default_rng(3))
    first = stream.take(7)
    assert sorted(first.tolist()) == list(range(7))  # one whole permutation, then a new one
    stream.take(3)
    perm, pos, rng_state = stream.state()
    copy = _BatchStream.from_state(perm.copy(), pos, rng_state)
    expected = stream.take(20)
    np.testing.assert_array_equal(copy.take(20), expected)
    saved = copy.state()
    after = copy.take(5)
    copy.restore(saved)  # back to before those 5: the same rows again
    np.testing.assert_array_equal(copy.take(5), after)
    np.testing.assert_array_equal(_replay(saved, 5), after)


def _replay(state: tuple, k: int) -> np.ndarray:
    perm, pos, rng_state = state
    return _BatchStream.from_state(np.array(perm), pos, rng_state).take(k)


@pytest.mark.parametrize(
    ("perm", "pos", "match"), [([0, 0, 1], 0, "not a permutation"), ([0, 1, 2], 4, "outside")]
)
def test_stream_state_is_checked(perm: list, pos: int, match: str) -> None:
    state = np.random.default_rng(0).bit_generator.state
    with pytest.raises(ValueError, match=match):
        _BatchStream.from_state(np.array(perm), pos, state)
