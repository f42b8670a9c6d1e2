"""The equilibrium RBM (nemm.baselines.RBM) against brute-force enumeration on tiny systems.

ln Z, ln p, the exact gradient, the Gibbs chain's transition matrix and the PCD-k gradient are
compared with numpy enumerations over every (x, h); the centered step with its closed form;
then persistence, thread independence and a short fit on the embedded digits.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import expit, logsumexp

import nemm
from nemm import _core
from nemm.baselines import RBM

# Smallest p-value accepted by the chi-square tests: a false alarm is a one-in-a-million event.
P_MIN = 1e-6


# --------------------------------------------------------------------------- helpers


def all_bits(n: int) -> np.ndarray:
    """Every n-bit vector, row k holding the bits of k (bit b = (k >> b) & 1): the core's codes."""
    k = np.arange(2**n)
    return ((k[:, None] >> np.arange(n)) & 1).astype(float)


def hidden_matrix(L: int, hidden: str) -> np.ndarray:
    return np.eye(L) if hidden == "onehot" else all_bits(L)


class Brute:
    """Every quantity of the RBM from the full table -E(x, h) over all (x, h)."""

    def __init__(self, w: np.ndarray, a: np.ndarray, abar: np.ndarray, hidden: str) -> None:
        D, L = w.shape
        self.X = all_bits(D)
        self.H = hidden_matrix(L, hidden)
        self.negE = self.X @ w @ self.H.T + (self.X @ a)[:, None] + (self.H @ abar)[None, :]  # (2^D, S)
        self.log_Z = float(logsumexp(self.negE))
        self.log_p = logsumexp(self.negE, axis=1) - self.log_Z  # ln p(x) over every x
        self.pbar = np.exp(logsumexp(self.negE, axis=0) - self.log_Z)  # p(h)
        P_x_given_h = np.exp(self.negE - logsumexp(self.negE, axis=0, keepdims=True))  # columns sum to 1
        P_h_given_x = np.exp(self.negE - logsumexp(self.negE, axis=1, keepdims=True))  # rows sum to 1
        self.M = P_x_given_h.T @ P_h_given_x  # M[h', h] = sum_x P(x | h') P(h | x)

    def log_p_of(self, X: np.ndarray) -> np.ndarray:
        codes = X.astype(np.int64) @ (1 << np.arange(X.shape[1]))
        return self.log_p[codes]


def random_params(seed: int, D: int, L: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return scale * rng.normal(size=(D, L)), scale * rng.normal(size=D), scale * rng.normal(size=L)


def engine_of(w: np.ndarray, a: np.ndarray, abar: np.ndarray, hidden: str) -> _core.RBMEngine:
    e = _core.RBMEngine(w.shape[0], w.shape[1], hidden)
    e.set_params(w, a, abar, np.full(w.shape[0], 0.5))
    return e


def random_data(seed: int, N: int, D: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((N, D)) < rng.uniform(0.1, 0.9, D)).astype(np.uint8)


def prototype_data(seed: int, N: int, D: int, K: int = 3, flip: float = 0.1) -> np.ndarray:
    """Rows drawn from K random prototypes with bits flipped at rate ``flip``: something to learn."""
    rng = np.random.default_rng(seed)
    protos = rng.random((K, D)) < 0.5
    X = protos[rng.integers(K, size=N)] ^ (rng.random((N, D)) < flip)
    return X.astype(np.uint8)


def chi2_rows_pvalue(counts: np.ndarray, M: np.ndarray) -> float:
    """Combined Pearson chi-square over rows: row h' of counts is multinomial(n_h', M[h', .]).

    Cells with expectation below 5 are pooled into one cell per row.
    """
    tot, dof = 0.0, 0
    for obs, p in zip(counts, M):
        n = obs.sum()
        if n == 0:
            continue
        exp = n * p
        big = exp >= 5
        o = list(obs[big]) + ([obs[~big].sum()] if (~big).any() else [])
        e = list(exp[big]) + ([exp[~big].sum()] if (~big).any() else [])
        o, e = np.asarray(o, float), np.asarray(e, float)
        if len(o) < 2:
            continue
        if (e == 0).any() and (o[e == 0] > 0).any():
            return 0.0
        keep = e > 0
        tot += float(((o[keep] - e[keep]) ** 2 / e[keep]).sum())
        dof += int(keep.sum()) - 1
    return float(stats.chi2.sf(tot, max(dof, 1)))


# --------------------------------------------------------------------------- exact enumeration


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    D=st.integers(1, 8),
    L=st.integers(2, 5),
    hidden=st.sampled_from(["onehot", "binary"]),
    scale=st.sampled_from([0.1, 1.0, 4.0, 30.0]),
)
def test_log_partition_and_log_likelihood_match_brute_force(seed, D, L, hidden, scale):
    w, a, abar = random_params(seed, D, L, scale)
    ex = Brute(w, a, abar, hidden)
    rbm = RBM.from_params(w, a, abar, hidden=hidden)
    tol = 1e-9 * max(1.0, abs(ex.log_Z))
    assert abs(rbm.log_partition() - ex.log_Z) <= tol
    X = all_bits(D).astype(np.uint8)
    np.testing.assert_allclose(
        rbm.score_samples(X), ex.log_p, rtol=0, atol=1e-9 * max(1.0, np.abs(ex.log_p).max())
    )
    # p(x) sums to one over every x (a log-domain sum: no underflow even at scale 30).
    assert abs(logsumexp(rbm.score_samples(X))) < 1e-9 * max(1.0, abs(ex.log_Z))


def test_enumeration_in_many_blocks_matches_brute_force():
    # 2^9 binary states: the enumeration runs in 8 blocks of Gray-code walks.
    w, a, abar = random_params(3, 6, 9, 1.2)
    ex = Brute(w, a, abar, "binary")
    rbm = RBM.from_params(w, a, abar, hidden="binary")
    assert abs(rbm.log_partition() - ex.log_Z) < 1e-10 * abs(ex.log_Z)
    X = random_data(1, 50, 6)
    np.testing.assert_allclose(rbm.score_samples(X), ex.log_p_of(X), rtol=0, atol=1e-10 * abs(ex.log_Z))


@pytest.mark.parametrize("hidden,L", [("onehot", 3), ("binary", 3), ("binary", 8)])
def test_exact_gradient_matches_finite_differences(hidden, L):
    D = 5
    w, a, abar = random_params(11, D, L, 0.8)
    X = random_data(2, 300, D)  # 300 rows: the data term runs in two blocks
    g = engine_of(w, a, abar, hidden).exact_gradient(X)

    def mean_log_p(w_, a_, abar_):
        return float(engine_of(w_, a_, abar_, hidden).log_likelihood(X).mean())

    eps = 1e-5
    params = {"w": w, "a": a, "abar": abar}
    for name, p in params.items():
        fd = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            up = {k: v.copy() for k, v in params.items()}
            dn = {k: v.copy() for k, v in params.items()}
            up[name][idx] += eps
            dn[name][idx] -= eps
            fd[idx] = (
                mean_log_p(up["w"], up["a"], up["abar"]) - mean_log_p(dn["w"], dn["a"], dn["abar"])
            ) / (2 * eps)
        np.testing.assert_allclose(g[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)
    assert abs(g["loglik"] - mean_log_p(w, a, abar)) < 1e-10


def test_gradient_of_matches_the_core_and_loglik_is_the_exact_mean():
    w, a, abar = random_params(5, 4, 3, 1.0)
    X = random_data(6, 40, 4)
    rbm = RBM.from_params(w, a, abar, hidden="binary")
    g = rbm.gradient_of(X)
    ex = Brute(w, a, abar, "binary")
    # Closed form from the brute-force table: data term minus model term.
    H = ex.H
    negE_x = X.astype(float) @ w @ H.T + (H @ abar)[None, :]
    q = np.exp(negE_x - logsumexp(negE_x, axis=1, keepdims=True)) @ H  # E[h | x]
    mu = expit(a[:, None] + w @ H.T)  # D x S
    gw = X.T @ q / len(X) - (mu * ex.pbar) @ H
    ga = X.mean(axis=0) - mu @ ex.pbar
    gh = q.mean(axis=0) - H.T @ ex.pbar
    np.testing.assert_allclose(g["w"], gw, atol=1e-12)
    np.testing.assert_allclose(g["a"], ga, atol=1e-12)
    np.testing.assert_allclose(g["abar"], gh, atol=1e-12)


# --------------------------------------------------------------------------- the Gibbs chain


@pytest.mark.parametrize("hidden,L", [("onehot", 4), ("binary", 3)])
def test_gibbs_transitions_match_exact_M_which_obeys_detailed_balance(hidden, L):
    D = 6
    w, a, abar = random_params(21, D, L, 0.7)
    ex = Brute(w, a, abar, hidden)
    # The exact M of an RBM's Gibbs chain is reversible with respect to p(h) ...
    flux = ex.pbar[:, None] * ex.M
    np.testing.assert_allclose(flux, flux.T, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ex.pbar @ ex.M, ex.pbar, atol=1e-14)
    # ... and the engine's chain counts transitions with exactly that M.
    rbm = RBM.from_params(w, a, abar, hidden=hidden, random_state=4)
    traj = rbm.hidden_trajectory(50_000, n_chains=4, burn_in=50, codes=True)
    S = ex.M.shape[0]
    counts = _core.count_transitions(traj.astype(np.uint64), S)
    assert chi2_rows_pvalue(counts, ex.M) > P_MIN
    # A wrong M is rejected by the same test: that of one hidden bias shifted by 0.3.
    wrong = Brute(w, a, abar + 0.3 * (np.arange(L) == 0), hidden)
    assert chi2_rows_pvalue(counts, wrong.M) < P_MIN


def test_sample_and_trajectory_conventions_follow_the_machine():
    w, a, abar = random_params(8, 5, 3, 0.5)
    rbm = RBM.from_params(w, a, abar, hidden="binary", random_state=1)
    X, Z = rbm.sample(20, n_chains=4, return_hidden=True)
    assert X.shape == (20, 5) and X.dtype == np.uint8 and Z.shape == (20, 3)
    bits = rbm.hidden_trajectory(30, seed=2)
    codes = rbm.hidden_trajectory(30, seed=2, codes=True)
    assert bits.shape == (30, 3) and codes.shape == (30,)
    np.testing.assert_array_equal(bits.astype(np.int64) @ (1 << np.arange(3)), codes)
    assert rbm.hidden_trajectory(10, n_chains=3).shape == (3, 10, 3)


# --------------------------------------------------------------------------- PCD


@pytest.mark.parametrize("hidden", ["onehot", "binary"])
def test_pcd_gradient_matches_exact_within_its_noise(hidden):
    D, L = 6, 3
    w, a, abar = random_params(31, D, L, 0.6)
    X = random_data(7, 200, D)
    e = engine_of(w, a, abar, hidden)
    exact = e.exact_gradient(X)
    e.reset_chains(256, 99)
    e.pcd_gradient(X, 50)  # burn in
    est = [e.pcd_gradient(X, 3) for _ in range(60)]
    for name in ("w", "a", "abar"):
        G = np.array([g[name] for g in est])
        mean, se = G.mean(axis=0), G.std(axis=0, ddof=1) / math.sqrt(len(G))
        # Successive estimates are only weakly correlated (3 Gibbs steps apart): 6 standard errors.
        assert (np.abs(mean - exact[name]) <= 6 * se + 1e-12).all(), name
        # The noise is real (the test has power): single estimates differ from the exact value.
        assert np.abs(G[0] - exact[name]).max() > 1e-6


def test_pcd_training_gets_most_of_the_exact_training_gain():
    X = prototype_data(3, 400, 8)
    exact = RBM(3, "binary", n_epochs=60, batch_size=50, random_state=0).fit(X).score(X)
    pcd = RBM(
        3, "binary", gradient="pcd", pcd_steps=2, n_chains=64, n_epochs=60, batch_size=50, random_state=0
    ).fit(X)
    init = RBM(3, "binary", n_epochs=1, learning_rate=1e-9, random_state=0).fit(X).score(X)
    assert pcd.gradient_ == "pcd"
    # Measured: init -5.00, exact -3.92, PCD -3.98 to -4.16 over seeds (its noise costs a little).
    assert exact > init + 0.5
    assert pcd.score(X) > init + 0.7 * (exact - init)


# --------------------------------------------------------------------------- training steps


@pytest.mark.parametrize("centered", [False, True])
def test_one_step_is_gradient_ascent_in_the_stated_coordinates(centered):
    # RMSprop with rho = 0 and eps >> |g| takes the step (lr / eps) g: plain gradient ascent.
    D, L = 5, 3
    w, a, abar = random_params(41, D, L, 0.5)
    X = random_data(9, 120, D)
    xbar = X.mean(axis=0)
    e = _core.RBMEngine(D, L, "onehot")
    e.set_params(w, a, abar, xbar)
    e.set_data(X)
    lr, eps = 1.0, 1e5
    e.set_optimizer("rmsprop", lr, 0.9, 0.999, 0.0, eps)
    g = engine_of(w, a, abar, "onehot").exact_gradient(X)
    e.train_steps(np.arange(len(X)), np.array([len(X)]), "exact", 1, centered, 0.01)
    gw, ga, gh = g["w"], g["a"], g["abar"]
    if centered:
        # lambda = E[h | x] averaged over the data at the first step; mu = xbar.
        negE_x = X.astype(float) @ w + abar
        lam = np.exp(negE_x - logsumexp(negE_x, axis=1, keepdims=True)).mean(axis=0)
        GW = gw - np.outer(xbar, gh) - np.outer(ga, lam)
        dw, db, dc = GW * lr / eps, ga * lr / eps, gh * lr / eps
        expect = (w + dw, a + db - dw @ lam, abar + dc - dw.T @ xbar)
    else:
        expect = (w + gw * lr / eps, a + ga * lr / eps, abar + gh * lr / eps)
    for got, want, base in zip((e.w, e.a, e.abar), expect, (w, a, abar)):
        np.testing.assert_allclose(got - base, want - base, rtol=1e-3, atol=1e-14)


@pytest.mark.parametrize("optimizer,centered", [("adam", False), ("adam", True), ("rmsprop", False)])
def test_training_raises_the_exact_likelihood(optimizer, centered):
    X = prototype_data(12, 300, 10)
    rbm = RBM(
        3,
        "onehot",
        optimizer=optimizer,
        centered=centered,
        learning_rate=0.02,
        n_epochs=40,
        batch_size=30,
        random_state=2,
    )
    init = RBM(3, "onehot", n_epochs=1, learning_rate=1e-9, random_state=2).fit(X).score(X)
    rbm.fit(X)
    assert rbm.score(X) > init + 0.3
    assert len(rbm.history_["loglik"]) == 40
    # The history is the exact ln p of the minibatches: close to the final training score.
    assert abs(rbm.history_["loglik"][-1] - rbm.score(X)) < 0.2


def test_partial_fit_continues_and_fit_restarts():
    X = random_data(13, 200, 6)
    a = RBM(2, "onehot", n_epochs=4, random_state=5).fit(X)
    b = RBM(2, "onehot", n_epochs=2, random_state=5).fit(X).partial_fit(X, n_epochs=2)
    np.testing.assert_array_equal(a.w_, b.w_)
    assert b.epochs_done_ == 4 and b.history_["epoch"] == [0, 1, 2, 3]
    c = RBM(2, "onehot", n_epochs=4, random_state=6).fit(X)
    assert not np.array_equal(a.w_, c.w_)


# --------------------------------------------------------------------------- input checks


def test_bad_input_is_refused_with_a_clear_message():
    X = random_data(1, 30, 4)
    with pytest.raises(RuntimeError, match="no parameters"):
        RBM().score(X)
    with pytest.raises(ValueError, match="hidden"):
        RBM(hidden="potts").fit(X)
    with pytest.raises(ValueError, match="optimizer"):
        RBM(optimizer="sgd").fit(X)
    with pytest.raises(ValueError, match="gradient"):
        RBM(gradient="cd").fit(X)
    with pytest.raises(ValueError, match="at most 65536"):
        RBM(20, "binary", gradient="exact").fit(X)
    with pytest.raises(ValueError, match="n_hidden"):
        RBM(1, "onehot").fit(X)
    with pytest.raises(ValueError, match="only 0 and 1"):
        RBM(2).fit(X * 2)
    rbm = RBM(2, n_epochs=1).fit(X)
    with pytest.raises(ValueError, match="features"):
        rbm.score(X[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        RBM.from_params(np.full((4, 2), np.nan), np.zeros(4), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        RBM.from_params(np.zeros((4, 2)), np.zeros(3), np.zeros(2))
    big = RBM.from_params(np.zeros((4, 30)), np.zeros(4), np.zeros(30), hidden="binary")
    with pytest.raises(ValueError, match="enumerates"):
        big.score(X)
    assert RBM(30, "binary").gradient_ == "pcd" and RBM(16, "binary").gradient_ == "exact"


# --------------------------------------------------------------------------- persistence, threads


def test_save_load_round_trip(tmp_path):
    X = random_data(4, 100, 7)
    rbm = RBM(3, "binary", centered=True, n_epochs=3, random_state=8).fit(X)
    path = rbm.save(tmp_path / "rbm")
    assert path.suffix == ".npz"
    back = nemm.load(path)
    assert isinstance(back, RBM)
    for name in ("w_", "a_", "abar_", "xbar_"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rbm, name))
    assert back.get_params() == rbm.get_params()
    assert back.history_ == rbm.history_ and back.epochs_done_ == 3
    np.testing.assert_array_equal(back.score_samples(X), rbm.score_samples(X))
    np.testing.assert_array_equal(back.sample(5, seed=1), rbm.sample(5, seed=1))
    # A machine file still loads as a machine.
    m = nemm.Machine(2, n_epochs=1, steps_per_epoch=2, chain_steps=2, random_state=0).fit(X)
    assert isinstance(nemm.load(m.save(tmp_path / "machine.npz")), nemm.Machine)


def test_load_refuses_a_wrong_version(tmp_path):
    import json

    X = random_data(4, 50, 5)
    path = RBM(2, n_epochs=1, random_state=0).fit(X).save(tmp_path / "rbm.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["metadata"][()]))
    meta["format_version"] = 99
    arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="version 99"):
        nemm.load(path)


_THREADS_SCRIPT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from nemm import _core
    from nemm.baselines import RBM

    rng = np.random.default_rng(0)
    X = (rng.random((1500, 10)) < rng.uniform(0.1, 0.9, 10)).astype(np.uint8)
    h = hashlib.sha256()
    for kw in (dict(n_hidden=4), dict(n_hidden=8, hidden="binary", centered=True),
               dict(n_hidden=3, hidden="binary", gradient="pcd", n_chains=8, pcd_steps=2)):
        m = RBM(**kw, n_epochs=3, batch_size=600, random_state=7).fit(X)
        S, Z = m.sample(64, n_chains=4, seed=3, return_hidden=True)
        traj = m.hidden_trajectory(300, seed=5, n_chains=4, codes=True)
        hist = np.asarray(m.history_["loglik"], dtype=float)
        for arr in (m.w_, m.a_, m.abar_, hist, S, Z, traj, m.score_samples(X), m.gradient_of(X)["w"]):
            h.update(np.ascontiguousarray(arr).tobytes())
    print(_core.max_threads(), h.hexdigest())
    """
)


def _run_with_threads(n: int) -> tuple[int, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(n))
    out = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    threads, digest = out.stdout.split()
    return int(threads), digest


def test_same_numbers_with_one_and_two_threads():
    t1, h1 = _run_with_threads(1)
    t2, h2 = _run_with_threads(2)
    if nemm.openmp_enabled():
        assert (t1, t2) == (1, 2)
    assert h1 == h2


# --------------------------------------------------------------------------- the digits


def test_onehot_rbm_learns_the_digits(digits):
    X, _ = digits
    rbm = RBM(6, "onehot", random_state=0).fit(X)
    # Measured -146.9 (seed 0); the EM ceiling of this family is about -146.2.
    assert rbm.score(X) > -150.0
    assert rbm.history_["loglik"][-1] > -150.5


# --------------------------------------------------------------------------- exact resume, pickling, settings


def _same_state(a: RBM, b: RBM) -> None:
    for name in ("w_", "a_", "abar_", "xbar_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.history_["loglik"] == b.history_["loglik"] and a.epochs_done_ == b.epochs_done_


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_hidden=3),
        dict(n_hidden=3, hidden="binary", centered=True, optimizer="rmsprop"),
        dict(n_hidden=2, hidden="binary", gradient="pcd", n_chains=6, pcd_steps=2),
    ],
    ids=["adam", "centered-rmsprop", "pcd"],
)
@pytest.mark.parametrize("how", ["save", "pickle", "deepcopy"])
def test_two_epochs_round_trip_two_epochs_equals_four_epochs(kw, how, tmp_path):
    import copy
    import pickle

    X = random_data(5, 90, 11)
    straight = RBM(**kw, n_epochs=4, batch_size=16, random_state=3).fit(X)
    first = RBM(**kw, n_epochs=2, batch_size=16, random_state=3).fit(X)
    if how == "save":
        back = nemm.load(first.save(tmp_path / "half.npz"))
    elif how == "pickle":
        back = pickle.loads(pickle.dumps(first))
    else:
        back = copy.deepcopy(first)
    assert back is not first and back._engine is not first._engine
    _same_state(back, first)
    back.partial_fit(X, n_epochs=2)
    first.partial_fit(X, n_epochs=2)
    _same_state(back, straight)
    _same_state(first, straight)
    # A fresh optimizer gives other numbers: the test can tell a lost state.
    fresh = RBM.from_params(back.w_, back.a_, back.abar_, back.xbar_, **kw)
    fresh.partial_fit(X, n_epochs=1)
    assert not np.array_equal(fresh.w_, straight.w_)


def test_version_1_file_loads_with_a_warning_and_no_training_state(tmp_path):
    import json

    X = random_data(4, 50, 5)
    rbm = RBM(2, n_epochs=2, random_state=0).fit(X)
    path = rbm.save(tmp_path / "rbm.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("train/")}
    meta = json.loads(str(arrays["metadata"][()]))
    assert meta["format_version"] == 2 and "train" in meta
    meta["format_version"] = 1
    del meta["train"]
    arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="version-1 RBM file.*cannot resume exactly"):
        back = nemm.load(path)
    np.testing.assert_array_equal(back.w_, rbm.w_)
    assert back.epochs_done_ == 2
    back.partial_fit(X)  # starts a fresh optimizer, and works
    assert back.epochs_done_ == 3


def test_corrupt_training_state_is_refused(tmp_path):
    X = random_data(4, 50, 5)
    good = RBM(2, n_epochs=1, random_state=0).fit(X).save(tmp_path / "good.npz")
    path = tmp_path / "rbm.npz"
    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["train/vw"] = -np.abs(arrays["train/vw"]) - 1.0
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="invalid training state.*non-negative"):
        nemm.load(path)
    del arrays["train/mw"]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"incomplete training state \(missing \['mw'\]\)"):
        nemm.load(path)
    import json

    with np.load(good) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["metadata"][()]))
    meta["train"]["order_rng"] = None
    arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="invalid training state.*order_rng"):
        nemm.load(path)


def test_unfitted_pickle_keeps_the_settings_and_no_fitted_attributes():
    import pickle

    r = pickle.loads(pickle.dumps(RBM(4, "binary", learning_rate=np.float32(0.05), random_state=np.int64(2))))
    assert r.n_hidden == 4 and r.learning_rate == np.float32(0.05) and r.random_state == 2
    assert not [k for k in vars(r) if k.endswith("_") and not k.startswith("__")]
    with pytest.raises(RuntimeError, match="no parameters"):
        r.score(random_data(0, 5, 4))


def test_numpy_scalar_settings_train_like_python_ones_and_save_as_python(tmp_path):
    import json

    X = random_data(2, 60, 5)
    py = RBM(
        3, "binary", learning_rate=0.05, n_epochs=2, batch_size=10, centered=True, beta1=0.8, random_state=4
    ).fit(X)
    npy = RBM(
        np.int64(3),
        np.str_("binary"),
        learning_rate=np.float64(0.05),
        n_epochs=np.int32(2),
        batch_size=np.uint16(10),
        centered=np.bool_(True),
        beta1=np.float64(0.8),
        random_state=np.int64(4),
    ).fit(X)
    _same_state(npy, py)
    assert type(npy.n_hidden) is np.int64 and type(npy.centered) is np.bool_  # fit rewrites no setting
    path = npy.save(tmp_path / "np.npz")
    with np.load(path) as npz:
        settings = json.loads(str(npz["metadata"][()]))["settings"]
    assert settings["n_hidden"] == 3 and settings["centered"] is True and settings["batch_size"] == 10
    assert nemm.load(path).get_params() == py.get_params()


@pytest.mark.parametrize(
    "setting, value, exc, match",
    [
        ("n_hidden", 2.0, TypeError, "n_hidden must be an integer"),
        ("n_hidden", True, TypeError, "n_hidden must be an integer"),
        ("n_hidden", 1, ValueError, "n_hidden must be at least 2"),
        ("hidden", 1, TypeError, "hidden must be a string"),
        ("optimizer", "sgd", ValueError, "optimizer must be one of"),
        ("learning_rate", "0.1", TypeError, "learning_rate must be a real number"),
        ("learning_rate", 0.0, ValueError, "learning_rate must be > 0"),
        ("learning_rate", float("nan"), ValueError, "learning_rate must be finite"),
        ("n_epochs", 0, ValueError, "n_epochs must be at least 1"),
        ("batch_size", 10.5, TypeError, "batch_size must be an integer"),
        ("centered", "yes", TypeError, "centered must be True or False"),
        ("centered", 1, TypeError, "centered must be True or False"),
        ("beta1", 1.0, ValueError, "beta1 must be < 1"),
        ("rho", -0.1, ValueError, "rho must be >= 0"),
        ("eps", 0, ValueError, "eps must be > 0"),
        ("random_state", -1, ValueError, "random_state must be at least 0"),
        ("random_state", 1.5, TypeError, "random_state must be an integer"),
        ("verbose", None, TypeError, "verbose must be True or False"),
    ],
)
def test_bad_settings_are_refused_at_fit_naming_the_setting(setting, value, exc, match):
    X = random_data(0, 20, 4)
    rbm = RBM(2, n_epochs=1).set_params(**{setting: value})  # stored as given
    assert getattr(rbm, setting) is value
    with pytest.raises(exc, match=match):
        rbm.fit(X)
    assert rbm._engine is None and not hasattr(rbm, "n_features_in_")
    with pytest.raises(exc, match=match):
        rbm.partial_fit(X)


def test_structure_changed_after_fit_is_refused():
    X = random_data(0, 30, 4)
    rbm = RBM(2, n_epochs=1, random_state=0).fit(X)
    rbm.set_params(n_hidden=3)
    with pytest.raises(RuntimeError, match="n_hidden were changed"):
        rbm.score(X)
    rbm.set_params(n_hidden=2)
    assert np.isfinite(rbm.score(X))


_CONCURRENT_SCRIPT = textwrap.dedent(
    """
    import threading
    import numpy as np
    from nemm.baselines import RBM

    rng = np.random.default_rng(0)
    X = (rng.random((200, 8)) < 0.4).astype(np.uint8)
    shared = RBM(3, "binary", gradient="pcd", n_chains=8, n_epochs=1, batch_size=20, random_state=1).fit(X)
    errors = []

    def work(i):
        try:
            for _ in range(3):
                shared.partial_fit(X, n_epochs=1)
                shared.score(X)
                shared.sample(8, burn_in=5, thin=1, seed=i)
                if i % 2:
                    shared.set_params(learning_rate=0.01 + 0.001 * i)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert shared.epochs_done_ == 1 + 6 * 3, shared.epochs_done_
    assert np.isfinite(shared.w_).all()
    print("ok", shared.epochs_done_)
    """
)


def test_concurrent_use_of_one_rbm_from_threads_is_serialized():
    # In a subprocess: a crash there fails this test instead of killing pytest.
    out = subprocess.run(
        [sys.executable, "-c", _CONCURRENT_SCRIPT], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "19"]


def test_step_profile_times_the_data_term_model_term_and_update():
    rng = np.random.default_rng(1)
    X = (rng.random((50, 20)) < 0.3).astype(np.uint8)
    r = RBM(3, hidden="binary", n_epochs=3, batch_size=10, random_state=0).partial_fit(X, n_epochs=1)
    r._engine.start_profiling()
    r.partial_fit(X, n_epochs=2)
    prof = r._engine.stop_profiling()
    assert set(prof) == {"data term", "model term", "update", "steps"}
    assert prof["steps"] == 2 * 5
    assert all(prof[k] > 0 for k in ("data term", "model term", "update"))
