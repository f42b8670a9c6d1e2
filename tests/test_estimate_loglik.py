"""nemm.estimate_loglik: the API, and AIS validated against exact enumeration."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import nemm
from nemm.loglik import ais_schedule
from nemm.mixture import BernoulliMixture

# Tolerance of the validation (issue 19): AIS ln Z within 0.2 nat of the exact value.
TOL = 0.2
EFFORT = {"n_temperatures": 1000, "n_runs": 100}


@pytest.fixture(scope="module")
def trained_rbm(digits: tuple[np.ndarray, np.ndarray]) -> nemm.RBM:
    """16 binary hidden units trained briefly (PCD at a constant rate, uncentered: the Gibbs chains that
    start reverse AIS mix there): enumerable, so RBM.score is exact."""
    return nemm.RBM(
        16, "binary", gradient="pcd", n_epochs=5, centered=False, lr_decay=0.0, random_state=0
    ).fit(digits[0])


def test_reverse_ais_from_unmixed_starts_gives_no_lower_bound(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """PCD's defaults (centered, decaying rate) train an RBM whose Gibbs chains do not mix in the
    reverse runs' burn-in: forward AIS still matches the exact ln Z, and the inverted bracket is
    reported (a warning, lower=None) instead of a false lower bound."""
    X = digits[0]
    rbm = nemm.RBM(16, "binary", gradient="pcd", n_epochs=5, random_state=0).fit(X)
    with pytest.warns(RuntimeWarning, match="did not reach the model's distribution"):
        est = nemm.estimate_loglik(rbm, X[:500], method="ais", seed=0, **EFFORT)
    assert abs(est.details["log_partition"] - rbm.log_partition()) < TOL
    assert est.details["reverse_consistent"] is False and est.lower is None


def _random_rbm(X: np.ndarray, n_hidden: int, hidden: str = "binary", seed: int = 0) -> nemm.RBM:
    rng = np.random.default_rng(seed)
    return nemm.RBM.from_params(
        rng.normal(0, 0.1, (X.shape[1], n_hidden)),
        rng.normal(-1, 0.5, X.shape[1]),
        rng.normal(0, 1, n_hidden),
        X.mean(axis=0),
        hidden=hidden,
        n_hidden=n_hidden,
    )


@pytest.mark.parametrize("which", ["trained", "random", "onehot"])
def test_ais_matches_exact_log_partition(
    which: str, trained_rbm: nemm.RBM, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    X = digits[0][:500]
    rbm = {"trained": lambda: trained_rbm, "random": lambda: _random_rbm(X, 16)}.get(
        which, lambda: _random_rbm(X, 12, "onehot", seed=1)
    )()
    exact = nemm.estimate_loglik(rbm, X)
    assert exact.method == "exact" and exact.stderr == 0.0
    np.testing.assert_allclose(exact.per_row, rbm.score_samples(X))
    est = nemm.estimate_loglik(rbm, X, method="estimate", seed=3, **EFFORT)
    assert est.method == "ais"
    log_z = rbm.log_partition()
    assert abs(est.details["log_partition"] - log_z) < TOL
    assert abs(est.details["log_partition_reverse"] - log_z) < TOL
    assert abs(est.mean - exact.mean) < TOL
    assert 0 < est.stderr < 0.5  # honest: the one-hot path is the harder one (0.27 here)
    # Every row shares the one ln Z: per-row errors are the same constant.
    np.testing.assert_allclose(est.per_row - exact.per_row, est.mean - exact.mean, atol=1e-9)
    assert est.upper == est.mean and est.lower is not None
    assert est.cost["gibbs_sweeps"] > 0 and est.cost["seconds"] > 0


def test_ais_is_reproducible_and_thread_independent(trained_rbm: nemm.RBM, digits: tuple) -> None:
    X = digits[0][:50]
    effort = {"n_temperatures": 200, "n_runs": 20}
    a = nemm.estimate_loglik(trained_rbm, X, method="ais", seed=7, **effort)
    nemm.set_num_threads(2)
    try:
        with threadpool_limits(limits=2):
            b = nemm.estimate_loglik(trained_rbm, X, method="ais", seed=7, **effort)
    finally:
        nemm.set_num_threads(1)
    c = nemm.estimate_loglik(trained_rbm, X, method="ais", seed=8, **effort)
    np.testing.assert_array_equal(a.per_row, b.per_row)
    assert a.details == b.details
    assert c.mean != a.mean


def test_score_beyond_enumeration_points_at_estimate_loglik(digits: tuple) -> None:
    X = digits[0][:20]
    rbm = _random_rbm(X, 30)
    with pytest.raises(ValueError, match="estimate_loglik"):
        rbm.score_samples(X)
    with pytest.raises(ValueError, match="method='exact'"):
        nemm.estimate_loglik(rbm, X, method="exact")
    est = nemm.estimate_loglik(rbm, X, n_temperatures=100, n_runs=10, bidirectional=False)
    assert est.method == "ais" and est.lower is None and np.isfinite(est.mean)
    assert "log_partition_reverse" not in est.details


def test_bad_method_and_effort_are_named(trained_rbm: nemm.RBM, digits: tuple) -> None:
    X = digits[0][:10]
    with pytest.raises(ValueError, match="method must be one of"):
        nemm.estimate_loglik(trained_rbm, X, method="bogus")
    with pytest.raises(ValueError, match="n_chains"):
        nemm.estimate_loglik(trained_rbm, X, method="ais", n_chains=3)
    with pytest.raises(ValueError, match="n_runs"):
        nemm.estimate_loglik(trained_rbm, X, method="exact", n_runs=3)
    with pytest.raises(ValueError, match="n_runs"):
        nemm.estimate_loglik(trained_rbm, X, method="ais", n_runs=1)
    with pytest.raises(TypeError, match="model must be"):
        nemm.estimate_loglik(object(), X)


def test_mixture_and_machine_are_exact(digits: tuple) -> None:
    X = digits[0][:300]
    mix = BernoulliMixture(5, random_state=0).fit(X)
    est = nemm.estimate_loglik(mix, X)
    assert est.method == "exact" and est.mean == pytest.approx(mix.score(X))
    with pytest.raises(ValueError, match="no estimator"):
        nemm.estimate_loglik(mix, X, method="estimate")
    machine = nemm.Machine(4, random_state=0, n_epochs=1).fit(X)
    est = nemm.estimate_loglik(machine, X)
    np.testing.assert_allclose(est.per_row, machine.score_samples(X))
    with pytest.raises(ValueError, match="no estimator"):
        nemm.estimate_loglik(machine, X, method="ais")


@pytest.mark.parametrize("K", [3, 10, 1000, 14_500])
def test_schedule(K: int) -> None:
    betas = ais_schedule(K)
    assert betas.size == K + 1 and betas[0] == 0 and betas[-1] == 1
    assert (np.diff(betas) > 0).all()


def test_ais_stops_on_ctrl_c(trained_rbm: nemm.RBM, digits: tuple) -> None:
    """Ctrl-C (KeyboardInterrupt in the main thread) stops a long AIS run between temperatures."""
    import _thread
    import threading
    import time

    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            nemm.estimate_loglik(trained_rbm, digits[0][:10], method="ais", n_temperatures=10**6, n_runs=10)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 5.0


def test_pcd_monitor_uses_ais_beyond_enumeration(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Beyond 2**24 hidden states PCD's likelihood monitor is forward AIS at the user's cost (issue 18)."""
    X = digits[0][:300]
    kw = dict(gradient="pcd", n_epochs=2, batch_size=100, n_chains=20, random_state=0)
    rbm = nemm.RBM(30, "binary", monitor_ais_temperatures=200, **kw).fit(X)
    ll = rbm.history_["loglik"]
    assert len(ll) == 2 and all(np.isfinite(ll)) and all(v < 0 for v in ll)
    # The monitor does not touch training's streams: the same parameters without it.
    off = nemm.RBM(30, "binary", monitor_ais_temperatures=0, **kw).fit(X)
    assert all(np.isnan(off.history_["loglik"]))
    np.testing.assert_array_equal(rbm.w_, off.w_)
    # The last monitored value is the AIS estimate of the final model at that cost.
    est = nemm.estimate_loglik(rbm, X, method="ais", n_temperatures=200, bidirectional=False, seed=1)
    assert abs(ll[-1] - est.mean) < 3 * est.stderr + 1.0
