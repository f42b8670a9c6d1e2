"""The compiled core (nemm._core, driven through Machine) against exact enumeration on tiny
systems (spec, "Exact answers for tests").

Samplers are compared with the exact M, pbar and p(x) of nemm.exact by chi-square tests
(transition counts given the current state are multinomial, so the per-row test is exact)
and by tolerances derived from the exact asymptotic variance of the chain. The gradient is
compared with a direct, loop-based evaluation of eqs. 16a-16d and 17 on the same recorded
chain, and one RMSprop training step with its closed form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import expit, logsumexp

from nemm import Machine, _core, approx_gradient
from nemm.exact import (
    exact_log_likelihood_gradient,
    exact_model,
    hidden_states,
    is_detailed_balance,
)
from nemm.exact import (
    log_A as exact_log_A,
)
from nemm.markov import entropy_production

# Smallest p-value accepted by the chi-square tests: a false alarm is a one-in-a-million event.
P_MIN = 1e-6


# --------------------------------------------------------------------------- helpers


def random_params(seed: int, D: int, L: int, scale: float = 1.5, tied: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = dict(
        w=scale * rng.normal(size=(D, L)),
        a=scale * rng.normal(size=D),
        wbar=scale * rng.normal(size=(L, D)),
        abar=scale * rng.normal(size=L),
        xbar=rng.uniform(0.05, 0.95, size=D),
    )
    if tied:
        p["wbar"] = p["w"].T.copy()
    return p


def make_machine(p: dict[str, np.ndarray], **settings) -> Machine:
    wbar = None if settings.get("tied") else p["wbar"]
    return Machine.from_params(p["w"], p["a"], wbar, p["abar"], p["xbar"], random_state=0, **settings)


def exact_of(m: Machine):
    """Exact enumeration of a machine, read back from its engine (so tied means wbar = w.T)."""
    return exact_model(
        m.w_,
        m.a_,
        m.wbar_,
        m.abar_,
        m.xbar_,
        hidden=m.hidden,
        normalization=m.normalization,
        centered=m.centered,
    )


def chi2_stat(obs: np.ndarray, probs: np.ndarray) -> tuple[float, int]:
    """Pearson chi-square of counts against probabilities, cells with expectation < 5 pooled.

    Returns (statistic, degrees of freedom). A count in a cell of probability exactly 0 is
    an impossible event and gives an infinite statistic.
    """
    obs = np.asarray(obs, dtype=float)
    probs = np.asarray(probs, dtype=float)
    n = obs.sum()
    if n == 0:
        return 0.0, 0
    if (obs[probs <= 0] > 0).any():
        return math.inf, 1
    exp = probs * n
    big = exp >= 5
    o, e = list(obs[big]), list(exp[big])
    if (~big).any():
        po, pe = obs[~big].sum(), exp[~big].sum()
        if pe >= 5 or not o:
            o.append(po)
            e.append(pe)
        else:  # merge the small pool into the smallest big cell
            k = int(np.argmin(e))
            o[k] += po
            e[k] += pe
    o_arr, e_arr = np.array(o), np.array(e)
    keep = e_arr > 0
    return float(((o_arr[keep] - e_arr[keep]) ** 2 / e_arr[keep]).sum()), int(keep.sum()) - 1


def chi2_pvalue(obs: np.ndarray, probs: np.ndarray) -> float:
    chi, dof = chi2_stat(obs, probs)
    if math.isinf(chi):
        return 0.0
    if dof <= 0:
        return 1.0
    return float(stats.chi2.sf(chi, dof))


def transitions_pvalue(counts: np.ndarray, M: np.ndarray) -> float:
    """Combined chi-square over all rows: row z' of counts is multinomial(n_z', M[z', .])."""
    tot, dof = 0.0, 0
    for i in range(M.shape[0]):
        chi, d = chi2_stat(counts[i], M[i])
        tot += chi
        dof += d
    if math.isinf(tot):
        return 0.0
    return float(stats.chi2.sf(tot, max(dof, 1)))


def occupancy_asymptotic_var(M: np.ndarray, pbar: np.ndarray) -> np.ndarray:
    """sigma_i^2 = lim n Var(fraction of time in i) = pbar_i (2 Z_ii - 1 - pbar_i),
    Z = (I - M + 1 pbar)^-1 the fundamental matrix of the chain."""
    S = M.shape[0]
    Z = np.linalg.inv(np.eye(S) - M + np.outer(np.ones(S), pbar))
    return np.maximum(pbar * (2 * np.diag(Z) - 1 - pbar), 0.0)


def burn_in_for(M: np.ndarray, tol: float = 1e-7) -> int:
    """Steps after which the distance to stationarity, ~|lambda_2|^t, is below tol."""
    lam = np.sort(np.abs(np.linalg.eigvals(M)))[::-1]
    l2 = lam[1] if lam.size > 1 else 0.0
    if l2 < 1e-12:
        return 5
    return int(min(2000, math.ceil(math.log(tol) / math.log(l2)) + 10))


def codes_of_bits(B: np.ndarray) -> np.ndarray:
    return B.astype(np.int64) @ (np.int64(1) << np.arange(B.shape[1], dtype=np.int64))


# Sampler configurations: (hidden, normalization, centered, tied, D, L, seed). They cover
# every kernel, D across the 8-lane padding, and a one-hot layer wider than 8 lanes.
SAMPLER_CASES = [
    ("onehot", "softmax", True, False, 7, 3, 1),
    ("onehot", "softmax", False, False, 6, 4, 2),
    ("onehot", "sigmoid", True, False, 7, 3, 3),
    ("onehot", "sigmoid", False, False, 9, 3, 4),
    ("onehot", "softmax", True, False, 5, 11, 5),
    ("binary", "softmax", True, False, 7, 3, 6),
    ("binary", "softmax", False, False, 9, 2, 7),
    ("onehot", "softmax", True, True, 6, 3, 8),
    ("binary", "softmax", True, True, 8, 3, 9),
    ("binary", "softmax", False, True, 6, 2, 10),
]
CASE_IDS = [
    f"{h}-{n}-{'c' if c else 'u'}{'-tied' if t else ''}-D{D}-L{L}" for h, n, c, t, D, L, _ in SAMPLER_CASES
]


@pytest.fixture(params=SAMPLER_CASES, ids=CASE_IDS)
def case(request):
    hidden, norm, centered, tied, D, L, seed = request.param
    p = random_params(seed, D, L, tied=tied)
    m = make_machine(p, hidden=hidden, normalization=norm, centered=centered, tied=tied)
    return m, exact_of(m)


# --------------------------------------------------------------------------- the exact reference itself


def test_exact_reference_sees_the_kernel_settings():
    # Guard: the sampler cases must actually differ between settings, or the tests below
    # could not tell a wrong kernel from the right one.
    p = random_params(1, 7, 3)
    ms = [
        exact_model(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], "onehot", n, c).M
        for n in ("softmax", "sigmoid")
        for c in (True, False)
    ]
    for i in range(len(ms)):
        for j in range(i):
            assert np.abs(ms[i] - ms[j]).max() > 0.02


# --------------------------------------------------------------------------- chain and samplers


def test_transition_counts_match_exact_M(case):
    m, ex = case
    C, T = 4, 50_000
    traj = m.hidden_trajectory(T, seed=11, n_chains=C, codes=True)
    assert traj.shape == (C, T) and traj.min() >= 0 and traj.max() < m.n_states
    counts = _core.count_transitions(traj.astype(np.uint64).reshape(C, T), m.n_states)
    assert counts.sum() == C * (T - 1)
    assert transitions_pvalue(counts, ex.M) > P_MIN
    # Entrywise, with a tolerance set by the number of samples in each row.
    n_row = counts.sum(axis=1, keepdims=True)
    M_emp = counts / np.maximum(n_row, 1)
    tol = 5 * np.sqrt(ex.M * (1 - ex.M) / np.maximum(n_row, 1)) + 5.0 / np.maximum(n_row, 1)
    assert (np.abs(M_emp - ex.M) <= tol).all()


def test_occupancy_matches_exact_pbar(case):
    m, ex = case
    C, T = 4, 50_000
    traj = m.hidden_trajectory(T, seed=12, n_chains=C, codes=True)
    occ = np.bincount(traj.ravel(), minlength=m.n_states) / traj.size
    sigma = np.sqrt(occupancy_asymptotic_var(ex.M, ex.pbar) / traj.size)
    assert (np.abs(occ - ex.pbar) <= 5 * sigma + 1e-12).all()
    # The Machine-level occupancy estimate is the same thing.
    states, p = m.occupancy(T, seed=13, n_chains=C)
    codes = states if m.hidden == "onehot" else codes_of_bits(states)
    full = np.zeros(m.n_states)
    full[codes] = p
    assert np.isclose(full.sum(), 1.0)
    assert (np.abs(full - ex.pbar) <= 5 * sigma + 1e-12).all()


def test_independent_chains_sample_exact_pbar(case):
    # One state per fresh chain after a burn-in set by the exact spectral gap: i.i.d. draws.
    m, ex = case
    n = 20_000
    traj = m.hidden_trajectory(1, seed=14, n_chains=n, burn_in=burn_in_for(ex.M), codes=True)
    counts = np.bincount(traj.ravel(), minlength=m.n_states)
    assert chi2_pvalue(counts, ex.pbar) > P_MIN


def test_visible_sampler_matches_exact_px(case):
    m, ex = case
    n = 30_000
    X, Z = m.sample(n, n_chains=n, burn_in=burn_in_for(ex.M), thin=1, seed=15, return_hidden=True)
    assert X.shape == (n, m.n_visible_) and X.dtype == np.uint8
    D = m.n_visible_
    x_codes = codes_of_bits(X)
    counts = np.bincount(x_codes, minlength=2**D)
    assert chi2_pvalue(counts, ex.px) > P_MIN
    tv = 0.5 * np.abs(counts / n - ex.px).sum()
    assert tv < 4 * math.sqrt(2**D / n)
    # The hidden state returned beside each sample is a stationary draw too ...
    z_codes = Z if m.hidden == "onehot" else codes_of_bits(Z)
    assert chi2_pvalue(np.bincount(z_codes, minlength=m.n_states), ex.pbar) > P_MIN
    # ... and x given that z is distributed as A(z, .): test the joint against pbar(z) A(z, x).
    joint = (ex.pbar[:, None] * ex.A).ravel()
    assert chi2_pvalue(np.bincount(z_codes * 2**D + x_codes, minlength=joint.size), joint) > P_MIN


def test_sampler_tests_detect_a_wrong_model():
    # Power check of the harness: the same counts are rejected against a perturbed kernel.
    p = random_params(1, 7, 3)
    m = make_machine(p)
    wrong = dict(p, abar=p["abar"] + np.array([0.3, 0.0, 0.0]))
    ex_wrong = exact_model(wrong["w"], wrong["a"], wrong["wbar"], wrong["abar"], wrong["xbar"])
    traj = m.hidden_trajectory(50_000, seed=11, n_chains=4, codes=True)
    counts = _core.count_transitions(traj.astype(np.uint64), m.n_states)
    assert transitions_pvalue(counts, ex_wrong.M) < 1e-12


@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    spec=st.sampled_from([("onehot", "softmax"), ("onehot", "sigmoid"), ("binary", "softmax")]),
    centered=st.booleans(),
    tied=st.booleans(),
    D=st.integers(1, 10),
    L=st.integers(2, 4),
    scale=st.floats(0.3, 2.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_transition_counts_match_exact_M_random_systems(spec, centered, tied, D, L, scale, seed):
    hidden, norm = spec
    tied = tied and norm == "softmax"
    if hidden == "binary":
        L = min(L, 3)
    p = random_params(seed, D, L, scale, tied=tied)
    m = make_machine(p, hidden=hidden, normalization=norm, centered=centered, tied=tied)
    ex = exact_of(m)
    traj = m.hidden_trajectory(20_000, seed=seed % 1000, n_chains=2, codes=True)
    counts = _core.count_transitions(traj.astype(np.uint64), m.n_states)
    assert transitions_pvalue(counts, ex.M) > P_MIN


def test_sample_and_hidden_trajectory_walk_the_same_chain():
    # Same seed, same chain: sample() with thin k records z at steps burn_in + k - 1, 2k - 1, ...
    for hidden in ("onehot", "binary"):
        p = random_params(2, 7, 3)
        m = make_machine(p, hidden=hidden)
        traj = m.hidden_trajectory(60, seed=5, n_chains=2, burn_in=10, codes=True)
        for thin in (1, 3):
            n = 60 // thin
            _, Z = m.sample(2 * n, n_chains=2, burn_in=10, thin=thin, seed=5, return_hidden=True)
            z = Z if hidden == "onehot" else codes_of_bits(Z)
            np.testing.assert_array_equal(z.reshape(2, n), traj[:, thin - 1 :: thin][:, :n])


def test_recorded_chain_starts_from_given_states_and_continues():
    p = random_params(3, 9, 4)
    m = make_machine(p)
    e = m._engine
    init = np.random.default_rng(0).integers(0, 2, size=(3, 9)).astype(np.uint8)
    e.reset_chains(3, 42, init)
    np.testing.assert_array_equal(e.chain_states(), init)
    Xp, Z = e.run_chains(5)
    assert Xp.shape == (15, 9) and Z.shape == (15,)
    np.testing.assert_array_equal(Xp[[0, 5, 10]], init)  # chain-major: row c * T + t
    # a second run continues where the first stopped: same as one run of double length
    Xp2, Z2 = e.run_chains(5)
    e.reset_chains(3, 42, init)
    Xp_all, Z_all = e.run_chains(10)
    np.testing.assert_array_equal(Xp_all.reshape(3, 10, 9)[:, 5:], Xp2.reshape(3, 5, 9))
    np.testing.assert_array_equal(Z_all.reshape(3, 10)[:, :5], Z.reshape(3, 5))
    np.testing.assert_array_equal(Z_all.reshape(3, 10)[:, 5:], Z2.reshape(3, 5))
    with pytest.raises(ValueError, match="n_chains"):
        e.reset_chains(2, 42, init)


def test_count_transitions_matches_python_counting():
    from nemm.markov import transition_counts, transition_counts_sparse

    rng = np.random.default_rng(0)
    traj = rng.integers(0, 5, size=(3, 400)).astype(np.uint64)
    dense = _core.count_transitions(traj, 5)
    want = np.zeros((5, 5), dtype=np.int64)
    for row in traj:  # no transition across chains
        for a, b in zip(row[:-1], row[1:]):
            want[int(a), int(b)] += 1
    np.testing.assert_array_equal(dense, want)
    np.testing.assert_array_equal(transition_counts(traj, 5), want)
    np.testing.assert_array_equal(
        transition_counts(traj[0], 5),
        sum(
            np.eye(5, dtype=np.int64)[int(a)][:, None] * np.eye(5, dtype=np.int64)[int(b)][None, :]
            for a, b in zip(traj[0][:-1], traj[0][1:])
        ),
    )
    big = (traj.astype(np.int64) * 1_000_003).astype(np.uint64)  # codes far beyond a dense matrix
    f, t_, c = transition_counts_sparse(big)
    assert c.sum() == want.sum()
    np.testing.assert_array_equal(f % 1_000_003, 0)
    rebuilt = np.zeros((5, 5), dtype=np.int64)
    rebuilt[(f // 1_000_003).astype(np.int64), (t_ // 1_000_003).astype(np.int64)] = c
    np.testing.assert_array_equal(rebuilt, want)
    frm, to, cnt = _core.count_transitions_sparse(traj)
    sparse = np.zeros((5, 5), dtype=np.int64)
    sparse[np.asarray(frm, dtype=np.int64), np.asarray(to, dtype=np.int64)] = cnt
    np.testing.assert_array_equal(sparse, dense)
    with pytest.raises(ValueError, match="range"):
        _core.count_transitions(traj, 4)


# --------------------------------------------------------------------------- likelihood


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    hidden=st.sampled_from(["onehot", "binary"]),
    D=st.integers(1, 10),
    L=st.integers(1, 4),
    scale=st.floats(0.1, 20.0),
)
def test_log_A_matches_exact(seed, hidden, D, L, scale):
    if hidden == "onehot":
        L = max(L, 2)
    p = random_params(seed, D, L, scale)
    m = make_machine(p, hidden=hidden)
    rng = np.random.default_rng(seed + 1)
    X = rng.integers(0, 2, size=(7, D)).astype(np.uint8)
    if hidden == "onehot":
        states = np.arange(L)
        Z = np.eye(L)
    else:
        Z = hidden_states(L, "binary")
        states = Z.astype(np.uint8)
    got = m.log_A(X, states)
    want = exact_log_A(p["w"], p["a"], Z, X)
    assert got.shape == (7, Z.shape[0])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("hidden", ["onehot", "binary"])
def test_log_A_extreme_fields_and_large_D(hidden):
    # Fields across the whole double range (|h| up to ~1e3, past exp underflow at -708) and
    # D = 784: the log-domain normalizer sum_i softplus(h_i) must stay exact to rounding.
    rng = np.random.default_rng(1)
    D, L = 784, 3
    w = rng.choice([-1000.0, -750.0, -707.0, -30.0, -1e-3, 0.0, 1e-3, 2.0, 40.0, 709.0, 800.0], size=(D, L))
    a = rng.normal(size=D) * 5
    m = Machine.from_params(w, a, np.zeros((L, D)), np.zeros(L), hidden=hidden)
    X = (rng.random((6, D)) < 0.5).astype(np.uint8)
    Z = np.eye(L) if hidden == "onehot" else hidden_states(L, "binary")
    states = np.arange(L) if hidden == "onehot" else Z.astype(np.uint8)
    got = m.log_A(X, states)
    want = exact_log_A(w, a, Z, X)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    # the most probable image of every state has log A equal to -sum_i ln(1 + e^{-|h_i|})
    H = Z @ w.T + a
    Xbest = (H > 0).astype(np.uint8)
    for k in range(Z.shape[0]):
        top = m.log_A(Xbest[k : k + 1], states[k : k + 1])[0, 0]
        assert abs(top + np.log1p(np.exp(-np.abs(H[k]))).sum()) < 1e-9


def test_score_samples_with_exact_pbar(case):
    m, ex = case
    got = m.score_samples(ex.X, pbar=ex.pbar)
    np.testing.assert_allclose(got, ex.log_px, rtol=0, atol=1e-9)
    # probabilities of all 2^D states sum to one
    assert abs(np.exp(got).sum() - 1.0) < 1e-9


def test_score_samples_with_estimated_occupancy(case):
    m, ex = case
    n_steps = 200_000
    got = m.score_samples(ex.X, n_steps=n_steps)
    # p_e(x) / p(x) - 1 = sum_z post(z|x) delta_z with delta_z = pbar_e(z) / pbar(z) - 1 and
    # post(z|x) = pbar(z) A(z, x) / p(x): bound each |delta_z| by five exact asymptotic
    # standard deviations of the occupancy.
    sigma = np.sqrt(occupancy_asymptotic_var(ex.M, ex.pbar) / n_steps)
    post = ex.pbar[:, None] * ex.A / ex.px[None, :]  # (S, 2^D)
    bound = (5 * sigma / ex.pbar) @ post
    tol = -np.log1p(-np.minimum(bound, 0.99)) + 1e-12
    assert (np.abs(got - ex.log_px) <= tol).all()
    assert np.median(tol) < 0.25  # the check is not vacuous


def test_score_samples_pbar_with_zeros():
    p = random_params(3, 6, 4)
    m = make_machine(p)
    ex = exact_of(m)
    pbar = np.array([0.5, 0.0, 0.5, 0.0])
    want = logsumexp(np.log([0.5, 0.5])[None, :] + ex.log_A[[0, 2]].T, axis=1)
    np.testing.assert_allclose(m.score_samples(ex.X, pbar=pbar), want, atol=1e-10)


# --------------------------------------------------------------------------- the gradient, eqs. 16-17


def reference_gradient(p, X, Xp, Z, hidden, normalization, centered, tied, sigmoid_gain=True):
    """Eqs. 16a-16d with 17, evaluated directly: explicit loops over data points and recorded pairs."""
    w, a, abar, xbar = p["w"], p["a"], p["abar"], p["xbar"]
    wbar = w.T if tied else p["wbar"]
    D, L = w.shape
    X = np.asarray(X, dtype=float)
    Xp = np.asarray(Xp, dtype=float)
    T, N = Xp.shape[0], X.shape[0]
    Zm = np.eye(L)[np.asarray(Z)] if hidden == "onehot" else np.asarray(Z, dtype=float)
    gw, ga = np.zeros((D, L)), np.zeros(D)
    gwb, gab = np.zeros((L, D)), np.zeros(L)
    ll = 0.0
    for n in range(N):
        logA = np.empty(T)
        for t in range(T):
            h = w @ Zm[t] + a
            logA[t] = np.sum(X[n] * h - np.logaddexp(0.0, h))
        lse = logsumexp(logA)
        ll += lse - math.log(T)
        r = np.exp(logA - lse)  # r_t(x) = softmax_t log A(z(t), x)
        for t in range(T):
            mux = expit(w @ Zm[t] + a)  # mu_{x|z(t)}, eq. 14
            gw += r[t] * np.outer(X[n] - mux, Zm[t])
            ga += r[t] * (X[n] - mux)
            xc = Xp[t] - xbar if centered else Xp[t]
            u = wbar @ xc + abar
            if hidden == "binary":
                muz, gain = expit(u), np.ones(L)
            elif normalization == "softmax":
                muz, gain = np.exp(u - logsumexp(u)), np.ones(L)
            else:  # ratio of sigmoids, eq. 19: d ln P(alpha|x)/du_b = (1 - s_b)(delta_ab - P_b)
                log_s = -np.logaddexp(0.0, -u)  # ln sigmoid(u), no underflow
                muz = np.exp(log_s - logsumexp(log_s))
                gain = expit(-u) if sigmoid_gain else np.ones(L)
            d = gain * (Zm[t] - muz)
            gwb += r[t] * np.outer(d, xc)
            gab += r[t] * d
    g = dict(w=gw / N, a=ga / N, wbar=gwb / N, abar=gab / N)
    if tied:
        g["w"] = g["w"] + g["wbar"].T
        g["wbar"] = g["w"].T.copy()
    return g, ll / N


@st.composite
def machine_settings(draw):
    hidden = draw(st.sampled_from(["onehot", "binary"]))
    normalization = "softmax" if hidden == "binary" else draw(st.sampled_from(["softmax", "sigmoid"]))
    tied = normalization == "softmax" and draw(st.booleans())
    centered = draw(st.booleans())
    D = draw(st.integers(1, 10))
    L = draw(st.integers(2 if hidden == "onehot" else 1, 5 if hidden == "binary" else 10))
    return dict(hidden=hidden, normalization=normalization, tied=tied, centered=centered), D, L


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=machine_settings(),
    seed=st.integers(0, 2**32 - 1),
    scale=st.one_of(st.floats(0.1, 3.0), st.floats(3.0, 800.0)),
    N=st.integers(1, 5),
    T=st.integers(1, 30),
    from_chain=st.booleans(),
)
def test_gradient_matches_direct_evaluation(spec, seed, scale, N, T, from_chain):
    kw, D, L = spec
    p = random_params(seed, D, L, scale)
    m = make_machine(p, **kw)
    rng = np.random.default_rng(seed ^ 0x5A5A)
    X = rng.integers(0, 2, size=(N, D)).astype(np.uint8)
    if from_chain:  # a recorded chain of the engine itself
        m._engine.reset_chains(1, int(rng.integers(2**62)), None)
        Xp, Z = m._engine.run_chains(T)
        assert Xp.shape == (T, D) and Xp.dtype == np.uint8
    else:  # any pairs: mu_{z|x'} is recomputed from Xp
        Xp = rng.integers(0, 2, size=(T, D)).astype(np.uint8)
        Z = (
            rng.integers(0, L, size=T)
            if kw["hidden"] == "onehot"
            else rng.integers(0, 2, size=(T, L)).astype(np.uint8)
        )
    got = approx_gradient(m, X, Xp, Z)
    want, ll = reference_gradient(p, X, Xp, Z, **kw)
    assert set(got) == {"w", "a", "wbar", "abar"}
    for k in want:
        assert got[k].shape == want[k].shape, k
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-10, err_msg=k)
    if kw["tied"]:
        np.testing.assert_array_equal(got["wbar"], got["w"].T)
    # The engine's on-the-fly log-likelihood, mean_n ln[(1/T) sum_t A(z(t), x_n)].
    raw = m._engine.approx_gradient(X, Xp, np.asarray(Z))
    assert abs(raw["loglik"] - ll) <= 1e-9 * max(1.0, abs(ll))


def test_gradient_sigmoid_normalization_has_its_own_factor():
    # The sigmoid-ratio kernel needs the factor (1 - s_b); copying eq. 13 would give
    # (z_b - P_b) alone. The implementation must match the former and not the latter.
    p = random_params(4, 6, 3, 2.0)
    m = make_machine(p, normalization="sigmoid")
    m._engine.reset_chains(1, 5, None)
    Xp, Z = m._engine.run_chains(40)
    X = np.random.default_rng(0).integers(0, 2, size=(5, 6))
    got = approx_gradient(m, X, Xp, Z)
    want, _ = reference_gradient(p, X, Xp, Z, "onehot", "sigmoid", True, False)
    naive, _ = reference_gradient(p, X, Xp, Z, "onehot", "sigmoid", True, False, sigmoid_gain=False)
    for k in ("wbar", "abar"):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-10)
        assert np.abs(got[k] - naive[k]).max() > 1e-3


def test_sigmoid_normalization_with_underflowing_fields():
    # Eq. 19 with every sigmoid(u_b) below the double range (u_b < -745): P(alpha|x) is still
    # well defined, P = softmax(ln sigmoid(u)), here ~ (1, e^-40). Chain and gradient must use it.
    w, a, wbar = np.zeros((1, 2)), np.zeros(1), np.zeros((2, 1))
    abar = np.array([-760.0, -800.0])
    m = Machine.from_params(
        w, a, wbar, abar, hidden="onehot", normalization="sigmoid", centered=False, random_state=0
    )
    ex = exact_of(m)
    assert ex.pbar[0] > 1 - 1e-12
    traj = m.hidden_trajectory(200, seed=1)
    assert (traj == 0).all(), f"chain visited {np.bincount(traj, minlength=2)}, exact pbar {ex.pbar}"
    X, Xp, Z = np.array([[1]]), np.array([[0]]), np.array([0])
    g = approx_gradient(m, X, Xp, Z)
    want, _ = reference_gradient(
        dict(w=w, a=a, wbar=wbar, abar=abar, xbar=np.full(1, 0.5)),
        X,
        Xp,
        Z,
        "onehot",
        "sigmoid",
        False,
        False,
    )
    for k in want:
        assert np.isfinite(g[k]).all(), k
        np.testing.assert_allclose(g[k], want[k], rtol=1e-9, atol=1e-12, err_msg=k)


def test_gradient_uses_log_domain_for_large_D():
    # D = 784 with strong fields: A(z, x) underflows in linear space; r_t must still be finite.
    rng = np.random.default_rng(0)
    D, L = 784, 4
    p = dict(
        w=3 * rng.normal(size=(D, L)),
        a=np.zeros(D),
        wbar=0.1 * rng.normal(size=(L, D)),
        abar=np.zeros(L),
        xbar=np.full(D, 0.3),
    )
    m = make_machine(p)
    m._engine.reset_chains(1, 1, None)
    Xp, Z = m._engine.run_chains(6)
    X = (rng.random((3, D)) < 0.3).astype(np.uint8)
    g = approx_gradient(m, X, Xp, Z)
    want, _ = reference_gradient(p, X, Xp, Z, "onehot", "softmax", True, False)
    for k in want:
        assert np.isfinite(g[k]).all()
        np.testing.assert_allclose(g[k], want[k], rtol=1e-9, atol=1e-9, err_msg=k)
    assert np.exp(m.log_A(X, np.arange(L))).max() == 0.0  # linear space would be 0/0


DIRECTION_CASES = [
    dict(hidden="onehot", normalization="softmax", centered=True, tied=False),
    dict(hidden="onehot", normalization="sigmoid", centered=True, tied=False),
    dict(hidden="onehot", normalization="softmax", centered=False, tied=False),
    dict(hidden="onehot", normalization="softmax", centered=True, tied=True),
    dict(hidden="binary", normalization="softmax", centered=True, tied=False),
    dict(hidden="binary", normalization="softmax", centered=False, tied=True),
]


@pytest.mark.parametrize("kw", DIRECTION_CASES, ids=lambda kw: "-".join(str(v) for v in kw.values()))
@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_points_along_exact_gradient(kw, seed):
    # With a long chain, eqs. 16-17 approximate the true gradient of the mean log-likelihood
    # (finite differences of the exact enumeration): same direction, blockwise and overall.
    D, L = 6, (3 if kw["hidden"] == "onehot" else 2)
    p = random_params(100 + seed, D, L, 1.5, tied=kw["tied"])
    rng = np.random.default_rng(seed)
    X = (rng.random((50, D)) < rng.uniform(0.1, 0.9, size=D)).astype(np.uint8)
    m = make_machine(p, **kw)
    m._engine.reset_chains(1, 7 + seed, None)
    Xp, Z = m._engine.run_chains(4000)
    g = approx_gradient(m, X, Xp, Z)
    ge = exact_log_likelihood_gradient(
        m.w_, m.a_, m.wbar_, m.abar_, m.xbar_, X, kw["hidden"], kw["normalization"], kw["centered"]
    )
    if kw["tied"]:  # one shared matrix: d/dW = d/dw + (d/dwbar)^T
        ge["w"] = ge["w"] + ge["wbar"].T
        ge["wbar"] = ge["w"].T

    def cos(u, v):
        return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))

    fw = np.r_[g["w"].ravel(), g["a"]]
    ew = np.r_[ge["w"].ravel(), ge["a"]]
    fb = np.r_[g["wbar"].ravel(), g["abar"]]
    eb = np.r_[ge["wbar"].ravel(), ge["abar"]]
    assert cos(fw, ew) > 0.8
    assert cos(fb, eb) > 0.5
    assert cos(np.r_[fw, fb], np.r_[ew, eb]) > 0.8


# --------------------------------------------------------------------------- one training step


@pytest.mark.parametrize(
    "kw",
    [
        dict(hidden="onehot", normalization="softmax", centered=True, tied=False, freeze=True),
        dict(hidden="onehot", normalization="sigmoid", centered=False, tied=False, freeze=False),
        dict(hidden="binary", normalization="softmax", centered=True, tied=False, freeze=False),
        dict(hidden="onehot", normalization="softmax", centered=True, tied=True, freeze=False),
        dict(hidden="binary", normalization="softmax", centered=False, tied=True, freeze=True),
    ],
    ids=lambda kw: "-".join(str(v) for v in kw.values()),
)
def test_train_steps_are_chain_gradient_and_rmsprop(kw):
    kw = dict(kw)
    freeze = kw.pop("freeze")
    D, L, T, lr, rho, eps = 7, 3, 9, 0.05, 0.9, 1e-8
    p = random_params(21, D, L, 1.0, tied=kw["tied"])
    rng = np.random.default_rng(3)
    data = rng.integers(0, 2, size=(20, D)).astype(np.uint8)
    init = data[:2]
    rows = np.array([0, 3, 5, 7, 1, 2, 19, 11, 4], dtype=np.int64)
    sizes = np.array([4, 5], dtype=np.int64)

    m = make_machine(p, **kw)
    e = m._engine
    e.set_data(data)
    e.reset_chains(2, 99, init)
    e.reset_optimizer()
    ll = e.train_steps(rows, sizes, T, lr, rho, eps, freeze)

    # Reference: a twin engine walks the same chains; parameters updated here by hand.
    ref = make_machine(p, **kw)
    ref._engine.reset_chains(2, 99, init)
    cur = {k: getattr(ref, k + "_").copy() for k in ("w", "a", "wbar", "abar", "xbar")}
    v = {k: np.zeros_like(cur[k]) for k in ("w", "a", "wbar", "abar")}
    off = 0
    for k, size in enumerate(sizes):
        Xp, Z = ref._engine.run_chains(T)
        assert Xp.shape[0] == 2 * T  # both chains' pairs pooled
        g, ll_ref = reference_gradient(cur, data[rows[off : off + size]], Xp, Z, **kw)
        assert abs(ll[k] - ll_ref) < 1e-9 * max(1, abs(ll_ref))
        for name in ("w", "a", "wbar", "abar"):
            if (name == "a" and freeze) or (name == "wbar" and kw["tied"]):
                continue
            v[name] = rho * v[name] + (1 - rho) * g[name] ** 2
            cur[name] = cur[name] + lr * g[name] / (np.sqrt(v[name]) + eps)
        if kw["tied"]:
            cur["wbar"] = cur["w"].T.copy()
        ref._engine.set_params(cur["w"], cur["a"], cur["wbar"], cur["abar"], cur["xbar"])
        off += size
    for name in ("w", "a", "wbar", "abar"):
        np.testing.assert_allclose(getattr(m, name + "_"), cur[name], rtol=1e-10, atol=1e-12, err_msg=name)
    if freeze:
        np.testing.assert_array_equal(m.a_, p["a"])
    if kw["tied"]:
        np.testing.assert_array_equal(m.wbar_, m.w_.T)
    # The persistent chains ended in the same place as the twin's.
    np.testing.assert_array_equal(e.chain_states(), ref._engine.chain_states())


# --------------------------------------------------------------------------- detailed balance


def rbm_pbar(m: Machine) -> np.ndarray:
    """Closed-form hidden marginal of the tied machine (an RBM):
    pbar(z) propto exp(c.z + sum_i softplus((w z + a)_i)), c = abar - wbar xbar (centered)."""
    Zs = hidden_states(m.n_hidden, m.hidden)
    c = m.abar_ - (m.wbar_ @ m.xbar_ if m.centered else 0.0)
    lp = Zs @ c + np.logaddexp(0.0, Zs @ m.w_.T + m.a_).sum(axis=1)
    return np.exp(lp - logsumexp(lp))


@pytest.mark.parametrize("hidden,L", [("onehot", 3), ("onehot", 5), ("binary", 2), ("binary", 3)])
@pytest.mark.parametrize("centered", [True, False])
def test_tied_machine_is_in_detailed_balance(hidden, L, centered):
    D = 6
    p = random_params(7 + L, D, L, 2.0)
    m = Machine.from_params(
        p["w"], p["a"], None, p["abar"], p["xbar"], hidden=hidden, centered=centered, tied=True
    )
    np.testing.assert_array_equal(m.wbar_, m.w_.T)
    ex = exact_of(m)
    J = ex.pbar[:, None] * ex.M
    np.testing.assert_allclose(J, J.T, atol=1e-13)
    assert is_detailed_balance(ex.M, ex.pbar, atol=1e-13)
    assert abs(ex.entropy_production) < 1e-12
    # The stationary state is the RBM's hidden marginal.
    np.testing.assert_allclose(ex.pbar, rbm_pbar(m), atol=1e-12)
    # The same parameters untied (an independent wbar) break detailed balance.
    mu = make_machine(p, hidden=hidden, centered=centered)
    exu = exact_of(mu)
    assert not is_detailed_balance(exu.M, exu.pbar, atol=1e-6)
    assert exu.entropy_production > 1e-4


def _tiny_data(seed: int = 0, N: int = 300, D: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0.05, 0.95, size=(3, D))
    lab = rng.integers(0, 3, size=N)
    return (rng.random((N, D)) < protos[lab]).astype(np.uint8)


TRAIN_KW = dict(
    recipe="paper", n_epochs=10, steps_per_epoch=10, batch_size=(8, 32), chain_steps=16, random_state=0
)


@pytest.mark.parametrize("hidden,L", [("onehot", 3), ("binary", 2)])
def test_trained_tied_machine_keeps_detailed_balance(hidden, L):
    X = _tiny_data()
    m = Machine(L, hidden=hidden, tied=True, freeze_visible_bias=False, **TRAIN_KW).fit(X)
    w0 = Machine(L, hidden=hidden, tied=True, **dict(TRAIN_KW, n_epochs=1)).fit(X).w_
    assert not np.allclose(m.w_, w0)  # it did train
    np.testing.assert_array_equal(m.wbar_, m.w_.T)
    ex = exact_of(m)
    assert is_detailed_balance(ex.M, ex.pbar, atol=1e-13)
    assert abs(entropy_production(ex.M, ex.pbar)) < 1e-12
    np.testing.assert_allclose(ex.pbar, rbm_pbar(m), atol=1e-12)


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(normalization="sigmoid"), dict(hidden="binary", n_hidden=2)],
    ids=["softmax", "sigmoid", "binary"],
)
def test_trained_untied_machine_breaks_detailed_balance(kw):
    X = _tiny_data()
    kw = dict(dict(n_hidden=3), **kw)
    m = Machine(**kw, **TRAIN_KW).fit(X)
    ex = exact_of(m)
    assert not is_detailed_balance(ex.M, ex.pbar, atol=1e-6)
    assert entropy_production(ex.M, ex.pbar) > 1e-3
    assert not np.allclose(m.wbar_, m.w_.T, atol=1e-3)


def test_training_raises_exact_likelihood_on_tiny_data():
    X = _tiny_data(1)
    lls = []
    for n_epochs in (1, 15):
        m = Machine(3, **dict(TRAIN_KW, n_epochs=n_epochs)).fit(X)
        lls.append(exact_of(m).log_likelihood(X))
    # Entropy of the data under independent pixels is a weak baseline the model must beat.
    q = X.mean(axis=0)
    indep = float(np.mean(X @ np.log(q) + (1 - X) @ np.log1p(-q)))
    assert lls[1] > lls[0]
    assert lls[1] > indep


# --------------------------------------------------------------------------- binary layers: tables and enumeration


def _binary_all_states(L: int) -> np.ndarray:
    codes = np.arange(1 << L, dtype=np.int64)
    return ((codes[:, None] >> np.arange(L)[None, :]) & 1).astype(np.uint8)


@pytest.mark.parametrize(
    "L,D,scale,seed", [(1, 7, 1.5, 0), (3, 40, 1.5, 1), (6, 90, 3.0, 2), (9, 33, 0.3, 3), (10, 120, 4.0, 4)]
)
def test_enumerated_binary_likelihood_matches_log_A(L, D, scale, seed):
    """score_samples enumerates all 2^L binary states (likelihood.hpp): it must agree with the
    per-state path, log A from compute_forward_fields, mixed with ln pbar by scipy."""
    p = random_params(seed, D, L, scale)
    m = make_machine(p, hidden="binary")
    rng = np.random.default_rng(seed)
    X = (rng.random((25, D)) < rng.uniform(0.1, 0.9, size=D)).astype(np.uint8)
    pbar = rng.dirichlet(np.full(1 << L, 0.3))
    if L > 2:
        pbar[rng.choice(1 << L, size=(1 << L) // 3, replace=False)] = 0.0  # states without weight
        pbar /= pbar.sum()
    Z = _binary_all_states(L)
    with np.errstate(divide="ignore"):
        want = logsumexp(np.log(pbar)[None, :] + m.log_A(X, Z), axis=1)
    got = m.score_samples(X, pbar=pbar)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)


def test_enumerated_binary_likelihood_matches_exact_enumeration():
    p = random_params(5, 7, 3, 2.0)
    m = make_machine(p, hidden="binary")
    ex = exact_of(m)
    got = m.score_samples(ex.X, pbar=ex.pbar)
    np.testing.assert_allclose(got, ex.log_px, rtol=0, atol=1e-10)
    assert abs(np.exp(got).sum() - 1.0) < 1e-10  # all 2^D images: probabilities sum to one


def test_enumerated_binary_likelihood_adds_repeated_states_and_ignores_threads():
    import nemm

    L, D = 7, 60
    p = random_params(8, D, L, 2.0)
    m = make_machine(p, hidden="binary")
    rng = np.random.default_rng(8)
    X = (rng.random((40, D)) < 0.4).astype(np.uint8)
    Z = _binary_all_states(L)
    logw = np.log(rng.dirichlet(np.ones(1 << L)))
    # Each state given twice with half its weight: the same mixture.
    Z2 = np.concatenate([Z, Z[::-1]])
    logw2 = np.concatenate([logw, logw[::-1]]) - np.log(2)
    once = m._engine.log_likelihood(X, Z, logw)
    np.testing.assert_allclose(m._engine.log_likelihood(X, Z2, logw2), once, rtol=1e-13, atol=1e-12)
    ref = logsumexp(logw[None, :] + m.log_A(X, Z), axis=1)
    np.testing.assert_allclose(once, ref, rtol=1e-12, atol=1e-9)
    saved = _core.max_threads()
    try:
        outs = []
        for t in (1, 2, 3):
            nemm.set_num_threads(t)
            outs.append(m._engine.log_likelihood(np.repeat(X, 40, axis=0), Z, logw))
    finally:
        nemm.set_num_threads(saved)
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])


def test_enumerated_binary_likelihood_l16_is_finite_and_normalized_in_the_limit():
    """L = 16 (65,536 states): a mixture whose weight sits on one state is that state's log A."""
    L, D = 16, 12
    p = random_params(9, D, L, 0.7)
    m = make_machine(p, hidden="binary")
    X = (np.random.default_rng(9).random((6, D)) < 0.5).astype(np.uint8)
    pbar = np.full(1 << L, 1e-300)
    z0 = 0b1010_0110_0101_1001
    pbar[z0] = 1.0 - pbar.sum() + 1e-300
    got = m.score_samples(X, pbar=pbar)
    bits = ((z0 >> np.arange(L)) & 1).astype(np.uint8)[None, :]
    np.testing.assert_allclose(got, m.log_A(X, bits)[:, 0], rtol=0, atol=1e-9)


def test_binary_threshold_table_follows_parameter_changes():
    """The chain's lazily filled z -> x thresholds (model.hpp) are emptied by every refresh: a
    machine whose parameters were replaced walks exactly like a fresh machine with them."""
    L, D = 5, 30
    p, q = random_params(10, D, L, 2.0), random_params(11, D, L, 2.0)
    m = make_machine(p, hidden="binary")
    m.hidden_trajectory(2000, seed=1, n_chains=3)  # fills the table with p's thresholds
    m._engine.set_params(q["w"], q["a"], q["wbar"], q["abar"], q["xbar"])
    fresh = make_machine(q, hidden="binary")
    for n_chains in (1, 4):
        a = m.hidden_trajectory(3000, seed=2, n_chains=n_chains, codes=True)
        b = fresh.hidden_trajectory(3000, seed=2, n_chains=n_chains, codes=True)
        assert np.array_equal(a, b)
    xa = m.sample(50, seed=3)
    xb = fresh.sample(50, seed=3)
    assert np.array_equal(xa, xb)


# --------------------------------------------------------------------------- step profile
def test_step_profile_times_the_parts_of_the_steps_it_ran():
    # bench/suite.py reads this profile to show where a step's time goes.
    rng = np.random.default_rng(0)
    X = (rng.random((40, 30)) < 0.3).astype(np.uint8)
    m = Machine(3, n_epochs=4, steps_per_epoch=5, random_state=0).partial_fit(X, n_epochs=1)
    e = m._engine
    e.start_profiling()
    m.partial_fit(X, n_epochs=2)
    prof = e.stop_profiling()
    assert set(prof) == {"chain", "gradient", "update", "steps"}
    assert prof["steps"] == 2 * 5
    assert all(prof[k] > 0 for k in ("chain", "gradient", "update"))
    m.partial_fit(X, n_epochs=1)  # stopped: nothing more is counted
    e.start_profiling()
    assert e.stop_profiling()["steps"] == 0
