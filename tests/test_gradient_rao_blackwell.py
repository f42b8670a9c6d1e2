"""The Rao-Blackwellized gradient of one-hot machines (``gradient="rao_blackwell"``).

Eqs. 16a-16d weight the sampled hidden state z(t) of each recorded pair. The Rao-Blackwellized
estimator replaces each draw by its conditional expectation given the fantasy x'(t): a state u
is counted sum_t Abar(u | x'(t)) times in the mixture weights r, and the backward terms average
(z - mu) over z ~ Abar(. | x'(t)). Checked against a direct evaluation with explicit loops (no
shared algebra with the core), against the sampled estimator where the two must agree, and
against the exact gradient of the true log-likelihood on a tiny system.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import expit, logsumexp
from test_core import make_machine, random_params

from nemm.exact import exact_log_likelihood_gradient


def reference_rao_blackwell_gradient(p, X, Xp, normalization, centered, tied):
    """Direct evaluation: every recorded pair t and every state alpha, explicit loops."""
    w, a, abar, xbar = p["w"], p["a"], p["abar"], p["xbar"]
    wbar = w.T if tied else p["wbar"]
    D, L = w.shape
    X, Xp = np.asarray(X, dtype=float), np.asarray(Xp, dtype=float)
    T, N = Xp.shape[0], X.shape[0]
    muz, gain, xcs = np.empty((T, L)), np.empty((T, L)), np.empty((T, D))
    for t in range(T):
        xcs[t] = Xp[t] - xbar if centered else Xp[t]
        u = wbar @ xcs[t] + abar
        if normalization == "softmax":
            muz[t], gain[t] = np.exp(u - logsumexp(u)), np.ones(L)
        else:  # eq. 19: d ln P(alpha|x)/du_b = (1 - s_b)(delta_ab - P_b)
            log_s = -np.logaddexp(0.0, -u)
            muz[t], gain[t] = np.exp(log_s - logsumexp(log_s)), expit(-u)
    count = muz.sum(axis=0)  # expected visits of each state
    gw, ga, C = np.zeros((D, L)), np.zeros(D), np.zeros(L)
    ll = 0.0
    for n in range(N):
        logA = np.array([np.sum(X[n] * (w[:, u] + a) - np.logaddexp(0.0, w[:, u] + a)) for u in range(L)])
        lse = logsumexp(np.log(count) + logA)
        ll += lse - math.log(T)
        q = np.exp(np.log(count) + logA - lse)  # sum over the pairs in state u of r_t(x_n)
        for u in range(L):
            gw[:, u] += q[u] * (X[n] - expit(w[:, u] + a))
            ga += q[u] * (X[n] - expit(w[:, u] + a))
            C[u] += q[u]
    gwb, gab = np.zeros((L, D)), np.zeros(L)
    for t in range(T):
        for alpha in range(L):  # z(t) = e_alpha with probability Abar(alpha | x'(t))
            weight = muz[t, alpha] * C[alpha] / count[alpha]
            d = gain[t] * (np.eye(L)[alpha] - muz[t])
            gwb += weight * np.outer(d, xcs[t])
            gab += weight * d
    g = dict(w=gw / N, a=ga / N, wbar=gwb / N, abar=gab / N)
    if tied:
        g["w"] = g["w"] + g["wbar"].T
        g["wbar"] = g["w"].T.copy()
    return g, ll / N


def engine_gradient(m, X, Xp, Z, gradient):
    m._engine.gradient = gradient
    raw = m._engine.approx_gradient(np.asarray(X, np.uint8), np.asarray(Xp, np.uint8), np.asarray(Z))
    return {k: np.asarray(raw[k]) for k in ("w", "a", "wbar", "abar", "loglik")}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    normalization=st.sampled_from(["softmax", "sigmoid"]),
    centered=st.booleans(),
    tied=st.booleans(),
    D=st.integers(1, 9),
    L=st.integers(2, 8),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.1, 6.0),
    N=st.integers(1, 5),
    T=st.integers(1, 25),
)
def test_rao_blackwell_gradient_matches_direct_evaluation(
    normalization, centered, tied, D, L, seed, scale, N, T
):
    tied = tied and normalization == "softmax"
    p = random_params(seed, D, L, scale, tied=tied)
    m = make_machine(p, normalization=normalization, centered=centered, tied=tied)
    rng = np.random.default_rng(seed ^ 0x3C3C)
    X = rng.integers(0, 2, size=(N, D))
    Xp = rng.integers(0, 2, size=(T, D))
    Z = rng.integers(0, L, size=T)  # ignored: the estimator averages over z given x'
    got = engine_gradient(m, X, Xp, Z, "rao_blackwell")
    want, ll = reference_rao_blackwell_gradient(p, X, Xp, normalization, centered, tied)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-10, err_msg=k)
    assert abs(got["loglik"] - ll) <= 1e-9 * max(1.0, abs(ll))
    other_Z = engine_gradient(m, X, Xp, (Z + 1) % L, "rao_blackwell")
    for k in want:
        np.testing.assert_array_equal(got[k], other_Z[k])


def test_rao_blackwell_equals_sampled_when_the_x_to_z_kernel_is_deterministic():
    # Abar(. | x') concentrated on one state: the expectation over z is that state, so the two
    # estimators must agree when the recorded z are exactly those states.
    D, L = 6, 4
    rng = np.random.default_rng(3)
    p = random_params(5, D, L)
    p["wbar"] = np.zeros((L, D))
    p["abar"] = np.where(np.arange(L) == 2, 60.0, -60.0)  # Abar(2 | x') = 1 - O(e^-120) for every x'
    m = make_machine(p, centered=False)
    X = rng.integers(0, 2, size=(4, D))
    Xp = rng.integers(0, 2, size=(12, D))
    Z = np.full(12, 2)
    rb = engine_gradient(m, X, Xp, Z, "rao_blackwell")
    sampled = engine_gradient(m, X, Xp, Z, "sampled")
    for k in rb:
        np.testing.assert_allclose(rb[k], sampled[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_gradient_setting_is_checked():
    m = make_machine(random_params(0, 4, 3))
    assert m._engine.gradient == "sampled"  # the paper's estimator stays the default
    with pytest.raises(ValueError, match="gradient must be 'sampled' or 'rao_blackwell'"):
        m._engine.gradient = "exact"
    binary = make_machine(random_params(0, 4, 3), hidden="binary")
    with pytest.raises(ValueError, match="needs one-hot hidden states"):
        binary._engine.gradient = "rao_blackwell"
    assert binary._engine.gradient == "sampled"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rao_blackwell_gradient_is_closer_to_the_exact_gradient_on_short_recordings(seed):
    # The point of the estimator: with a short recording (T = 20 pairs, as in training) the
    # sampled states leave most of the hidden space unweighted; averaging over z given x'
    # does not. Mean cosine with the exact gradient of the true mean log-likelihood over 40
    # recordings: the Rao-Blackwellized one must be the better one, and a good one.
    D, L = 7, 5
    p = random_params(200 + seed, D, L, 1.5)
    rng = np.random.default_rng(seed)
    X = (rng.random((60, D)) < rng.uniform(0.1, 0.9, size=D)).astype(np.uint8)
    m = make_machine(p)
    exact = exact_log_likelihood_gradient(m.w_, m.a_, m.wbar_, m.abar_, m.xbar_, X, "onehot", "softmax", True)
    e = np.r_[exact["w"].ravel(), exact["a"], exact["wbar"].ravel(), exact["abar"]]
    cos = {"sampled": [], "rao_blackwell": []}
    for r in range(40):
        m._engine.reset_chains(1, 1000 * seed + r, None)
        m._engine.run_chains(50)  # burn-in
        Xp, Z = m._engine.run_chains(20)
        for name in cos:
            g = engine_gradient(m, X, Xp, Z, name)
            v = np.r_[g["w"].ravel(), g["a"], g["wbar"].ravel(), g["abar"]]
            cos[name].append(v @ e / (np.linalg.norm(v) * np.linalg.norm(e)))
    assert np.mean(cos["rao_blackwell"]) > np.mean(cos["sampled"])
    assert np.mean(cos["rao_blackwell"]) > 0.9  # measured 0.966 to 0.994 (sampled: 0.865 to 0.965)
