"""Shared fixtures: the MNIST directory in ../shared and the digits shipped with nemm."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def shared_mnist_dir() -> Path:
    """``<shared>/data/mnist``; ``<shared>`` is $NEMM_SHARED or the ``shared`` folder beside the repo."""
    env = os.environ.get("NEMM_SHARED")
    shared = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return shared / "data" / "mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The shared MNIST IDX directory; the test is skipped when the files are absent."""
    d = shared_mnist_dir()
    if not (d / "t10k-images-idx3-ubyte.gz").is_file() or not (d / "t10k-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"shared MNIST files not found in {d}")
    return d


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The 2980 embedded binarized MNIST digits 0, 1, 2 (read-only views)."""
    from nemm.datasets import embedded_digits

    X, y = embedded_digits()
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y
