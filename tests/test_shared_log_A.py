"""One log A table for ln p and the class KL (nemm.diagnostics): the same bits as the two separate paths.

The per-epoch tracking and ``diagnose`` compute log A(z, x) once for a one-hot machine whose
occupancy gives every state mass, and ``_core.log_mixture_rows`` repeats the engine's mixture
arithmetic; these tests compare bit for bit with ``Machine.score_samples`` and ``class_kl_of``,
and check the fallback (a state without mass, binary layers, no labels).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemm import Machine, _core
from nemm import diagnostics as diag


def _machine(seed: int, D: int = 12, L: int = 4, hidden: str = "onehot") -> Machine:
    rng = np.random.default_rng(seed)
    Lw = L
    return Machine.from_params(
        rng.normal(0, 2, (D, Lw)),
        rng.normal(0, 0.5, D),
        rng.normal(0, 2, (Lw, D)),
        rng.normal(0, 0.5, Lw),
        rng.uniform(0.2, 0.8, D),
        random_state=seed,
        hidden=hidden,
    )


def _data(seed: int, N: int = 200, D: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    X = (rng.random((N, D)) < 0.4).astype(np.uint8)
    y = rng.integers(0, 3, N)
    return X, y


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), L=st.integers(2, 7))
def test_log_mixture_rows_equals_score_samples_bit_for_bit(seed: int, L: int) -> None:
    m = _machine(seed, L=L)
    X, _ = _data(seed)
    p = np.random.default_rng(seed).dirichlet(np.ones(L))
    ref = m.score_samples(X, pbar=p)
    got = _core.log_mixture_rows(np.ascontiguousarray(m.log_A(X)), np.log(p))
    assert got.dtype == np.float64 and got.shape == (len(X),)
    assert np.array_equal(got, ref)


def test_log_mixture_rows_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="one entry per column"):
        _core.log_mixture_rows(np.zeros((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"\(N, U\)"):
        _core.log_mixture_rows(np.zeros(4), np.zeros(4))


def test_shared_table_only_when_every_state_has_mass() -> None:
    m = _machine(3)
    X, _ = _data(3)
    assert diag._shared_log_A(m, X, np.full(4, 0.25)) is not None
    assert (
        diag._shared_log_A(m, X, np.array([0.5, 0.5, 0.0, 0.0])) is None
    )  # score_samples drops empty states
    assert diag._shared_log_A(m, X, None) is None
    mb = _machine(3, L=2, hidden="binary")
    assert diag._shared_log_A(mb, X, np.full(4, 0.25)) is None


@pytest.mark.parametrize("seed", [0, 5])
def test_diagnose_and_tracking_equal_the_separate_paths(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _machine(seed)
    X, y = _data(seed)
    d = diag.diagnose(m, X, y, n_steps=4000, n_chains=2, seed=1, rao_blackwell_draws=0)
    assert (d.occupancy > 0).all()  # the shared path was taken
    h_before = {k: list(v) for k, v in m.history_.items()} if isinstance(m.history_, dict) else {}
    m.history_ = dict(h_before)
    diag.track_epoch(m, 0, X, y, n_steps=2000)
    shared_track = (m.history_["loglik_exact"][-1], m.history_["class_kl"][-1])
    # The same with the shared table switched off: the two separate calls of before.
    monkeypatch.setattr(diag, "_shared_log_A", lambda *a, **k: None)
    d2 = diag.diagnose(m, X, y, n_steps=4000, n_chains=2, seed=1, rao_blackwell_draws=0)
    assert d.loglik_exact == d2.loglik_exact
    assert d.class_kl.kl == d2.class_kl.kl
    assert np.array_equal(d.class_kl.state_class, d2.class_kl.state_class)
    m.history_ = dict(h_before)
    diag.track_epoch(m, 0, X, y, n_steps=2000)
    assert shared_track == (m.history_["loglik_exact"][-1], m.history_["class_kl"][-1])
