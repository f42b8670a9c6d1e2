"""Messages print plain numbers: ``got 0.48``, never numpy 2's ``np.float64(0.48)``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import nemm
from nemm import markov
from nemm._checks import as_binary_matrix, as_int, shown
from nemm.cli import main
from nemm.datasets import planted


def _message(call: Callable[[], object]) -> str:
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize(
    ("call", "plain"),
    [
        (lambda: markov.decorrelation_time(np.array([[0.5, 0.02], [0.5, 0.5]])), "sums to 0.52"),
        (lambda: as_binary_matrix(np.array([[0.0, 0.48]]), "X"), "found 0.48 at index (0, 1)"),
        (lambda: as_binary_matrix(np.array([[0, 2]], dtype=np.uint8), "X"), "found 2 at index"),
        (lambda: as_int(np.float64(2.5), "n_epochs"), "got 2.5 of type float64"),
        (lambda: nemm.Machine(6, n_epochs=np.float64(2.5)).training_settings(100), "got 2.5"),
        (lambda: planted(8, 2, 10, 0, weights=np.array([1.0, -0.5])), "got [1.0, -0.5]"),
        (lambda: markov.transition_counts(np.array([0, 1]), np.int64(0)), "got 0"),
    ],
)
def test_messages_show_plain_numbers(call: Callable[[], object], plain: str) -> None:
    text = _message(call)
    assert plain in text
    assert "np." not in text and "array(" not in text


def test_cli_error_shows_plain_numbers(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "x.npy"
    np.save(data, np.array([[0.0, 0.48], [1.0, 0.0]]))
    assert main(["train", str(data), "--out", str(tmp_path / "m.npz"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "0.48" in err and "np.float64(" not in err


def test_shown_is_repr_without_numpy_types() -> None:
    assert shown(np.float64(0.48)) == "0.48"
    assert shown(np.array([1, 2])) == "[1, 2]"
    assert shown("abc") == "'abc'"
    assert repr(np.float64(0.48)) != shown(np.float64(0.48))  # what the check guards against
