"""Model files written by earlier nemm versions keep loading (tests/fixtures, made once by
tools/make_model_fixtures.py): every format and version, with the same parameters and the same
ln p as when they were written, and a version-2 file resumes training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nemm

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
CLASSES = {"machine": nemm.Machine, "rbm": nemm.RBM}


def fixture_data(seed: int = 0, n: int = 40, d: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0.1, 0.9, size=(3, d))
    return (rng.random((n, d)) < protos[rng.integers(0, 3, size=n)]).astype(np.uint8)


def _load(name: str) -> object:
    if name.endswith("-v1.npz"):
        with pytest.warns(UserWarning, match="version-1"):
            return nemm.load(FIXTURES / name)
    return nemm.load(FIXTURES / name)


def test_every_format_and_version_has_a_fixture() -> None:
    names = {f"{kind}-v{version}.npz" for kind in CLASSES for version in (1, 2)}
    assert names == set(EXPECTED)
    assert names <= {p.name for p in FIXTURES.iterdir()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_loads_with_its_recorded_likelihood(name: str) -> None:
    model = _load(name)
    assert isinstance(model, CLASSES[name.split("-")[0]])
    X = fixture_data(EXPECTED[name]["data_seed"])
    assert model.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(model.score_samples(X), EXPECTED[name]["score_samples"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_version_1_and_2_fixtures_hold_the_same_parameters(kind: str) -> None:
    v1, v2 = _load(f"{kind}-v1.npz"), _load(f"{kind}-v2.npz")
    for attr in ("w_", "a_", "abar_", "xbar_"):
        np.testing.assert_array_equal(getattr(v1, attr), getattr(v2, attr), err_msg=attr)
    assert v1.epochs_done_ == v2.epochs_done_ == 2


@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_version_2_fixture_resumes_training(kind: str) -> None:
    model = _load(f"{kind}-v2.npz")
    before = model.w_.copy()
    model.partial_fit(fixture_data(0), n_epochs=1)
    assert model.epochs_done_ == 3
    assert not np.array_equal(model.w_, before)
