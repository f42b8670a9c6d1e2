"""Tests of the exact enumeration (nemm.exact): the references every other test relies on."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemm.exact import (
    ExactModel,
    backward_kernel,
    exact_log_likelihood,
    exact_log_likelihood_gradient,
    exact_model,
    hidden_states,
    is_detailed_balance,
    log_A,
    log_backward_kernel,
    log_forward_kernel,
    mu_z,
    visible_states,
)
from nemm.markov import entropy_production, stationary_distribution

SETTINGS = settings(max_examples=25, deadline=None)


def sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u))


def random_params(seed: int, D: int, L: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return dict(
        w=scale * rng.normal(size=(D, L)),
        a=scale * rng.normal(size=D),
        wbar=scale * rng.normal(size=(L, D)),
        abar=scale * rng.normal(size=L),
        xbar=rng.uniform(0.05, 0.95, size=D),
    )


# Hypothesis strategy for small systems: (seed, D, L, hidden, centered, scale).
small_system = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(1, 5),
    st.integers(1, 4),
    st.sampled_from(["onehot", "binary"]),
    st.booleans(),
    st.floats(0.1, 3.0),
)


def brute_force_A(w, a, z, x):
    """A(z, x) as a product of per-bit probabilities in linear space (fine for tiny D)."""
    h = w @ z + a
    # sigmoid(-h) rather than 1 - sigmoid(h): the subtraction would lose digits for large h.
    return float(np.prod(np.where(x == 1, sigmoid(h), sigmoid(-h))))


def brute_force_Abar(wbar, abar, xbar, x, hidden, normalization, centered):
    u = wbar @ (x - xbar) + abar if centered else wbar @ x + abar
    if hidden == "binary":
        Z = hidden_states(len(abar), "binary")
        return np.array([np.prod(np.where(z == 1, sigmoid(u), sigmoid(-u))) for z in Z])
    if normalization == "softmax":
        e = np.exp(u - u.max())
        return e / e.sum()
    s = sigmoid(u)
    return s / s.sum()


# --------------------------------------------------------------------------- state lists


def test_visible_states_codes():
    X = visible_states(3)
    assert X.dtype == np.uint8 and X.shape == (8, 3)
    # Row c has x_i = bit i of c.
    np.testing.assert_array_equal(X @ (1 << np.arange(3)), np.arange(8))
    np.testing.assert_array_equal(X[6], [0, 1, 1])


def test_visible_states_limit():
    assert visible_states(12).shape == (4096, 12)
    with pytest.raises(ValueError, match="12"):
        visible_states(13)
    with pytest.raises(ValueError):
        visible_states(0)


def test_hidden_states():
    np.testing.assert_array_equal(hidden_states(4, "onehot"), np.eye(4))
    Z = hidden_states(3, "binary")
    assert Z.shape == (8, 3) and Z.dtype == np.float64
    np.testing.assert_array_equal(Z @ (1 << np.arange(3)), np.arange(8))
    with pytest.raises(ValueError, match="12"):
        hidden_states(13, "binary")
    with pytest.raises(ValueError):
        hidden_states(3, "ternary")


# --------------------------------------------------------------------------- kernels


@SETTINGS
@given(small_system)
def test_log_A_matches_brute_force(system):
    seed, D, L, hidden, _, scale = system
    p = random_params(seed, D, L, scale)
    Z = hidden_states(L, hidden)
    X = visible_states(D)
    got = log_A(p["w"], p["a"], Z, X)
    assert got.shape == (len(X), len(Z))
    want = np.log([[brute_force_A(p["w"], p["a"], z, x) for z in Z] for x in X])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_forward_kernel(p["w"], p["a"], Z), want.T, rtol=1e-12, atol=1e-12)


def test_log_A_large_fields_is_exact():
    # Fields of +-800: linear-space products underflow, the log-domain value must not lose anything.
    w = np.array([[800.0], [-800.0], [3.0]])
    a = np.zeros(3)
    Z = np.array([[1.0]])
    X = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]])
    got = log_A(w, a, Z, X)[:, 0]
    sp3 = np.logaddexp(0.0, -3.0)
    np.testing.assert_allclose(got, [-sp3, -800.0 - sp3, -800.0 - np.logaddexp(0, 3.0)], rtol=1e-15)
    assert np.isfinite(got).all()


@pytest.mark.parametrize(
    ("hidden", "normalization"), [("onehot", "softmax"), ("onehot", "sigmoid"), ("binary", "softmax")]
)
@pytest.mark.parametrize("centered", [True, False])
def test_backward_kernel_matches_brute_force(hidden, normalization, centered):
    p = random_params(7, 4, 3, 2.0)
    X = visible_states(4)
    got = backward_kernel(p["wbar"], p["abar"], p["xbar"], X, hidden, normalization, centered)
    want = np.array(
        [
            brute_force_Abar(
                p["wbar"], p["abar"], p["xbar"], x.astype(float), hidden, normalization, centered
            )
            for x in X
        ]
    )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-13)
    logs = log_backward_kernel(p["wbar"], p["abar"], p["xbar"], X, hidden, normalization, centered)
    np.testing.assert_allclose(np.exp(logs), got, rtol=1e-14)


def test_centering_is_a_bias_shift():
    # u = wbar (x - xbar) + abar  ==  wbar x + (abar - wbar xbar).
    p = random_params(3, 5, 4)
    X = visible_states(5)
    for hidden in ("onehot", "binary"):
        c = backward_kernel(p["wbar"], p["abar"], p["xbar"], X, hidden, "softmax", True)
        u = backward_kernel(p["wbar"], p["abar"] - p["wbar"] @ p["xbar"], None, X, hidden, "softmax", False)
        np.testing.assert_allclose(c, u, rtol=1e-12)


def test_backward_kernel_extreme_fields_stay_normalized():
    wbar = np.array([[900.0, -900.0], [-900.0, 900.0], [0.0, 0.0]])
    X = visible_states(2)
    for norm in ("softmax", "sigmoid"):
        P = backward_kernel(wbar, np.zeros(3), None, X, "onehot", norm, False)
        assert np.isfinite(P).all()
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-14)
    logs = log_backward_kernel(wbar, np.zeros(3), None, X, "onehot", "softmax", False)
    assert logs[1, 1] == pytest.approx(-1800.0, rel=1e-12)  # x = (1, 0): u = (900, -900, 0)


@pytest.mark.parametrize(
    ("hidden", "normalization"), [("onehot", "softmax"), ("onehot", "sigmoid"), ("binary", "softmax")]
)
def test_mu_z_is_conditional_mean(hidden, normalization):
    p = random_params(11, 4, 3, 1.5)
    X = visible_states(4)
    P = backward_kernel(p["wbar"], p["abar"], p["xbar"], X, hidden, normalization)
    mean = P @ hidden_states(3, hidden)  # E[z | x] by enumeration
    np.testing.assert_allclose(
        mu_z(p["wbar"], p["abar"], p["xbar"], X, hidden, normalization), mean, rtol=1e-12
    )


def test_kernel_argument_errors():
    p = random_params(0, 3, 2)
    X = visible_states(3)
    with pytest.raises(ValueError, match="xbar"):
        backward_kernel(p["wbar"], p["abar"], None, X, "onehot", "softmax", True)
    with pytest.raises(ValueError, match="one-hot"):
        backward_kernel(p["wbar"], p["abar"], p["xbar"], X, "binary", "sigmoid")
    with pytest.raises(ValueError, match="features"):
        log_A(p["w"], p["a"], hidden_states(2), np.ones((2, 4)))
    with pytest.raises(ValueError, match="wbar"):
        exact_model(p["w"], p["a"], p["wbar"].T, p["abar"], p["xbar"])
    with pytest.raises(ValueError, match="12"):
        exact_model(np.zeros((13, 2)), np.zeros(13), np.zeros((2, 13)), np.zeros(2), np.zeros(13))


# --------------------------------------------------------------------------- the exact model


def brute_force_M(p, hidden, normalization, centered):
    Z = hidden_states(p["w"].shape[1], hidden)
    M = np.zeros((len(Z), len(Z)))
    for x in visible_states(p["w"].shape[0]).astype(float):
        Ab = brute_force_Abar(p["wbar"], p["abar"], p["xbar"], x, hidden, normalization, centered)
        for i, z in enumerate(Z):
            M[i] += brute_force_A(p["w"], p["a"], z, x) * Ab
    return M


@SETTINGS
@given(small_system, st.sampled_from(["softmax", "sigmoid"]))
def test_exact_model_invariants(system, normalization):
    seed, D, L, hidden, centered, scale = system
    if hidden == "binary":
        normalization = "softmax"
    p = random_params(seed, D, L, scale)
    m = exact_model(**p, hidden=hidden, normalization=normalization, centered=centered)
    S = L if hidden == "onehot" else 2**L
    assert isinstance(m, ExactModel)
    assert m.A.shape == (S, 2**D) and m.Abar.shape == (2**D, S) and m.M.shape == (S, S)
    np.testing.assert_allclose(m.A.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(m.Abar.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(m.M.sum(axis=1), 1.0, atol=1e-13)
    np.testing.assert_allclose(m.M, brute_force_M(p, hidden, normalization, centered), rtol=1e-10, atol=1e-14)
    assert (m.pbar >= 0).all() and m.pbar.sum() == pytest.approx(1.0, abs=1e-13)
    np.testing.assert_allclose(m.pbar @ m.M, m.pbar, atol=1e-12)
    assert m.px.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(m.px, m.pbar @ m.A, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(np.exp(m.log_px), m.px, rtol=1e-14)


@pytest.mark.parametrize("hidden", ["onehot", "binary"])
@pytest.mark.parametrize("centered", [True, False])
def test_tied_model_is_in_detailed_balance(hidden, centered):
    # wbar = w^T with the RBM conditionals is a Gibbs sampler: equilibrium, sigma = 0.
    for seed in range(5):
        p = random_params(seed, 5, 3, 1.5)
        p["wbar"] = p["w"].T.copy()
        m = exact_model(**p, hidden=hidden, centered=centered)
        assert is_detailed_balance(m.M, m.pbar, atol=1e-13)
        assert abs(m.entropy_production) < 1e-12


@SETTINGS
@given(small_system)
def test_tied_model_detailed_balance_hypothesis(system):
    seed, D, L, hidden, centered, scale = system
    p = random_params(seed, D, L, scale)
    p["wbar"] = p["w"].T.copy()
    m = exact_model(**p, hidden=hidden, centered=centered)
    assert is_detailed_balance(m.M, m.pbar, atol=1e-12)
    assert entropy_production(m.M, m.pbar) < 1e-10


@pytest.mark.parametrize(("hidden", "L"), [("onehot", 3), ("onehot", 5), ("binary", 2), ("binary", 3)])
def test_untied_model_produces_entropy(hidden, L):
    for seed in range(5):
        p = random_params(100 + seed, 5, L, 1.5)
        m = exact_model(**p, hidden=hidden)
        assert not is_detailed_balance(m.M, m.pbar, atol=1e-6)
        assert m.entropy_production > 1e-6


def rbm_effective_hidden_bias(p, centered):
    # Tied: u = w^T (x - xbar) + abar = w^T x + c, so the RBM hidden bias is c = abar - w^T xbar.
    return p["abar"] - p["w"].T @ p["xbar"] if centered else p["abar"]


@pytest.mark.parametrize("centered", [True, False])
def test_tied_onehot_pbar_is_rbm_marginal(centered):
    # RBM with one-hot hidden: E(x, alpha) = -x.w[:, alpha] - a.x - c_alpha. Then
    # P(x | alpha) = prod_i Bernoulli(sigmoid(w_i,alpha + a_i)) = A and P(alpha | x) = softmax(w^T x + c)
    # = Abar; the chain is its Gibbs sampler, so pbar is the RBM marginal
    # pbar(alpha) = sum_x exp(-E) / Z  propto  exp(c_alpha) prod_i (1 + exp(w_i,alpha + a_i)),
    # and p(x) propto exp(a.x) sum_alpha exp(c_alpha + x.w[:, alpha]).
    for seed in range(4):
        p = random_params(seed, 6, 4, 1.2)
        p["wbar"] = p["w"].T.copy()
        c = rbm_effective_hidden_bias(p, centered)
        m = exact_model(**p, centered=centered)
        log_q = c + np.logaddexp(0.0, p["w"] + p["a"][:, None]).sum(axis=0)
        q = np.exp(log_q - log_q.max())
        np.testing.assert_allclose(m.pbar, q / q.sum(), rtol=1e-10)
        X = visible_states(6).astype(float)
        log_px = X @ p["a"] + np.logaddexp.reduce(c[None, :] + X @ p["w"], axis=1)
        px = np.exp(log_px - log_px.max())
        np.testing.assert_allclose(m.px, px / px.sum(), rtol=1e-10)


@pytest.mark.parametrize("centered", [True, False])
def test_tied_binary_pbar_is_rbm_marginal(centered):
    # Binary RBM: pbar(z) propto exp(c.z) prod_i (1 + exp((w z + a)_i)).
    for seed in range(4):
        p = random_params(seed, 5, 3, 1.2)
        p["wbar"] = p["w"].T.copy()
        c = rbm_effective_hidden_bias(p, centered)
        m = exact_model(**p, hidden="binary", centered=centered)
        Z = hidden_states(3, "binary")
        log_q = Z @ c + np.logaddexp(0.0, Z @ p["w"].T + p["a"]).sum(axis=1)
        q = np.exp(log_q - log_q.max())
        np.testing.assert_allclose(m.pbar, q / q.sum(), rtol=1e-10)


def test_untied_pbar_differs_from_rbm_marginal():
    # Guard against the RBM test passing for any parameters.
    p = random_params(1, 6, 4, 1.2)
    m = exact_model(**p)
    c = rbm_effective_hidden_bias(p, True)
    log_q = c + np.logaddexp(0.0, p["w"] + p["a"][:, None]).sum(axis=0)
    q = np.exp(log_q - log_q.max())
    assert np.abs(m.pbar - q / q.sum()).max() > 1e-3


@pytest.mark.parametrize("hidden", ["onehot", "binary"])
def test_exact_pbar_is_the_limit_of_power_iteration(hidden):
    # Independent of how exact_model solves pbar M = pbar: iterate any start distribution to convergence.
    p = random_params(5, 4, 3)
    m = exact_model(**p, hidden=hidden)
    q = np.full(m.M.shape[0], 1.0 / m.M.shape[0])
    for _ in range(5000):
        q = q @ m.M
    np.testing.assert_allclose(m.pbar, q, rtol=1e-10, atol=1e-14)
    # The eigen-solver of nemm.markov agrees with it too.
    np.testing.assert_allclose(stationary_distribution(m.M), q, rtol=1e-10, atol=1e-14)


def test_exact_entropy_production_matches_markov():
    p = random_params(6, 5, 4)
    m = exact_model(**p)
    assert m.entropy_production == pytest.approx(entropy_production(m.M, m.pbar), rel=1e-10)


# --------------------------------------------------------------------------- likelihood and gradient


def test_exact_log_likelihood_is_mean_log_px():
    p = random_params(2, 5, 3)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(40, 5))
    m = exact_model(**p)
    codes = X @ (1 << np.arange(5))
    want = np.log(m.px[codes]).mean()
    assert exact_log_likelihood(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], X) == pytest.approx(
        want, rel=1e-12
    )
    assert m.log_likelihood(X) == pytest.approx(want, rel=1e-12)


def test_gradient_single_state_is_analytic():
    # L = 1: pbar = 1 and p(x) = prod_i Bernoulli(x_i; sigmoid(w_i + a_i)), so
    # d/da_i mean ln p = mean(x_i) - sigmoid(w_i + a_i) = d/dw_i; the backward parameters do nothing.
    rng = np.random.default_rng(4)
    D = 4
    w, a = rng.normal(size=(D, 1)), rng.normal(size=D)
    wbar, abar, xbar = rng.normal(size=(1, D)), rng.normal(size=1), np.full(D, 0.5)
    X = rng.integers(0, 2, size=(30, D))
    g = exact_log_likelihood_gradient(w, a, wbar, abar, xbar, X)
    want = X.mean(axis=0) - sigmoid(w[:, 0] + a)
    np.testing.assert_allclose(g["a"], want, atol=1e-8)
    np.testing.assert_allclose(g["w"][:, 0], want, atol=1e-8)
    np.testing.assert_allclose(g["wbar"], 0.0, atol=1e-8)
    np.testing.assert_allclose(g["abar"], 0.0, atol=1e-8)
    assert {k: v.shape for k, v in g.items()} == {"w": (D, 1), "a": (D,), "wbar": (1, D), "abar": (1,)}


@pytest.mark.parametrize("centered", [True, False])
def test_gradient_mixture_case_is_analytic(centered):
    # wbar = 0: Abar(x, .) = softmax(abar) = pi for every x, so every row of M is pi and pbar = pi
    # whatever w and a are. p(x) = sum_alpha pi_alpha A(alpha, x) is a Bernoulli mixture with
    # responsibilities r_alpha(x) = pi_alpha A(alpha, x) / p(x):
    #   d ln p / d w_i,alpha = r_alpha (x_i - s_alpha,i),  d ln p / d a_i = sum_alpha r_alpha (x_i - s_alpha,i),
    #   d ln p / d abar_beta = r_beta - pi_beta,            s_alpha,i = sigmoid(w_i,alpha + a_i).
    rng = np.random.default_rng(9)
    D, L = 5, 3
    w, a = rng.normal(size=(D, L)), 0.3 * rng.normal(size=D)
    wbar, abar, xbar = np.zeros((L, D)), rng.normal(size=L), rng.uniform(0.2, 0.8, size=D)
    X = rng.integers(0, 2, size=(25, D)).astype(float)
    g = exact_log_likelihood_gradient(w, a, wbar, abar, xbar, X, centered=centered)
    pi = np.exp(abar - abar.max())
    pi /= pi.sum()
    s = sigmoid(w + a[:, None])  # (D, L)
    logA = X @ np.log(s) + (1 - X) @ np.log(1 - s)  # (N, L)
    r = pi * np.exp(logA)
    r /= r.sum(axis=1, keepdims=True)
    dw = np.einsum("nl,ndl->dl", r, X[:, :, None] - s[None, :, :]) / len(X)
    np.testing.assert_allclose(g["w"], dw, atol=1e-8)
    np.testing.assert_allclose(g["a"], dw.sum(axis=1), atol=1e-8)
    np.testing.assert_allclose(g["abar"], (r - pi).mean(axis=0), atol=1e-8)
    # The wbar gradient is not trivially known but is finite and not zero in general.
    assert np.isfinite(g["wbar"]).all() and np.abs(g["wbar"]).max() > 1e-6


def test_gradient_ascent_increases_likelihood():
    # A small step along the finite-difference gradient must raise the exact log-likelihood.
    p = random_params(21, 4, 3)
    X = np.random.default_rng(1).integers(0, 2, size=(20, 4))
    g = exact_log_likelihood_gradient(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], X, hidden="onehot")
    f0 = exact_log_likelihood(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], X)
    step = 1e-3
    f1 = exact_log_likelihood(
        p["w"] + step * g["w"],
        p["a"] + step * g["a"],
        p["wbar"] + step * g["wbar"],
        p["abar"] + step * g["abar"],
        p["xbar"],
        X,
    )
    norm2 = sum(float((v**2).sum()) for v in g.values())
    assert f1 - f0 == pytest.approx(step * norm2, rel=1e-2)


def test_is_detailed_balance_helper():
    M = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert not is_detailed_balance(M, np.full(3, 1 / 3))
    R = np.array([[0.5, 0.5], [0.25, 0.75]])
    assert is_detailed_balance(R, np.array([1 / 3, 2 / 3]))
    with pytest.raises(ValueError):
        is_detailed_balance(R, np.ones(3))


def test_enumeration_matches_itertools_order():
    # Visible code order is little-endian in the bit index, as in the engine.
    X = visible_states(4)
    for c, bits in enumerate(itertools.product([0, 1], repeat=4)):
        assert tuple(X[c][::-1]) == bits
