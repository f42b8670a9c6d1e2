"""The RBM's samplers (issue 17.4): exact i.i.d. draws and parallel tempering against the exact p(x)
of tiny RBMs, PT's swap rates, PT on the trained RBM whose Gibbs chain is stuck, thread counts,
seeds and refusals."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from scipy.stats import chi2

import nemm
from nemm import _core
from nemm.classifier import BernoulliNaiveBayes
from nemm.datasets import embedded_digits
from nemm.rbm import RBM, pt_betas
from nemm.sample_mixing import mixing_of

# Chi-square tests at this significance: a correct sampler fails one in 10^4 seeds (fixed here).
ALPHA = 1e-4


def tiny_rbm(hidden: str, L: int, D: int = 5, scale: float = 1.5, seed: int = 0, **settings: object) -> RBM:
    rng = np.random.default_rng(seed)
    return RBM.from_params(
        rng.normal(0.0, scale, (D, L)),
        rng.normal(0.0, 1.0, D),
        rng.normal(0.0, 1.0, L),
        n_hidden=L,
        hidden=hidden,
        **settings,
    )


def exact_px(r: RBM) -> tuple[np.ndarray, np.ndarray]:
    """Every x of {0,1}^D (rows) and its exact p(x) (from the RBM's exact ln p, checked to sum to 1)."""
    D = r.n_features_in_
    xs = np.array(list(itertools.product((0, 1), repeat=D)), dtype=np.uint8)
    p = np.exp(r.score_samples(xs))
    assert p.sum() == pytest.approx(1.0, abs=1e-10)
    return xs, p


def chi_square_pvalue(X: np.ndarray, xs: np.ndarray, p: np.ndarray) -> float:
    """p-value of the counts of the rows of X against the probabilities p of the rows xs."""
    codes = X.astype(np.int64) @ (1 << np.arange(X.shape[1])[::-1])
    want = xs.astype(np.int64) @ (1 << np.arange(xs.shape[1])[::-1])
    counts = np.bincount(codes, minlength=len(p))[want]
    expected = p * len(X)
    stat = float(((counts - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, len(p) - 1))


@pytest.mark.parametrize(("hidden", "L"), [("onehot", 3), ("binary", 3)])
def test_exact_sampler_draws_the_exact_distribution(hidden: str, L: int) -> None:
    r = tiny_rbm(hidden, L, sampler="exact")
    xs, p = exact_px(r)
    X = r.sample(40_000, seed=1)
    assert X.shape == (40_000, 5) and X.dtype == np.uint8
    assert chi_square_pvalue(X, xs, p) > ALPHA
    # The draws are independent: no autocorrelation of the first pixel at lag 1.
    x0 = X[:, 0].astype(float) - X[:, 0].mean()
    assert abs((x0[1:] * x0[:-1]).mean() / x0.var()) < 0.03


def test_exact_sampler_would_fail_on_another_distribution() -> None:
    """The chi-square test can fail: draws of one RBM against the p(x) of another."""
    r, other = tiny_rbm("onehot", 3, sampler="exact"), tiny_rbm("onehot", 3, seed=5)
    xs, p = exact_px(other)
    assert chi_square_pvalue(r.sample(40_000, seed=1), xs, p) < ALPHA


def test_exact_hidden_draws_follow_p_of_h() -> None:
    r = tiny_rbm("onehot", 4, sampler="exact")
    lw = r._engine.hidden_log_weights()
    ph = np.exp(lw - np.logaddexp.reduce(lw))
    # ln Z is logsumexp of the hidden log weights.
    assert np.logaddexp.reduce(lw) == pytest.approx(r.log_partition(), abs=1e-10)
    _, Z = r.sample(40_000, seed=2, return_hidden=True)
    counts = np.bincount(Z, minlength=4)
    stat = float(((counts - ph * len(Z)) ** 2 / (ph * len(Z))).sum())
    assert chi2.sf(stat, 3) > ALPHA


@pytest.mark.parametrize(("hidden", "L"), [("onehot", 3), ("binary", 2)])
def test_parallel_tempering_samples_the_exact_distribution_at_beta_1(hidden: str, L: int) -> None:
    """Many short PT chains, thinned: their beta = 1 samples against the exact p(x)."""
    r = tiny_rbm(hidden, L, scale=2.5, sampler="pt", pt_temperatures=4, pt_beta_min=0.2)
    xs, p = exact_px(r)
    X = r.sample(40_000, n_chains=400, burn_in=50, thin=5, seed=3)
    assert chi_square_pvalue(X, xs, p) > ALPHA
    rates = r.pt_swap_rates_
    assert rates.shape == (3,) and np.all((rates >= 0) & (rates <= 1)) and rates.max() > 0
    np.testing.assert_allclose(r.pt_betas_, [1.0, 0.2 ** (1 / 3), 0.2 ** (2 / 3), 0.2])
    assert r.sample_cost_ == 4 * 5


def test_pt_ladder_is_geometric_from_one() -> None:
    b = pt_betas(5, 0.1)
    assert b[0] == 1.0 and b[-1] == pytest.approx(0.1)
    np.testing.assert_allclose(b[1:] / b[:-1], 0.1**0.25)


@pytest.fixture(scope="module")
def stuck_rbm() -> tuple[RBM, np.ndarray, np.ndarray]:
    """The spec's example: its Gibbs chain never leaves its hidden state (Tr(M)/L = 1)."""
    X, y = embedded_digits()
    return RBM(6, random_state=1).fit(X), X, y


def test_parallel_tempering_moves_the_stuck_rbm_between_classes(
    stuck_rbm: tuple[RBM, np.ndarray, np.ndarray],
) -> None:
    r, X, y = stuck_rbm
    clf = BernoulliNaiveBayes().fit(X, y)
    _, zg = r.sample(3000, n_chains=1, thin=1, seed=4, return_hidden=True, sampler="gibbs")
    assert len(np.unique(zg)) == 1  # the Gibbs chain is stuck
    gibbs = mixing_of(r, X, y, n_steps=3000, seed=4, sampler="gibbs", classifier=clf)
    assert np.isinf(gibbs.tau_int_class) and sum(f > 0 for f in gibbs.class_frequencies) == 1
    # PT (the default ladder, 16 rungs down to beta = 0.2): its beta = 1 chains change class.
    Xp = r.sample(20_000, n_chains=4, thin=1, burn_in=500, seed=4, sampler="pt")
    labels = clf.predict(Xp).reshape(4, -1)
    changes = int((labels[:, 1:] != labels[:, :-1]).sum())
    assert changes >= 4 and len(np.unique(labels)) >= 2
    assert r.pt_swap_rates_.shape == (15,)
    assert np.all((r.pt_swap_rates_ >= 0) & (r.pt_swap_rates_ <= 1)) and r.pt_swap_rates_.min() > 0.05
    # The exact sampler reaches every class in about the data's proportions, i.i.d.
    exact = mixing_of(r, X, y, n_steps=3000, seed=4, sampler="exact", classifier=clf)
    assert min(exact.class_frequencies) > 0.15 and abs(exact.tau_int_class - 1) < 0.3


@pytest.fixture
def restore_threads() -> Iterator[None]:
    saved = _core.max_threads()
    yield
    nemm.set_num_threads(saved)


@pytest.mark.skipif(not nemm.openmp_enabled(), reason="the core was built without OpenMP")
@pytest.mark.parametrize("sampler", ["pt", "exact"])
def test_samples_do_not_depend_on_the_thread_count(sampler: str, restore_threads: None) -> None:
    r = tiny_rbm("binary", 4, D=40, sampler=sampler, pt_temperatures=5)
    out = []
    for threads in (1, 2, 3):
        nemm.set_num_threads(threads)
        X, Z = r.sample(3000, n_chains=7, thin=2, burn_in=10, seed=11, return_hidden=True)
        out.append((X, Z, getattr(r, "pt_swap_rates_", None)))
    for X, Z, rates in out[1:]:
        np.testing.assert_array_equal(X, out[0][0])
        np.testing.assert_array_equal(Z, out[0][1])
        if sampler == "pt":
            np.testing.assert_array_equal(rates, out[0][2])


@pytest.mark.parametrize("sampler", ["gibbs", "pt", "exact"])
def test_seeds_make_draws_reproducible(sampler: str) -> None:
    r = tiny_rbm("onehot", 3, D=20)
    a = r.sample(200, seed=5, sampler=sampler)
    np.testing.assert_array_equal(a, r.sample(200, seed=5, sampler=sampler))
    assert not np.array_equal(a, r.sample(200, seed=6, sampler=sampler))
    # random_state is the default seed
    r2 = tiny_rbm("onehot", 3, D=20, random_state=5)
    np.testing.assert_array_equal(r2.sample(200, sampler=sampler), r2.sample(200, seed=5, sampler=sampler))


def test_the_sampler_setting_is_the_default_of_sample() -> None:
    r = tiny_rbm("onehot", 3, D=20, sampler="exact")
    np.testing.assert_array_equal(r.sample(100, seed=1), r.sample(100, seed=1, sampler="exact"))
    assert r.sample_cost_ == pytest.approx(0.5 + 0.5 * 3 / 100)
    assert not np.array_equal(r.sample(100, seed=1), r.sample(100, seed=1, sampler="gibbs"))
    assert r.sample_cost_ == 10.0  # Gibbs: thin sweeps per sample


def test_bad_sampler_names_and_ladders_are_refused() -> None:
    X, _ = embedded_digits()
    with pytest.raises(ValueError, match="sampler"):
        RBM(3, n_epochs=1, sampler="metropolis").fit(X[:50])
    r = tiny_rbm("onehot", 3)
    with pytest.raises(ValueError, match="sampler"):
        r.sample(10, sampler="hmc")
    with pytest.raises(TypeError, match="sampler"):
        r.sample(10, sampler=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pt_beta_min"):
        tiny_rbm("onehot", 3, pt_beta_min=1.0).sample(10, sampler="pt")
    with pytest.raises(ValueError, match="pt_beta_min"):
        tiny_rbm("onehot", 3, pt_beta_min=0.0).sample(10, sampler="pt")
    with pytest.raises(ValueError, match="pt_temperatures"):
        tiny_rbm("onehot", 3, pt_temperatures=1).sample(10, sampler="pt")
    machine = nemm.Machine.from_params(r.w_, r.a_, r.w_.T, r.abar_, r.xbar_, n_hidden=3)
    with pytest.raises(TypeError, match="sampler='pt' applies to an RBM only"):
        mixing_of(machine, X[:50, :5], np.zeros(50, dtype=int), n_steps=10, sampler="pt")


def test_exact_sampler_refuses_a_hidden_layer_it_cannot_enumerate() -> None:
    big = tiny_rbm("binary", 17, D=6)
    with pytest.raises(ValueError, match=r"sampler='exact'.*131072.*use sampler='pt'"):
        big.sample(10, sampler="exact")
    with pytest.raises(ValueError, match=r"sampler='exact'"):
        RBM(17, hidden="binary", sampler="exact").fit(np.zeros((4, 6), dtype=np.uint8))
