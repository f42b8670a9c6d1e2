"""Threads: large fits give the same bits on 1 and 2 threads, and the OpenMP wait policy.

The gradient, the forward kernel, the RBM's data and model terms and the chains split their work
into whole rows or column tiles summed over the rows in their order (cpp/nemm/kernels.hpp), so
no number may depend on the thread count. The sizes here are large enough for the parallel
paths (several column tiles and row pieces); the small sizes of the other tests run on one thread.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from scipy.special import expit, logsumexp

import nemm
from nemm import Machine, _core
from nemm.rbm import RBM

pytestmark = pytest.mark.skipif(not nemm.openmp_enabled(), reason="the core was built without OpenMP")


@pytest.fixture
def restore_threads() -> Iterator[None]:
    saved = _core.max_threads()
    yield
    nemm.set_num_threads(saved)


def large_machine(L: int, X: np.ndarray, seed: int = 0, **settings: object) -> Machine:
    rng = np.random.default_rng(seed)
    D = X.shape[1]
    xbar = X.mean(axis=0).clip(0.02, 0.98)
    w = rng.normal(0.0, 0.3, (D, L))
    wbar = rng.normal(0.0, 0.05, (L, D))
    return Machine.from_params(
        w, np.log(xbar / (1 - xbar)), wbar, rng.normal(0.0, 0.1, L), xbar, n_hidden=L, **settings
    )


def train_bits(
    m: Machine,
    X: np.ndarray,
    threads: int,
    gradient: str,
    n_chains: int = 8,
    batch: int = 500,
    steps: int = 3,
) -> dict[str, np.ndarray]:
    """Parameters and estimates after `steps` training steps from the same start on `threads` threads."""
    nemm.set_num_threads(threads)
    mm = Machine.from_params(m.w_, m.a_, m.wbar_, m.abar_, m.xbar_, **m.get_params())
    eng = mm._engine
    eng.gradient = gradient
    eng.set_data(X)
    eng.reset_chains(n_chains, 5, X[:n_chains])
    eng.reset_optimizer()
    rows = np.random.default_rng(1).integers(len(X), size=steps * batch).astype(np.int64)
    ll = eng.train_steps(
        rows, np.full(steps, batch, dtype=np.int64), 48, 0.01, 0.9, 1e-8, mm.hidden == "onehot"
    )
    Xp, Z = eng.recording()
    g = eng.approx_gradient(X[rows[:batch]], Xp, Z)
    out = {"ll": ll, "w": mm.w_, "a": mm.a_, "wbar": mm.wbar_, "abar": mm.abar_}
    out.update({f"g_{k}": np.asarray(g[k]) for k in ("w", "a", "wbar", "abar", "loglik")})
    return out


def assert_same_bits(one: dict[str, np.ndarray], two: dict[str, np.ndarray]) -> None:
    assert one.keys() == two.keys()
    for k in one:
        assert np.array_equal(np.asarray(one[k]), np.asarray(two[k])), f"{k} differs between 1 and 2 threads"


@pytest.mark.parametrize("gradient", ["sampled", "rao_blackwell"])
def test_large_onehot_fit_same_bits_on_1_and_2_threads(digits, restore_threads, gradient):
    """L = 256, 8 chains x 48 steps, minibatch 500: the fit of the issue, on the parallel path."""
    X, _ = digits
    m = large_machine(256, X)
    one = train_bits(m, X, 1, gradient)
    two = train_bits(m, X, 2, gradient)
    assert np.isfinite(one["ll"]).all() and not np.array_equal(one["w"], m.w_)  # it trained
    assert_same_bits(one, two)


def test_large_binary_and_sigmoid_fits_same_bits_on_1_and_2_threads(digits, restore_threads):
    X, _ = digits
    for m in (
        large_machine(20, X, hidden="binary"),
        large_machine(65, X, normalization="sigmoid", tied=False),
    ):
        assert_same_bits(
            train_bits(m, X, 1, "sampled", n_chains=6), train_bits(m, X, 2, "sampled", n_chains=6)
        )


def test_log_A_of_many_states_same_bits_on_1_and_2_threads(digits, restore_threads):
    X, _ = digits
    m = large_machine(255, X)  # odd: the last column tile is narrower than the padded table
    out = []
    for t in (1, 2):
        nemm.set_num_threads(t)
        out.append(m.log_A(X, np.arange(255)))
    H = m.w_ + m.a_[:, None]
    want = X.astype(float) @ H - np.logaddexp(0.0, H).sum(axis=0)
    np.testing.assert_allclose(out[0], want, rtol=1e-12, atol=1e-9)
    assert np.array_equal(out[0], out[1])


def reference_onehot_gradient(
    m: Machine, X: np.ndarray, Xp: np.ndarray, Z: np.ndarray, rao_blackwell: bool
) -> dict[str, np.ndarray]:
    """Eqs. 16a-d with 17 for one-hot softmax machines, vectorized over rows and states."""
    w, a, wbar, abar, xbar = m.w_, m.a_, m.wbar_, m.abar_, m.xbar_
    L, N, S = w.shape[1], len(X), len(Xp)
    Xf, xc = X.astype(float), Xp.astype(float) - xbar
    H = w + a[:, None]  # (D, L): h of each state
    logA = Xf @ H - np.logaddexp(0.0, H).sum(axis=0)  # (N, L)
    U = xc @ wbar.T + abar  # (S, L) x -> z fields
    muz = np.exp(U - logsumexp(U, axis=1, keepdims=True))  # Abar(z | x'(s))
    count = muz.sum(axis=0) if rao_blackwell else np.bincount(Z, minlength=L).astype(float)
    with np.errstate(divide="ignore"):
        Q = logA + np.log(count)
    R = np.exp(Q - logsumexp(Q, axis=1, keepdims=True))  # r summed per state, (N, L)
    C = R.sum(axis=0)
    gw = (Xf.T @ R - expit(H) * C) / N
    c = np.divide(C, count, out=np.zeros(L), where=count > 0)
    if rao_blackwell:
        delta = muz * (c - (muz * c).sum(axis=1, keepdims=True))
    else:
        delta = c[Z][:, None] * (np.eye(L)[Z] - muz)
    return {
        "w": gw,
        "a": gw.sum(axis=1),
        "wbar": delta.T @ xc / N,
        "abar": delta.sum(axis=0) / N,
        "loglik": np.mean(logsumexp(Q, axis=1)) - math.log(S),
    }


@pytest.mark.parametrize("gradient", ["sampled", "rao_blackwell"])
def test_tiled_gradient_matches_numpy(digits, restore_threads, gradient):
    """L = 40 (three column tiles, 16 + 16 + 8), 300 rows and 96 pairs (several row pieces) on 2
    threads: the pieces add up to the gradient of eqs. 16-17."""
    X, _ = digits
    m = large_machine(40, X, seed=3)
    nemm.set_num_threads(2)
    eng = m._engine
    eng.gradient = gradient
    eng.reset_chains(2, 9, X[:2])
    Xp, Z = eng.run_chains(48)
    Xb = X[np.random.default_rng(2).choice(len(X), size=300, replace=False)]
    got = eng.approx_gradient(Xb, Xp, Z)
    want = reference_onehot_gradient(m, Xb, Xp, np.asarray(Z), gradient == "rao_blackwell")
    for k in ("w", "a", "wbar", "abar"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert abs(got["loglik"] - want["loglik"]) < 1e-9 * abs(want["loglik"])


@pytest.mark.parametrize(
    "settings",
    [
        {"n_hidden": 256},
        {"n_hidden": 256, "centered": True, "optimizer": "rmsprop"},
        {"n_hidden": 20, "hidden": "binary", "centered": False},
    ],
    ids=["onehot", "onehot-centered-rmsprop", "binary"],
)
def test_rbm_pcd_fit_same_bits_on_1_2_and_3_threads(digits, restore_threads, settings):
    """PCD with minibatches of 500 (two blocks of rows) and 100 chains: the data and model terms,
    the optimizer's step in pieces of w and the table refresh, on 1, 2 and 3 threads."""
    X, _ = digits
    fits = []
    for t in (1, 2, 3):
        nemm.set_num_threads(t)
        r = RBM(gradient="pcd", batch_size=500, n_chains=100, n_epochs=1, random_state=0, **settings).fit(X)
        fits.append(
            {"w": r.w_, "a": r.a_, "abar": r.abar_, "ll": np.asarray(r.history_["loglik"], dtype=float)}
        )
    assert not np.allclose(fits[0]["w"], 0.0)
    for other in fits[1:]:
        assert_same_bits(fits[0], other)


def openmp_env_of(code: str, **env: str) -> str:
    """What libgomp reports of its settings (OMP_DISPLAY_ENV) in a fresh interpreter running `code`."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    clean.update(env, OMP_DISPLAY_ENV="VERBOSE")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout + proc.stderr


def test_import_limits_the_openmp_spin_and_leaves_the_environment_alone():
    out = openmp_env_of("import os, nemm; print('after:', os.environ.get('GOMP_SPINCOUNT'))")
    assert "GOMP_SPINCOUNT = '10000'" in out
    assert "after: None" in out  # programs started from the process keep their own defaults


@pytest.mark.parametrize(
    "env, want",
    [
        ({"GOMP_SPINCOUNT": "123"}, "GOMP_SPINCOUNT = '123'"),
        ({"OMP_WAIT_POLICY": "active"}, "GOMP_SPINCOUNT = '30000000000'"),
    ],
)
def test_import_keeps_the_users_openmp_wait_policy(env, want):
    assert want in openmp_env_of("import nemm", **env)
