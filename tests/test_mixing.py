"""Tests of the class-based mixing measures (nemm.mixing, nemm.classifier, nemm.sample_mixing) against exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nemm
from nemm.classifier import BernoulliNaiveBayes
from nemm.exact import exact_model
from nemm.mixing import (
    MixingMeasures,
    class_autocorrelation,
    class_cover_time,
    class_cover_times,
    class_kernel_from_emissions,
    exact_class_autocorrelation,
    exact_tau_int_class,
    integrated_autocorrelation_time,
    mixing_measures,
    mixing_measures_from_labels,
    sample_class_kl,
)
from nemm.sample_mixing import mixing_of

SETTINGS = settings(max_examples=40, deadline=None)


def symmetric_chain(K: int, p: float, T: int, seed: int, n_chains: int = 1) -> np.ndarray:
    """K-class chain: stay with probability 1 - p, else jump to one of the other K - 1 classes uniformly."""
    rng = np.random.default_rng(seed)
    jump = rng.random((n_chains, T)) < p
    shift = rng.integers(1, K, size=(n_chains, T)) * jump  # 0 when staying
    shift[:, 0] = rng.integers(0, K, size=n_chains)  # stationary (uniform) start
    return np.cumsum(shift, axis=1) % K


# --------------------------------------------------------------------------- naive Bayes


def direct_naive_bayes_log_proba(X: np.ndarray, y: np.ndarray, Xq: np.ndarray) -> np.ndarray:
    """ln P(c | x) written out feature by feature, Laplace alpha = 1."""
    classes = np.unique(y)
    out = np.empty((Xq.shape[0], classes.size))
    for j, c in enumerate(classes):
        Xc = X[y == c]
        theta = (Xc.sum(axis=0) + 1.0) / (Xc.shape[0] + 2.0)
        prior = Xc.shape[0] / X.shape[0]
        for n, x in enumerate(Xq):
            out[n, j] = math.log(prior) + sum(
                math.log(theta[i]) if x[i] else math.log(1.0 - theta[i]) for i in range(X.shape[1])
            )
    m = out.max(axis=1, keepdims=True)
    return out - (m + np.log(np.exp(out - m).sum(axis=1, keepdims=True)))


def test_naive_bayes_matches_direct_computation() -> None:
    rng = np.random.default_rng(3)
    X = (rng.random((60, 9)) < rng.random(9)).astype(np.uint8)
    y = rng.choice([2, 5, 7], size=60)
    Xq = (rng.random((15, 9)) < 0.5).astype(np.uint8)
    nb = BernoulliNaiveBayes().fit(X, y)
    expected = direct_naive_bayes_log_proba(X, y, Xq)
    np.testing.assert_allclose(nb.predict_log_proba(Xq), expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(nb.classes_, [2, 5, 7])
    np.testing.assert_array_equal(nb.predict(Xq), np.array([2, 5, 7])[np.argmax(expected, axis=1)])


def test_naive_bayes_is_log_domain_for_long_vectors() -> None:
    # 5000 features: a product of probabilities in linear space would underflow to 0 / 0.
    rng = np.random.default_rng(0)
    X = (rng.random((40, 5000)) < 0.3).astype(np.uint8)
    y = np.repeat([0, 1], 20)
    X[y == 1, :2500] = 1
    lp = BernoulliNaiveBayes().fit(X, y).predict_log_proba(X)
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(np.logaddexp(lp[:, 0], lp[:, 1]), 0.0, atol=1e-12)
    np.testing.assert_array_equal(np.argmax(lp, axis=1), y)


def test_naive_bayes_classifies_embedded_digits(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    train, test = np.arange(0, X.shape[0], 2), np.arange(1, X.shape[0], 2)
    nb = BernoulliNaiveBayes().fit(X[train], y[train])
    assert nb.score(X[test], y[test]) > 0.9


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.array([[0, 2], [1, 0]]), [0, 1], "only 0 and 1"),
        (np.array([[0.0, np.nan], [1, 0]]), [0, 1], "NaN"),
        (np.array([0, 1, 1]), [0, 1, 1], "two-dimensional"),
        (np.array([[0, 1], [1, 0]]), [0, 1, 1], "expected 2"),
        (np.array([[0, 1], [1, 0]]), [1, 1], "at least 2 classes"),
        (np.array([[0, 1], [1, 0]]), [0.5, 1], "integer class labels"),
    ],
)
def test_naive_bayes_rejects_bad_input(X: np.ndarray, y: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BernoulliNaiveBayes().fit(X, y)


def test_naive_bayes_rejects_bad_alpha_unfitted_use_and_wrong_width() -> None:
    X, y = np.array([[0, 1], [1, 0]]), [0, 1]
    with pytest.raises(ValueError, match="alpha"):
        BernoulliNaiveBayes(alpha=0).fit(X, y)
    with pytest.raises(RuntimeError, match="not fitted"):
        BernoulliNaiveBayes().predict(X)
    with pytest.raises(ValueError, match="3 features.*expecting 2"):
        BernoulliNaiveBayes().fit(X, y).predict(np.zeros((1, 3), dtype=np.uint8))


# --------------------------------------------------------------------------- tau_int


def test_tau_iid_labels_is_one() -> None:
    labels = np.random.default_rng(1).integers(0, 3, size=200_000)
    tau, w = integrated_autocorrelation_time(labels, 3, window="sokal", return_window=True)
    assert abs(tau - 1.0) < 0.05
    assert w in (5, 6)  # the first W >= 5 tau_int(W) for tau about 1
    tau, reach = integrated_autocorrelation_time(labels, 3, return_window=True)  # the tapered headline
    assert abs(tau - 1.0) < 0.05 and 4 * 5 - 2 <= reach <= 4 * 6


@pytest.mark.parametrize(("K", "p"), [(2, 0.1), (2, 0.3), (3, 0.2), (4, 0.3), (6, 0.5)])
def test_tau_symmetric_chain_matches_exact(K: int, p: float) -> None:
    # Every non-trivial eigenvalue of the K-class symmetric chain is r = 1 - p K / (K - 1), so
    # rho(k) = r^k and tau_int = (1 + r) / (1 - r); for K = 2 this is r = 1 - 2p.
    r = 1.0 - p * K / (K - 1)
    exact = (1.0 + r) / (1.0 - r)
    # Standard error of tau about tau sqrt(2 (2W + 1) / T) with W ~ 5 tau: under 2% here.
    T = 1_000_000 if exact > 5 else 300_000
    labels = symmetric_chain(K, p, T, seed=K * 100 + int(p * 10))
    tau = integrated_autocorrelation_time(labels, K)
    assert tau == pytest.approx(exact, rel=0.05)
    rho = class_autocorrelation(labels, K)
    np.testing.assert_allclose(rho[:4], r ** np.arange(4), atol=0.01)


def test_tau_pools_independent_chains() -> None:
    r = 1.0 - 2 * 0.1
    labels = symmetric_chain(2, 0.1, 50_000, seed=5, n_chains=20)
    assert integrated_autocorrelation_time(labels, 2) == pytest.approx((1 + r) / (1 - r), rel=0.05)


def test_tau_is_inf_for_a_stuck_chain_and_for_chains_stuck_apart() -> None:
    assert integrated_autocorrelation_time(np.full(1000, 2), 3) == math.inf
    assert np.isnan(class_autocorrelation(np.full(10, 1))).all()
    # Each chain constant but in its own class: the pooled mean sees rho(k) ~ 1 at every lag.
    assert integrated_autocorrelation_time(np.array([[0] * 500, [1] * 500, [2] * 500]), 3) == math.inf


def test_tau_is_inf_when_the_chain_is_shorter_than_its_window() -> None:
    # r = 0.998: tau = 999, far beyond what 2000 steps can resolve (W >= 5 tau never reached).
    labels = symmetric_chain(2, 0.001, 2000, seed=2)
    assert integrated_autocorrelation_time(labels, 2) == math.inf


def test_tau_deterministic_cycle() -> None:
    # rho = 1, -1/2, -1/2, 1, ... never decays: the envelope window never closes (inf, as eq. 23 says
    # for |lambda_2| = 1); Sokal's literal rule closes at W = 1 on 1 + 2 rho(1) ~ 0 (the Abel sum).
    labels = np.tile([0, 1, 2], 1000)
    assert integrated_autocorrelation_time(labels, 3, window="abs") == math.inf
    # The tapered headline: a cycle's power lies at its frequency, not at 0: tau near 0 (exact: 0).
    assert 0.0 <= integrated_autocorrelation_time(labels, 3) < 0.02
    tau, w = integrated_autocorrelation_time(labels, 3, window="sokal", return_window=True)
    assert abs(tau) < 1e-3 and w == 1
    # 0, 1, 0, 1: the literal windowed sum is -1, reported as it is by window="sokal", not clipped.
    alternating = np.tile([0, 1], 1000)
    assert integrated_autocorrelation_time(alternating, 2, window="sokal") == pytest.approx(-1.0, abs=2e-3)
    assert 0.0 <= integrated_autocorrelation_time(alternating, 2) < 0.02


@pytest.mark.parametrize("q", [0.5, 0.8, 0.95])
def test_tau_noisy_cycle_matches_exact(q: float) -> None:
    # c(t+1) = c(t) + 1 mod 3 with probability q, else c(t): P = (1-q) I + q Shift, whose modes
    # lambda = 1 - q + q exp(+-2 pi i / 3) give rho(k) = Re(lambda^k), tau = Re((1 + lambda) / (1 - lambda)).
    lam = 1 - q + q * np.exp(2j * np.pi / 3)
    exact = float(np.real((1 + lam) / (1 - lam)))
    rng = np.random.default_rng(int(q * 100))
    labels = np.cumsum(rng.random(300_000) < q) % 3
    rho = class_autocorrelation(labels, 3)
    np.testing.assert_allclose(rho[:6], np.real(lam ** np.arange(6)), atol=0.01)
    assert integrated_autocorrelation_time(labels, 3, window="abs") == pytest.approx(exact, abs=0.03)
    if q >= 0.8:  # oscillating rho: Sokal's literal rule stops within the first period, off by over 50%
        tau, w = integrated_autocorrelation_time(labels, 3, window="sokal", return_window=True)
        assert w <= 2 and abs(tau - exact) > 0.5 * exact


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    K=st.integers(2, 5),
    p=st.floats(0.05, 0.95),
    T=st.integers(50, 3000),
)
def test_tau_invariants(seed: int, K: int, p: float, T: int) -> None:
    labels = symmetric_chain(K, p, T, seed)
    assert integrated_autocorrelation_time(labels, K) >= 0.0  # the tapered headline
    tau = integrated_autocorrelation_time(labels, K, window="sokal")
    # Unclipped, but bounded: the rule stops at the first W with tau(W) <= W / c, and tau(W - 1) > 0 there.
    assert tau > -2.0
    perm = np.random.default_rng(seed).permutation(K)
    tau_perm = integrated_autocorrelation_time(perm[labels], K, window="sokal")
    assert tau_perm == pytest.approx(tau, rel=1e-9, abs=1e-9) or (math.isinf(tau) and math.isinf(tau_perm))
    # Time reversal leaves the autocovariances unchanged (to rounding), hence tau, except where the
    # window rule W >= c tau(W) is an exact tie that rounding tips over (then both sides of the tie agree).
    rho, rho_rev = class_autocorrelation(labels, K), class_autocorrelation(labels[:, ::-1], K)
    np.testing.assert_allclose(rho_rev, rho, rtol=0, atol=1e-9)
    tau_rev, w_rev = integrated_autocorrelation_time(labels[:, ::-1], K, window="sokal", return_window=True)
    _, w = integrated_autocorrelation_time(labels, K, window="sokal", return_window=True)
    if w == w_rev:
        assert tau_rev == pytest.approx(tau, rel=1e-9, abs=1e-9) or (math.isinf(tau) and math.isinf(tau_rev))
    else:
        tie = min(w, w_rev)
        assert tie == pytest.approx(5.0 * (1.0 + 2.0 * rho[1 : tie + 1].sum()), abs=1e-9)
    # Unused extra classes have zero indicator variance: they change nothing.
    tau_more = integrated_autocorrelation_time(labels, K + 2, window="sokal")
    assert tau_more == pytest.approx(tau, rel=1e-9, abs=1e-9) or (math.isinf(tau) and math.isinf(tau_more))


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(2, 4), T=st.integers(2, 60))
def test_autocorrelation_matches_direct_sums(seed: int, K: int, T: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K, size=(2, T))
    freq = np.bincount(labels.ravel(), minlength=K) / labels.size
    f = (labels[..., None] == np.arange(K)).astype(float) - freq  # (chains, T, K)
    acov = np.array([np.sum(f[:, : T - k] * f[:, k:]) for k in range(T)]) / labels.size
    rho = class_autocorrelation(labels, K)
    if acov[0] <= 1e-14:
        assert np.isnan(rho).all()
    else:
        np.testing.assert_allclose(rho, acov / acov[0], atol=1e-10)


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (np.array([0, -1, 1]), {}, "negative"),
        (np.array([0, 3, 1]), {"n_classes": 3}, "outside 0..2"),
        (np.array([0.5, 1.0]), {}, "integer class indices"),
        (np.zeros((2, 2, 2), dtype=int), {}, "one-dimensional"),
        (np.array([], dtype=int), {}, "empty"),
        (np.array([1]), {}, "at least 2 time steps"),
        (np.array([0, 1]), {"c": 0}, "c must be"),
        (np.array([0, 1]), {"window": "geyer"}, "window must be"),
    ],
)
def test_tau_rejects_bad_input(labels: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        integrated_autocorrelation_time(labels, **kwargs)


# --------------------------------------------------------------------------- cover time


def brute_cover_times(labels: np.ndarray, K: int) -> np.ndarray:
    out = np.full(labels.size, np.inf)
    for t in range(labels.size):
        for k in range(1, labels.size - t + 1):
            if len(set(labels[t : t + k].tolist())) == K:
                out[t] = k
                break
    return out


def test_cover_time_deterministic_cycle_is_exact() -> None:
    labels = np.tile([0, 1, 2], 10)
    k = class_cover_times(labels, 3)
    np.testing.assert_array_equal(k[:-2], 3.0)
    assert np.isinf(k[-2:]).all()  # the last two starts never see all three classes
    mean, frac = class_cover_time(labels, 3, return_fraction=True)
    assert mean == 3.0 and frac == 28 / 30


@pytest.mark.parametrize("K", [2, 3, 4])
def test_cover_time_iid_is_coupon_collector(K: int) -> None:
    labels = np.random.default_rng(K).integers(0, K, size=(4, 100_000))
    expected = K * sum(1.0 / j for j in range(1, K + 1))
    assert class_cover_time(labels, K) == pytest.approx(expected, rel=0.02)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), K=st.integers(1, 4), T=st.integers(1, 40))
def test_cover_times_match_brute_force(seed: int, K: int, T: int) -> None:
    labels = np.random.default_rng(seed).integers(0, K, size=T)
    np.testing.assert_array_equal(class_cover_times(labels, K), brute_cover_times(labels, K))


def test_cover_time_is_inf_when_too_few_starts_cover() -> None:
    assert class_cover_time(np.zeros(100, dtype=int), 2) == math.inf
    labels = np.array([0] * 80 + [1] * 20)  # start t < 80 covers in 81 - t steps; the rest never do
    assert class_cover_time(labels, 2, min_fraction=0.9) == math.inf
    assert class_cover_time(labels, 2, return_fraction=True) == (41.5, 0.8)
    with pytest.raises(ValueError, match="min_fraction"):
        class_cover_time(labels, 2, min_fraction=0)


def test_cover_time_does_not_run_across_chains() -> None:
    labels = np.array([[0, 0, 1], [1, 1, 0]])
    np.testing.assert_array_equal(class_cover_times(labels, 2), [[3, 2, np.inf], [3, 2, np.inf]])


# --------------------------------------------------------------------------- class KL of samples


def test_sample_class_kl_exact() -> None:
    # P_data = (1/4, 1/2, 1/4), P_model = (1/2, 1/4, 1/4): KL = 1/4 ln(1/2) + 1/2 ln 2 = ln(2) / 4.
    assert sample_class_kl([0, 0, 1, 2], [0, 1, 1, 2], 3) == pytest.approx(math.log(2) / 4, abs=1e-15)
    assert sample_class_kl([[0, 1], [2, 1]], [0, 1, 1, 2], 3) == pytest.approx(0.0, abs=1e-15)


def test_sample_class_kl_never_generated_class() -> None:
    assert sample_class_kl([0, 0, 1], [0, 1, 2], 3) == math.inf
    # pseudo-count 1: P_model = (3, 2, 1) / 6.
    expected = sum(math.log((1 / 3) / q) / 3 for q in (3 / 6, 2 / 6, 1 / 6))
    assert sample_class_kl([0, 0, 1], [0, 1, 2], 3, pseudocount=1.0) == pytest.approx(expected, abs=1e-15)
    # A class absent from the data contributes nothing, whatever its sample frequency.
    assert sample_class_kl([0, 1, 2, 2], [0, 1], 3) == pytest.approx(math.log(2), abs=1e-15)
    with pytest.raises(ValueError, match="pseudocount"):
        sample_class_kl([0], [0], 1, pseudocount=-1)


# --------------------------------------------------------------------------- the summary


def test_mixing_measures_from_labels_agrees_with_the_parts() -> None:
    labels = symmetric_chain(3, 0.4, 5000, seed=9, n_chains=2)
    data = np.array([0, 1, 2, 2])
    m = mixing_measures_from_labels(labels, data, 3, classes=[4, 5, 6])
    assert isinstance(m, MixingMeasures)
    assert m.tau_int_class == integrated_autocorrelation_time(labels, 3)
    assert m.cover_time == class_cover_time(labels, 3)
    assert m.class_kl_samples == sample_class_kl(labels, data, 3)
    assert (m.n_steps, m.n_chains, m.classes) == (5000, 2, (4, 5, 6))
    assert sum(m.class_frequencies) == pytest.approx(1.0)
    assert m.window_rule == "tapered"
    assert m.tau_int_class_sokal == integrated_autocorrelation_time(labels, 3, window="sokal")
    assert m.tau_int_class_envelope == integrated_autocorrelation_time(labels, 3, window="abs")
    ms = mixing_measures_from_labels(labels, data, 3, window="abs")
    assert ms.tau_int_class == m.tau_int_class_envelope
    assert ms.window_rule == "abs"
    d = m.as_dict()
    assert d["classes"] == [4, 5, 6] and d["tau_int_class"] == m.tau_int_class


def test_mixing_measures_iid_draws_from_the_data(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    nb = BernoulliNaiveBayes().fit(X, y)
    idx = np.random.default_rng(0).integers(0, X.shape[0], size=20_000)
    m = mixing_measures(X[idx], nb, y)
    assert abs(m.tau_int_class - 1.0) < 0.15
    assert m.cover_time == pytest.approx(5.5, rel=0.1)  # near-uniform three classes: 3 H_3 = 5.5
    assert m.class_kl_samples < 0.01
    # Two chains of the same draws give the same frequencies and a pooled tau.
    m2 = mixing_measures(X[idx].reshape(2, 10_000, -1), nb, y)
    assert m2.n_chains == 2 and m2.class_frequencies == m.class_frequencies


def test_mixing_measures_sees_a_sorted_sequence_as_stuck(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    nb = BernoulliNaiveBayes().fit(X, y)
    order = np.argsort(y, kind="stable")  # all zeros, then all ones, then all twos: one class at a time
    m = mixing_measures(X[order], nb, y)
    assert m.tau_int_class > 100  # blocks of about 1000 steps
    assert m.cover_time > 400 and m.cover_fraction < 0.9


def test_mixing_measures_rejects_bad_input(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    nb = BernoulliNaiveBayes().fit(X[:300], y[:300])
    with pytest.raises(ValueError, match="shape"):
        mixing_measures(X[0], nb, y)
    with pytest.raises(ValueError, match="not among the classes"):
        mixing_measures(X[:10], nb, np.array([0, 1, 7]))


# --------------------------------------------------------------------------- mixing_of: every kind of model


def test_mixing_of_iid_mixture_draws_is_one(digits: tuple[np.ndarray, np.ndarray]) -> None:
    from nemm.baselines import BernoulliMixture

    X, y = digits
    mix = BernoulliMixture(n_components=3, n_init=1, random_state=0).fit(X)
    m = mixing_of(mix, X, y, n_steps=20_000, seed=1)
    assert (m.n_chains, m.n_steps) == (1, 20_000)
    assert abs(m.tau_int_class - 1.0) < 0.15 and abs(m.tau_int_class_envelope - 1.0) < 0.15
    assert m.cover_time < 8  # near the coupon collector's 5.5 for three classes
    # The same draws as the mixture's own sampler with that seed.
    m2 = mixing_of(mix, X, y, n_steps=10_000, seed=1, n_chains=2)
    assert m2.n_chains == 2 and m2.class_frequencies == m.class_frequencies


def _prototypes(D: int = 12, n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    protos = np.zeros((3, D), dtype=bool)
    for k in range(3):
        protos[k, k * (D // 3) : (k + 1) * (D // 3)] = True
    y = rng.integers(0, 3, n)
    X = np.where(rng.random((n, D)) < 0.05, ~protos[y], protos[y]).astype(np.uint8)
    return X, y, protos


def test_mixing_of_an_rbm_stuck_in_one_class_is_inf() -> None:
    from nemm.rbm import RBM

    X, y, protos = _prototypes()
    # Deep wells: x | h is a sharp prototype, and h | x picks that prototype's state back: the Gibbs
    # chain never leaves its first hidden state, so its class never changes.
    w = np.where(protos.T, 8.0, -8.0)
    rbm = RBM.from_params(w, np.zeros(12), np.zeros(3), hidden="onehot", random_state=0)
    m = mixing_of(rbm, X, y, n_steps=3000, seed=2)
    assert m.tau_int_class == math.inf and m.tau_int_class_envelope == math.inf
    assert m.cover_time == math.inf
    assert max(m.class_frequencies) == 1.0


def test_mixing_of_runs_consecutive_steps_of_the_machine_chain() -> None:
    from nemm import Machine

    X, y, protos = _prototypes()
    w = np.where(protos.T, 4.0, -4.0)
    # A deterministic-ish cycle 0 -> 1 -> 2 -> 0 in the backward weights: the class turns every step.
    wbar = np.roll(np.where(protos, 4.0, -4.0), 1, axis=0)
    m = Machine.from_params(
        w, np.zeros(12), wbar, np.zeros(3), hidden="onehot", centered=False, random_state=0
    )
    mm = mixing_of(m, X, y, n_steps=4000, seed=3, n_chains=2)
    assert (mm.n_chains, mm.n_steps) == (2, 4000)
    # A cycling chain: successive samples change class almost always (below the i.i.d. value 1).
    assert 0.0 <= mm.tau_int_class < 1.0
    assert mm.cover_time < 4.0


# --------------------------------------------------------------------------- the exact oracle (issue 17 part 3)


def _noisy_cycle(period: int, q: float, T: int, seed: int) -> np.ndarray:
    """Classes that turn c -> c + 1 mod period with probability q per step: an oscillating rho."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.random(T) < q) % period


def test_exact_oracle_of_a_hidden_markov_model_matches_a_long_simulation() -> None:
    M = np.array([[0.1, 0.8, 0.1, 0.0], [0.0, 0.1, 0.8, 0.1], [0.1, 0.0, 0.1, 0.8], [0.8, 0.1, 0.0, 0.1]])
    B = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1], [0.0, 0.2, 0.8], [0.7, 0.0, 0.3]])
    K = class_kernel_from_emissions(M, B)
    rng = np.random.default_rng(3)
    T = 400_000
    cum_M, cum_B = np.cumsum(M, axis=1), np.cumsum(B, axis=1)
    u, v = rng.random(T), rng.random(T)
    z = np.empty(T, dtype=np.int64)
    z[0] = 0
    for t in range(1, T):
        z[t] = np.searchsorted(cum_M[z[t - 1]], u[t], side="right")
    labels = (v[:, None] > cum_B[z]).sum(axis=1)
    rho = class_autocorrelation(labels, 3)
    np.testing.assert_allclose(rho[:12], exact_class_autocorrelation(K, 11), atol=0.01)
    exact = exact_tau_int_class(K)
    assert integrated_autocorrelation_time(labels, 3) == pytest.approx(exact, rel=0.1, abs=0.05)
    # The closed form is the sum of the exact rho.
    long = exact_class_autocorrelation(K, 2000)
    assert exact == pytest.approx(1 + 2 * long[1:].sum(), rel=1e-9)


def test_exact_oracle_of_a_tiny_machine_matches_its_sampling_chain() -> None:
    from nemm import Machine
    from nemm.sample_mixing import class_kernel_of, exact_tau_int_class_of

    X, y, protos = _prototypes(D=9, n=600, seed=4)
    rng = np.random.default_rng(7)
    # A noisy cycle 0 -> 1 -> 2 through the prototypes: the class autocorrelation oscillates.
    w = np.where(protos.T, 2.0, -2.0) + rng.normal(0, 0.3, (9, 3))
    wbar = np.roll(np.where(protos, 1.2, -1.2), 1, axis=0)
    m = Machine.from_params(
        w, np.zeros(9), wbar, np.zeros(3), hidden="onehot", centered=False, random_state=0
    )
    clf = BernoulliNaiveBayes().fit(X, y)
    K = class_kernel_of(m, clf)  # exact: every one of the 2^9 images
    assert K.shape == (3, 3, 3)
    # Summed over classes it is the machine's exact M (eq. 3), enumerated independently.
    ex = exact_model(m.w_, m.a_, m.wbar_, m.abar_, m.xbar_, "onehot", m.normalization, m.centered)
    np.testing.assert_allclose(K.sum(axis=0), ex.M, atol=1e-12)
    mm = mixing_of(m, X, y, n_steps=400_000, seed=5, classifier=clf)
    labels = np.asarray(clf.predict(m.sample(400_000, n_chains=1, thin=1, burn_in=1000, seed=5)))
    rho = class_autocorrelation(labels, 3)
    exact_rho = exact_class_autocorrelation(K, 10)
    assert exact_rho[1] < -0.2  # the oracle is tested on an oscillating rho
    np.testing.assert_allclose(rho[:11], exact_rho, atol=0.01)
    exact = exact_tau_int_class_of(m, X, y, classifier=clf)
    assert exact == exact_tau_int_class(K)
    assert mm.tau_int_class == pytest.approx(exact, rel=0.1, abs=0.05)
    # The Rao-Blackwell kernel (images drawn per state, as for D = 784) agrees with the exact one.
    import nemm.sample_mixing as sm

    try:
        sm.EXACT_VISIBLE_LIMIT, saved = 0, sm.EXACT_VISIBLE_LIMIT
        K_rb = class_kernel_of(m, clf, n_draws=20_000, seed=1)
    finally:
        sm.EXACT_VISIBLE_LIMIT = saved
    np.testing.assert_allclose(K_rb, K, atol=0.01)


def test_class_kernel_of_an_rbm_is_that_of_its_gibbs_chain() -> None:
    from nemm.rbm import RBM
    from nemm.sample_mixing import class_kernel_of

    X, y, protos = _prototypes(D=9, n=300, seed=2)
    rng = np.random.default_rng(1)
    w = np.where(protos.T, 1.5, -1.5) + rng.normal(0, 0.3, (9, 3))
    rbm = RBM.from_params(w, np.zeros(9), np.zeros(3), hidden="onehot", random_state=0)
    K = class_kernel_of(rbm, BernoulliNaiveBayes().fit(X, y))
    g = rbm._gibbs()
    ex = exact_model(g.w_, g.a_, g.wbar_, g.abar_, g.xbar_, "onehot", g.normalization, g.centered)
    np.testing.assert_allclose(K.sum(axis=0), ex.M, atol=1e-12)
    # Detailed balance of the Gibbs chain: pbar(z) K_c(z, z') summed over classes is symmetric.
    J = ex.pbar[:, None] * K.sum(axis=0)
    np.testing.assert_allclose(J, J.T, atol=1e-12)


def test_exact_tau_edge_cases() -> None:
    # One class only, or a chain that never decorrelates: inf; i.i.d. classes: 1.
    assert (
        exact_tau_int_class(class_kernel_from_emissions(np.eye(2) * 0.5 + 0.25, [[1.0], [1.0]])) == math.inf
    )
    cycle = np.roll(np.eye(3), 1, axis=1)  # periodic: the Cesaro sum, 1 + 2 (-1/2) = 0
    assert exact_tau_int_class(class_kernel_from_emissions(cycle, np.eye(3))) == pytest.approx(0.0, abs=1e-12)
    assert exact_tau_int_class(class_kernel_from_emissions(np.eye(3), np.eye(3))) == math.inf  # reducible
    iid = class_kernel_from_emissions(np.full((3, 3), 1 / 3), np.eye(3))
    assert exact_tau_int_class(iid) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(exact_class_autocorrelation(iid, 3), [1, 0, 0, 0], atol=1e-12)
    with pytest.raises(ValueError, match="row-stochastic"):
        exact_tau_int_class(np.full((2, 2, 2), 0.5))
    with pytest.raises(ValueError, match="shape"):
        exact_tau_int_class(np.eye(3))


@SETTINGS
@given(
    period=st.integers(2, 8),
    q=st.floats(0.5, 1.0),
    T=st.integers(100, 5000),
    seed=st.integers(0, 2**32 - 1),
    n_chains=st.integers(1, 3),
)
def test_headline_tau_is_never_negative_on_oscillating_sequences(
    period: int, q: float, T: int, seed: int, n_chains: int
) -> None:
    labels = np.stack([_noisy_cycle(period, q, T, seed + i) for i in range(n_chains)])
    tau, reach = integrated_autocorrelation_time(labels, period, return_window=True)
    assert tau >= 0.0
    assert math.isinf(tau) == (reach == -1)
    assert reach < T


def test_headline_tau_where_the_literal_window_goes_negative() -> None:
    # A noisy 3-cycle of six hidden states (class = state mod 3, as two states per digit on a trained
    # machine): the literal rule stops at the first trough, below 0; the tapered sum matches the exact
    # value, Re((1 + lam) / (1 - lam)) of the class cycle's mode lam = 1 - q + q exp(2 pi i / 3).
    q = 0.9
    lam = 1 - q + q * np.exp(2j * np.pi / 3)
    exact = float(np.real((1 + lam) / (1 - lam)))
    M = (1 - q) * np.eye(6) + q * np.roll(np.eye(6), 1, axis=1)
    K = class_kernel_from_emissions(M, np.tile(np.eye(3), (2, 1)))
    assert exact_tau_int_class(K) == pytest.approx(exact, rel=1e-9)
    labels = _noisy_cycle(3, q, 200_000, 11)
    assert integrated_autocorrelation_time(labels, 3, window="sokal") < -0.5
    assert integrated_autocorrelation_time(labels, 3) == pytest.approx(exact, rel=0.1, abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_headline_tau_matches_the_exact_value_on_trained_machines(
    seed: int, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    from nemm import Machine
    from nemm.sample_mixing import MIXING_STEPS, exact_tau_int_class_of

    X, y = digits
    m = Machine(6, random_state=seed).fit(X)  # the paper's protocol on the embedded digits
    clf = BernoulliNaiveBayes().fit(X, y)
    exact = exact_tau_int_class_of(m, X, y, n_draws=4000, seed=1, classifier=clf)
    mm = mixing_of(m, X, y, n_steps=MIXING_STEPS, seed=2, classifier=clf)
    assert mm.tau_int_class >= 0.0
    assert mm.tau_int_class == pytest.approx(exact, rel=0.1, abs=0.05)


def test_mixing_of_rejects_other_objects(digits: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = digits
    with pytest.raises(TypeError, match="Machine, an RBM or a BernoulliMixture"):
        mixing_of(object(), X[:100], y[:100], n_steps=10)
    with pytest.raises(ValueError, match="n_steps"):
        mixing_of(object(), X[:100], y[:100], n_steps=1)


def test_the_math_layer_never_imports_a_model() -> None:
    """mixing.py and classifier.py are pure array code (with the Markov math of markov.py); running a
    model is sample_mixing's job."""
    import ast
    from pathlib import Path

    pkg = Path(nemm.__file__).resolve().parent
    for name, allowed in (("mixing", {"_checks", "markov"}), ("classifier", {"_checks", "_logdomain"})):
        tree = ast.parse((pkg / f"{name}.py").read_text(encoding="utf-8"))
        imported = {
            (n.module or "").removeprefix("nemm.")
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("nemm"))
        }
        imported |= {
            a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.Import)
            for a in n.names
            if a.name.startswith("nemm")
        }
        assert imported == allowed, f"nemm.{name} imports {sorted(imported)}"
