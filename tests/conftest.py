"""Shared fixtures: the MNIST directory in ../shared, the digits shipped with nemm, and the smallest
two-variant reproduction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


@pytest.fixture
def tiny_compare() -> Any:
    """``(out_dir, compare) -> result``: ``nemm reproduce --compare`` in-process on 120 planted
    labelled rows of 16 pixels, 2 seeds x 2 epochs, one RBM, one tied seed, short chains."""
    from nemm import reproduce as rp

    rng = np.random.default_rng(1)
    protos = rng.random((3, 16)) < 0.5
    y = rng.integers(0, 3, 120)
    X = np.array([np.where(rng.random(16) < 0.1, ~protos[k], protos[k]) for k in y], dtype=np.uint8)

    def run(out_dir: Path, compare: str) -> Any:
        return rp.reproduce(
            out_dir,
            seeds=2,
            n_epochs=2,
            n_jobs=1,
            data=(X, y),
            n_hidden=3,
            em_restarts=1,
            rbm_seeds=1,
            tied_seeds=1,
            figures=False,
            progress=False,
            diag_steps=2000,
            track_every=0,
            mixing_steps=500,
            rao_blackwell_draws=50,
            compare=compare,
        )

    return run
