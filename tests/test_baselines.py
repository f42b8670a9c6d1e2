"""Tests of the EM Bernoulli-mixture baseline (nemm.baselines)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from nemm.baselines import BernoulliMixture, fit_em_ceiling

# ---------------------------------------------------------------- helpers


def _mixture_data(weights: np.ndarray, means: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` points from a known product-Bernoulli mixture."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(len(weights), size=n, p=weights)
    X = (rng.random((n, means.shape[1])) < means[labels]).astype(np.uint8)
    return X, labels


def _brute_force_log_p(X: np.ndarray, weights: np.ndarray, means: np.ndarray) -> np.ndarray:
    """ln p(x) by the elementwise log-domain sum, independent of the implementation."""
    X = X.astype(np.float64)[:, None, :]  # (N, 1, D)
    comp = np.sum(X * np.log(means)[None] + (1.0 - X) * np.log(1.0 - means)[None], axis=2)  # (N, K)
    return logsumexp(comp + np.log(weights)[None], axis=1)


def _best_permutation(true_means: np.ndarray, est_means: np.ndarray) -> tuple[int, ...]:
    """Component permutation of the estimate that best matches the truth."""
    K = true_means.shape[0]
    return min(
        itertools.permutations(range(K)),
        key=lambda perm: float(np.abs(est_means[list(perm)] - true_means).sum()),
    )


def _fitted(weights: np.ndarray, means: np.ndarray) -> BernoulliMixture:
    """A mixture with given parameters, as if fitted."""
    bm = BernoulliMixture(n_components=len(weights))
    bm.weights_ = np.asarray(weights, dtype=np.float64)
    bm.means_ = np.asarray(means, dtype=np.float64)
    return bm


TRUE_W = np.array([0.2, 0.3, 0.5])
TRUE_MEANS = np.random.default_rng(123).uniform(0.1, 0.9, size=(3, 24))


# ------------------------------------------------------------------ tests


def test_em_never_decreases_log_likelihood() -> None:
    X, _ = _mixture_data(TRUE_W, TRUE_MEANS, 2000, seed=1)
    bm = BernoulliMixture(n_components=4, n_init=1, max_iter=300, tol=0.0, random_state=0).fit(X)
    trace = np.asarray(bm.ll_trace_)
    assert len(trace) >= 10
    # Round-off allowance only: an EM step that loses likelihood is a bug.
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:])), np.diff(trace).min()
    assert bm.log_likelihood_ == pytest.approx(trace[-1])
    assert bm.log_likelihood_ == pytest.approx(bm.score(X), abs=1e-9)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5), init=st.sampled_from(["kmeans++", "subsets"]))
def test_em_monotone_on_random_data(seed: int, k: int, init: str) -> None:
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(k, 60)), int(rng.integers(1, 12))
    X = (rng.random((n, d)) < rng.random(d)).astype(np.uint8)
    bm = BernoulliMixture(n_components=k, n_init=1, max_iter=50, tol=0.0, random_state=seed, init=init).fit(X)
    trace = np.asarray(bm.ll_trace_)
    assert np.all(np.isfinite(trace))
    assert np.all(np.diff(trace) >= -1e-9 * (1.0 + np.abs(trace[1:])))
    assert np.all((bm.means_ >= 1e-6) & (bm.means_ <= 1 - 1e-6))
    assert bm.weights_.sum() == pytest.approx(1.0)


def test_recovers_known_mixture() -> None:
    n = 10000
    X, labels = _mixture_data(TRUE_W, TRUE_MEANS, n, seed=2)
    bm = BernoulliMixture(n_components=3, n_init=2, random_state=0).fit(X)
    perm = list(_best_permutation(TRUE_MEANS, bm.means_))
    w_hat, m_hat = bm.weights_[perm], bm.means_[perm]
    # Tolerances: 5 standard errors of the ideal (labels-known) estimators.
    w_se = np.sqrt(TRUE_W * (1 - TRUE_W) / n)
    assert np.all(np.abs(w_hat - TRUE_W) < 5 * w_se + 1e-3), (w_hat, TRUE_W)
    m_se = np.sqrt(TRUE_MEANS * (1 - TRUE_MEANS) / (n * TRUE_W[:, None]))
    assert np.all(np.abs(m_hat - TRUE_MEANS) < 5 * m_se + 2e-3), np.abs(m_hat - TRUE_MEANS).max()
    # predict() is as good as the Bayes classifier built from the true parameters.
    inverse = np.argsort(perm)
    bayes = np.argmax(_fitted(TRUE_W, TRUE_MEANS).predict_proba(X), axis=1)
    assert np.mean(inverse[bm.predict(X)] == labels) > np.mean(bayes == labels) - 0.01
    assert bm.converged_ and 1 <= bm.n_iter_ < 500


def test_score_samples_matches_brute_force() -> None:
    X, _ = _mixture_data(TRUE_W, TRUE_MEANS, 500, seed=3)
    bm = BernoulliMixture(n_components=3, n_init=2, random_state=1).fit(X)
    np.testing.assert_allclose(
        bm.score_samples(X), _brute_force_log_p(X, bm.weights_, bm.means_), rtol=1e-12, atol=1e-9
    )
    assert bm.score(X) == pytest.approx(_brute_force_log_p(X, bm.weights_, bm.means_).mean(), rel=1e-12)
    proba = bm.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_score_samples_large_dimension_no_underflow() -> None:
    # D = 784: the product of probabilities underflows; the log-domain score must not.
    rng = np.random.default_rng(4)
    means = rng.uniform(0.01, 0.99, size=(2, 784))
    bm = _fitted(np.array([0.4, 0.6]), means)
    X, _ = bm.sample(20, random_state=5)
    s = bm.score_samples(X)
    assert np.all(np.isfinite(s)) and np.all(s < -100)
    np.testing.assert_allclose(s, _brute_force_log_p(X, bm.weights_, means), rtol=1e-12)


def test_sample_statistics() -> None:
    bm = _fitted(TRUE_W, TRUE_MEANS)
    n = 40000
    X, labels = bm.sample(n, random_state=6)
    assert X.shape == (n, TRUE_MEANS.shape[1]) and X.dtype == np.uint8 and labels.shape == (n,)
    freq = np.bincount(labels, minlength=3) / n
    assert np.all(np.abs(freq - TRUE_W) < 5 * np.sqrt(TRUE_W * (1 - TRUE_W) / n))
    marg = TRUE_W @ TRUE_MEANS
    assert np.all(np.abs(X.mean(axis=0) - marg) < 5 * np.sqrt(marg * (1 - marg) / n))
    for k in range(3):  # conditional means given the label
        nk = int(np.sum(labels == k))
        se = np.sqrt(TRUE_MEANS[k] * (1 - TRUE_MEANS[k]) / nk)
        assert np.all(np.abs(X[labels == k].mean(axis=0) - TRUE_MEANS[k]) < 5 * se)
    # Reproducible with a seed.
    X2, labels2 = bm.sample(n, random_state=6)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(labels, labels2)


def test_as_machine_params_reproduces_log_p() -> None:
    X, _ = _mixture_data(TRUE_W, TRUE_MEANS, 800, seed=7)
    bm = BernoulliMixture(n_components=3, n_init=2, random_state=2).fit(X)
    params = bm.as_machine_params()
    D, K = X.shape[1], 3
    assert params["w"].shape == (D, K) and params["a"].shape == (D,) and params["log_weights"].shape == (K,)
    np.testing.assert_array_equal(params["a"], 0.0)
    np.testing.assert_allclose(np.exp(params["log_weights"]), bm.weights_, rtol=1e-12)
    # The one-hot machine's emission kernel: log A(k, x) = sum_i x_i h_i - softplus(h_i), h = w[:, k] + a.
    H = params["w"] + params["a"][:, None]  # (D, K)
    log_A = X.astype(np.float64) @ H - np.logaddexp(0.0, H).sum(axis=0)  # (N, K)
    log_p = logsumexp(params["log_weights"][None] + log_A, axis=1)
    np.testing.assert_allclose(log_p, bm.score_samples(X), rtol=1e-11, atol=1e-9)


def test_deterministic_given_seed() -> None:
    X, _ = _mixture_data(TRUE_W, TRUE_MEANS, 600, seed=8)
    a = BernoulliMixture(n_components=3, n_init=2, random_state=11).fit(X)
    b = BernoulliMixture(n_components=3, n_init=2, random_state=11).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    assert a.log_likelihood_ == b.log_likelihood_
    assert fit_em_ceiling(X, 3, n_init=2, random_state=11) == a.log_likelihood_


def test_more_restarts_never_worse() -> None:
    X, _ = _mixture_data(TRUE_W, TRUE_MEANS, 600, seed=9)
    # The first restart of n_init=4 is the n_init=1 run (same generator stream), so the best can only improve.
    one = BernoulliMixture(n_components=5, n_init=1, random_state=3).fit(X).log_likelihood_
    four = BernoulliMixture(n_components=5, n_init=4, random_state=3).fit(X).log_likelihood_
    assert four >= one


@pytest.mark.parametrize(
    "bad, exc",
    [
        (np.array([[0.0, np.nan], [1.0, 0.0]]), ValueError),
        (np.array([[0, 2], [1, 0]]), ValueError),
        (np.array([[0.0, 0.5], [1.0, 0.0]]), ValueError),
        (np.array([0, 1, 1, 0]), ValueError),
        (np.zeros((2, 2, 2)), ValueError),
        (np.zeros((0, 5)), ValueError),
        (np.array([["a", "b"]]), TypeError),
    ],
)
def test_bad_input_rejected(bad: np.ndarray, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        BernoulliMixture(n_components=1).fit(bad)


def test_bad_input_at_score_and_hyperparameters() -> None:
    X, _ = _mixture_data(TRUE_W, TRUE_MEANS, 100, seed=10)
    with pytest.raises(RuntimeError):
        BernoulliMixture(n_components=2).score(X)
    bm = BernoulliMixture(n_components=2, n_init=1, random_state=0).fit(X)
    with pytest.raises(ValueError):
        bm.score_samples(X[:, :-1])  # wrong number of features
    with pytest.raises(ValueError):
        bm.predict(np.where(X == 1, 3, 0))
    with pytest.raises(ValueError):
        bm.sample(0)
    for kwargs in (
        {"n_components": 0},
        {"n_components": 101},
        {"n_init": 0},
        {"max_iter": 0},
        {"tol": -1.0},
        {"init": "x"},
    ):
        with pytest.raises(ValueError):
            BernoulliMixture(**kwargs).fit(X)


def test_accepts_bool_and_float_input() -> None:
    X, _ = _mixture_data(TRUE_W, TRUE_MEANS, 300, seed=12)
    ref = BernoulliMixture(n_components=2, n_init=1, random_state=0).fit(X)
    for variant in (X.astype(bool), X.astype(np.float32), X.astype(np.int64)):
        other = BernoulliMixture(n_components=2, n_init=1, random_state=0).fit(variant)
        np.testing.assert_allclose(other.means_, ref.means_, rtol=1e-12)


def test_paper_subset_ceiling() -> None:
    from nemm.datasets import embedded_digits

    X, _ = embedded_digits()  # the paper subset of the test split (spec "Data")
    assert X.shape == (2980, 784)
    bm = BernoulliMixture(n_components=6, n_init=2, random_state=0).fit(X)
    # Spec reference: about -146.8 nats per digit for 6 components.
    assert -148.0 <= bm.log_likelihood_ <= -145.0, bm.log_likelihood_
    assert bm.converged_
    assert np.all(np.diff(bm.ll_trace_) >= -1e-9)
