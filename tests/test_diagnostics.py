"""Model-level diagnostics (nemm.diagnostics) against exact enumeration.

Tiny systems (D <= 10) are enumerated exactly by nemm.exact; the chain estimates
of M, pbar, sigma, tau and Tr(M)/L must agree within tolerances set by the
number of samples. These tests fail when the sampler, the counting or the
estimators are wrong.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nemm import Machine, load, markov
from nemm import diagnostics as diag
from nemm._seeds import derive_seed
from nemm.class_distribution import class_kl
from nemm.exact import exact_model
from nemm.results import to_json, to_jsonable

N_STEPS = 100_000
N_CHAINS = 4


def random_params(seed: int, D: int, L: int, scale: float = 2.0, hidden: str = "onehot"):
    rng = np.random.default_rng(seed)
    return dict(
        w=rng.normal(0, scale, (D, L)),
        a=rng.normal(0, 0.5, D),
        wbar=rng.normal(0, scale, (L, D)),
        abar=rng.normal(0, 0.5, L),
        xbar=rng.uniform(0.2, 0.8, D),
    )


def machine_and_exact(p: dict, **settings):
    wbar_in = None if settings.get("tied") else p["wbar"]  # tied machines share w: no separate wbar
    m = Machine.from_params(p["w"], p["a"], wbar_in, p["abar"], p["xbar"], random_state=0, **settings)
    hidden = settings.get("hidden", "onehot")
    norm = settings.get("normalization", "softmax")
    wbar = p["w"].T if settings.get("tied") else p["wbar"]
    ex = exact_model(p["w"], p["a"], wbar, p["abar"], p["xbar"], hidden=hidden, normalization=norm)
    return m, ex


def cycle_machine(strength: float, L: int = 3) -> tuple[Machine, dict]:
    """State alpha emits x = e_alpha, which is read as state alpha + 1: a latent L-cycle."""
    D = L
    w = np.full((D, L), -strength)
    np.fill_diagonal(w, strength)
    wbar = np.full((L, D), -strength)
    for alpha in range(L):
        wbar[(alpha + 1) % L, alpha] = strength
    p = dict(w=w, a=np.zeros(D), wbar=wbar, abar=np.zeros(L), xbar=np.full(D, 0.5))
    return Machine.from_params(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], random_state=0), p


def assert_M_close(ts: diag.TransitionStatistics, M_exact: np.ndarray, n_sd: float = 5.0) -> None:
    """Each row of counts is multinomial given its state (Markov property): binomial error bars."""
    n_row = ts.counts.sum(axis=1, keepdims=True)
    sd = np.sqrt(M_exact * (1 - M_exact) / np.maximum(n_row, 1))
    assert np.all(np.abs(ts.M - M_exact) <= n_sd * sd + 1e-3), (ts.M, M_exact)


# --------------------------------------------------------------------------- transition_statistics


@pytest.mark.parametrize("seed,normalization", [(1, "softmax"), (2, "sigmoid")])
def test_onehot_statistics_match_exact(seed: int, normalization: str) -> None:
    p = random_params(seed, D=8, L=4)
    m, ex = machine_and_exact(p, normalization=normalization)
    ts = diag.transition_statistics(m, N_STEPS, n_chains=N_CHAINS, seed=11)
    assert ts.counts.shape == (4, 4)
    assert ts.counts.sum() == N_CHAINS * (N_STEPS - 1)
    assert_M_close(ts, ex.M)
    np.testing.assert_allclose(ts.pbar_e, ex.pbar, atol=0.01)
    np.testing.assert_allclose(ts.pbar, ex.pbar, atol=0.01)
    np.testing.assert_allclose(ts.pbar_e.sum(), 1.0)

    sigma_exact = ex.entropy_production
    assert sigma_exact > 0.05  # a genuinely nonequilibrium machine
    assert ts.n_one_way == 0
    assert abs(ts.sigma - sigma_exact) <= 5 * ts.sigma_err + 2e-3, (ts.sigma, ts.sigma_err, sigma_exact)
    tau_exact = markov.decorrelation_time(ex.M)
    assert abs(ts.tau - tau_exact) <= 5 * ts.tau_err + 0.02 * tau_exact, (ts.tau, ts.tau_err, tau_exact)
    st_exact = markov.mean_self_transition(ex.M)
    assert abs(ts.self_transition - st_exact) <= 5 * ts.self_transition_err + 1e-3
    assert ts.random_self_transition == pytest.approx(0.25)
    # Error bars are positive and of the size the sample allows.
    for err in (ts.sigma_err, ts.tau_err, ts.self_transition_err):
        assert 0 < err < 0.05


def test_binary_hidden_statistics_match_exact() -> None:
    p = random_params(3, D=6, L=3, scale=1.5)
    m, ex = machine_and_exact(p, hidden="binary")
    ts = diag.transition_statistics(m, N_STEPS, n_chains=N_CHAINS, seed=5)
    assert ts.n_states == 8 and ts.M.shape == (8, 8)
    assert_M_close(ts, ex.M)
    np.testing.assert_allclose(ts.pbar_e, ex.pbar, atol=0.01)
    assert abs(ts.sigma - ex.entropy_production) <= 5 * ts.sigma_err + 5e-3


def test_tied_machine_has_zero_entropy_production() -> None:
    p = random_params(4, D=8, L=4)
    m, ex = machine_and_exact(p, tied=True)
    assert ex.entropy_production == pytest.approx(0.0, abs=1e-12)  # detailed balance, exactly
    ts = diag.transition_statistics(m, N_STEPS, n_chains=N_CHAINS, seed=3)
    assert_M_close(ts, ex.M)
    # The plug-in estimate is >= 0 and biased up by O(pairs / samples); zero within its error bar.
    assert 0 <= ts.sigma <= 3 * ts.sigma_err + 1e-4, (ts.sigma, ts.sigma_err)


def test_strong_cycle_has_large_significant_entropy_production() -> None:
    m, p = cycle_machine(8.0)
    ex = exact_model(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"])
    ts = diag.transition_statistics(m, N_STEPS, n_chains=N_CHAINS, seed=2)
    assert ex.entropy_production > 5
    assert ts.sigma > 20 * ts.sigma_err and ts.sigma > 5
    assert abs(ts.sigma - ex.entropy_production) <= 5 * ts.sigma_err + 0.05 * ex.entropy_production
    assert ts.self_transition < 0.01 < 1 / 3
    assert ts.tau > 100


def test_one_way_pairs_are_counted_and_use_the_pseudocount() -> None:
    m, _ = cycle_machine(60.0)  # deterministic to double precision: every pair one-way
    a = diag.transition_statistics(m, 3000, n_chains=2, seed=1, pseudocount=0.5)
    b = diag.transition_statistics(m, 3000, n_chains=2, seed=1, pseudocount=0.0)
    assert a.n_one_way == 3 and a.pseudocount == 0.5
    assert math.isfinite(a.sigma) and a.sigma > 0
    assert b.sigma == math.inf
    assert a.tau == math.inf  # a deterministic cycle never decorrelates


def test_statistics_are_reproducible_and_validate_arguments() -> None:
    m, _ = machine_and_exact(random_params(5, D=6, L=3))
    a = diag.transition_statistics(m, 5000, seed=9)
    b = diag.transition_statistics(m, 5000, seed=9)
    np.testing.assert_array_equal(a.counts, b.counts)
    with pytest.raises(ValueError):
        diag.transition_statistics(m, 1)
    with pytest.raises(ValueError):
        diag.transition_statistics(m, 100, n_segments=1)


def test_large_binary_state_space_is_relabelled_to_visited_states() -> None:
    L = 13  # 8192 states: beyond the dense limit
    p = random_params(6, D=4, L=L, scale=1.0)
    m = Machine.from_params(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], hidden="binary", random_state=0)
    ts = diag.transition_statistics(m, 400, n_chains=2, seed=1)
    assert ts.n_states == 2**L
    assert ts.states.size == ts.M.shape[0] < 2**L
    assert ts.states.size > markov.DENSE_EIG_LIMIT and math.isnan(ts.tau)  # no O(S^3) eigen-decomposition
    assert np.all(np.diff(ts.states) > 0) and ts.states.max() < 2**L
    # Rows of states seen only last are unknown (NaN), the others stochastic.
    np.testing.assert_allclose(ts.M[ts.rows_known].sum(axis=1), 1.0)
    assert np.isnan(ts.M[~ts.rows_known]).all() and ts.rows_known.sum() >= ts.states.size - 2


# --------------------------------------------------------------------------- Rao-Blackwell


def test_rao_blackwell_matches_exact_with_smaller_spread_than_counting() -> None:
    p = random_params(1, D=8, L=4)
    m, ex = machine_and_exact(p)
    M_rb, err = diag.rao_blackwell_M(m, 4000, seed=0, return_stderr=True)
    np.testing.assert_allclose(M_rb.sum(axis=1), 1.0)
    assert np.all(np.abs(M_rb - ex.M) <= 5 * err + 1e-3)
    # Same number of hidden-state draws: n per state for both estimators.
    n, reps = 500, 8
    rb = [diag.rao_blackwell_M(m, n, seed=r) - ex.M for r in range(reps)]
    ct = [
        diag.transition_statistics(m, n * 4 // 2, n_chains=2, seed=100 + r, n_segments=2, burn_in=100).M
        - ex.M
        for r in range(reps)
    ]
    mse_rb, mse_ct = float(np.mean(np.square(rb))), float(np.mean(np.square(ct)))
    assert mse_rb < 0.7 * mse_ct, (mse_rb, mse_ct)


def test_rao_blackwell_binary_and_reproducible() -> None:
    p = random_params(3, D=6, L=3, scale=1.5)
    m, ex = machine_and_exact(p, hidden="binary")
    a = diag.rao_blackwell_M(m, 3000, seed=4)
    np.testing.assert_array_equal(
        a, diag.rao_blackwell_M(m, 3000, seed=4, progress=True)
    )  # the bar changes nothing
    np.testing.assert_allclose(a, ex.M, atol=0.03)


# --------------------------------------------------------------------------- class KL, log-likelihood


def test_class_kl_of_follows_the_spec_rule() -> None:
    # D = 4: state 0 emits 1100, state 1 emits 0011, state 2 emits 0001 (sparse, weak).
    B = 6.0
    w = np.array([[B, -B, -B], [B, -B, -B], [-B, B, -B], [-B, B, B]])
    m = Machine.from_params(w, np.zeros(4), np.zeros((3, 4)), np.zeros(3), np.full(4, 0.5), random_state=0)
    X = np.array([[1, 1, 0, 0]] * 6 + [[0, 0, 1, 1]] * 3 + [[0, 0, 0, 1]] * 1, dtype=np.uint8)
    y = np.array([0] * 6 + [1] * 3 + [2] * 1)
    pbar = np.array([0.5, 0.3, 0.2])
    ck = diag.class_kl_of(m, X, y, pbar=pbar)
    np.testing.assert_array_equal(ck.assignment, [0] * 6 + [1] * 3 + [2])
    np.testing.assert_array_equal(ck.state_class, [0, 1, 2])
    np.testing.assert_allclose(ck.p_model, pbar)
    expected = 0.6 * math.log(0.6 / 0.5) + 0.3 * math.log(0.3 / 0.3) + 0.1 * math.log(0.1 / 0.2)
    assert ck.kl == pytest.approx(expected)
    # A state given no point loses its mass: drop the sparse digit.
    ck2 = diag.class_kl_of(m, X[:9], y[:9], pbar=pbar)
    assert ck2.state_class[2] == -1 and ck2.lost_mass == pytest.approx(0.2)
    assert ck2.kl == pytest.approx(2 / 3 * math.log((2 / 3) / 0.5) + 1 / 3 * math.log((1 / 3) / 0.3))
    # ln pbar enters the argmax: with pbar(2) tiny, 0001 goes to state 1 (log A differs by less).
    ck3 = diag.class_kl_of(m, X, y, pbar=np.array([0.5, 0.5 - 1e-12, 1e-12]))
    assert ck3.assignment[-1] == 1


def test_class_kl_of_with_occupancy_matches_exact_pbar() -> None:
    p = random_params(7, D=8, L=4)
    m, ex = machine_and_exact(p)
    rng = np.random.default_rng(0)
    X = (rng.random((200, 8)) < 0.5).astype(np.uint8)
    y = (X[:, 0] + X[:, 1]).astype(int)
    ck_chain = diag.class_kl_of(m, X, y, n_steps=N_STEPS, seed=1)
    ck_exact = class_kl(np.log(ex.pbar), m.log_A(X), y)
    np.testing.assert_array_equal(ck_chain.state_class, ck_exact.state_class)
    assert ck_chain.kl == pytest.approx(ck_exact.kl, abs=0.02)


def test_log_likelihood_estimates_match_exact() -> None:
    p = random_params(8, D=8, L=4)
    m, ex = machine_and_exact(p)
    rng = np.random.default_rng(1)
    X = (rng.random((300, 8)) < 0.5).astype(np.uint8)
    est = diag.log_likelihood_estimates(m, X, n_steps=N_STEPS, seed=2)
    assert est["exact"] == pytest.approx(ex.log_likelihood(X), abs=0.02)
    assert math.isnan(est["on_the_fly"])  # never trained
    given = diag.log_likelihood_estimates(m, X, pbar=ex.pbar)
    assert given["exact"] == pytest.approx(ex.log_likelihood(X), abs=1e-9)


# --------------------------------------------------------------------------- diagnose, JSON, tracking


def test_diagnose_is_json_serializable_and_consistent() -> None:
    p = random_params(1, D=8, L=4)
    m, ex = machine_and_exact(p)
    rng = np.random.default_rng(2)
    X = (rng.random((100, 8)) < 0.5).astype(np.uint8)
    y = rng.integers(0, 3, 100)
    d = diag.diagnose(m, X, y, n_steps=20_000)
    assert isinstance(d, diag.Diagnosis)
    back = json.loads(to_json(d))
    assert back["sigma"] == pytest.approx(d.sigma)
    for key in (
        "sigma",
        "sigma_err",
        "sigma_converged",
        "sigma_method",
        "sigma_counting",
        "sigma_counting_err",
        "n_one_way",
        "tau",
        "tau_err",
        "self_transition",
        "occupancy",
        "M",
        "M_rao_blackwell",
        "loglik_exact",
        "class_kl",
        "pseudocount",
        "random_self_transition",
    ):
        assert key in back
    np.testing.assert_allclose(back["occupancy"], d.occupancy)
    assert d.sigma == pytest.approx(ex.entropy_production, abs=5 * d.sigma_err + 5e-3)
    assert d.sigma_method == "M" and back["sigma_converged"] is True
    assert d.sigma_counting == pytest.approx(ex.entropy_production, abs=5 * d.sigma_counting_err + 5e-3)
    assert d.sigma_rao_blackwell == pytest.approx(ex.entropy_production, rel=0.15)
    assert d.loglik_exact == pytest.approx(ex.log_likelihood(X), abs=0.03)
    assert d.loglik_on_the_fly is None
    assert set(back["class_kl"]) == {"kl", "p_model", "p_data", "state_class", "lost_mass", "classes"}


def test_infinite_values_become_strict_json() -> None:
    m, _ = cycle_machine(60.0)
    d = diag.diagnose(m, np.eye(3, dtype=np.uint8), np.arange(3), n_steps=2000)
    assert d.tau == math.inf
    text = to_json(d)
    back = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert back["tau"] == "inf"
    assert to_jsonable({"a": np.float64("nan"), "b": np.arange(2), "c": (np.int32(3),)}) == {
        "a": "nan",
        "b": [0, 1],
        "c": [3],
    }


def test_track_epoch_records_history_without_changing_training(tmp_path) -> None:
    rng = np.random.default_rng(0)
    protos = rng.random((3, 16)) < 0.5
    X = np.array(
        [np.where(rng.random(16) < 0.1, ~protos[k], protos[k]) for k in rng.integers(0, 3, 120)],
        dtype=np.uint8,
    )
    y = rng.integers(0, 3, 120)
    settings = dict(n_epochs=6, steps_per_epoch=5, batch_size=(8, 16), chain_steps=8, random_state=3)
    plain = Machine(3, **settings).fit(X)
    tracked = Machine(3, **settings).fit(X, callback=diag.epoch_tracker(X, y, every=2, n_steps=2000))
    np.testing.assert_array_equal(plain.w_, tracked.w_)  # tracking does not touch the training chain
    h = tracked.history_
    assert h["diag_epoch"] == [0.0, 1.0, 3.0, 5.0]
    for key in (
        "sigma_counting",
        "sigma_counting_err",
        "tau",
        "self_transition",
        "loglik_exact",
        "class_kl",
        "n_one_way",
    ):
        assert len(h[key]) == 4, key
    assert np.array(h["occupancy"]).shape == (4, 3)
    np.testing.assert_allclose(np.sum(h["occupancy"], axis=1), 1.0)
    # The partial form the docstring shows.
    import functools

    m = Machine(3, **settings).fit(
        X, callback=functools.partial(diag.track_epoch, X=X, every=3, n_steps=1000)
    )
    assert m.history_["diag_epoch"] == [0.0, 2.0, 5.0] and "class_kl" not in m.history_
    # The history survives save/load.
    path = tracked.save(tmp_path / "m.npz")
    np.testing.assert_allclose(load(path).history_["sigma_counting"], h["sigma_counting"])


# --------------------------------------------------------------------------- the model's own sigma, currents, cycles


def test_rao_blackwell_sigma_uses_the_same_draws_and_converges() -> None:
    p = random_params(5, D=8, L=4)
    m, ex = machine_and_exact(p)
    rb = diag.rao_blackwell_sigma(m, 2000, seed=3)
    np.testing.assert_array_equal(rb.M, diag.rao_blackwell_M(m, 2000, seed=3))
    assert ex.entropy_production > 0.05
    assert abs(rb.sigma - ex.entropy_production) <= 5 * rb.sigma_err + 0.01
    assert rb.converged and rb.curve["n"][-1] == 2000 and len(rb.curve["n"]) == len(rb.curve["sigma"])
    assert rb.curve["sigma"][-1] == pytest.approx(rb.sigma)
    with pytest.raises(ValueError, match="n_batches"):
        diag.rao_blackwell_sigma(m, 10, n_batches=1)


def test_rao_blackwell_sigma_of_tied_is_zero_and_of_untied_trained_is_positive() -> None:
    p = random_params(4, D=8, L=4)
    tied, ex = machine_and_exact(p, tied=True)
    rb = diag.rao_blackwell_sigma(tied, 2000, seed=1)
    assert rb.sigma <= 3 * rb.sigma_err + 1e-4, (rb.sigma, rb.sigma_err)
    # An untied machine trained on three noisy prototypes by eqs. 16-17 (not hand-built).
    rng = np.random.default_rng(0)
    protos = np.repeat(np.eye(3, dtype=bool), 3, axis=1)
    y = rng.integers(0, 3, 300)
    X = np.where(rng.random((300, 9)) < 0.05, ~protos[y], protos[y]).astype(np.uint8)
    m = Machine(3, recipe="paper", n_epochs=30, random_state=0).fit(X)
    rb_m = diag.rao_blackwell_sigma(m, 2000, seed=1)
    assert rb_m.sigma > 3 * rb_m.sigma_err and rb_m.sigma > 0.01, (rb_m.sigma, rb_m.sigma_err)


def test_diagnose_reports_currents_and_the_dominant_cycle() -> None:
    m, p = cycle_machine(3.0)
    d = diag.diagnose(m, n_steps=5000, rao_blackwell_draws=2000)
    assert d.dominant_cycle == [0, 1, 2]  # alpha -> alpha + 1
    ex = exact_model(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"])
    from nemm.cycles import cycle_affinity, probability_currents

    assert d.cycle_affinity == pytest.approx(cycle_affinity(ex.M, [0, 1, 2]), rel=0.05)
    np.testing.assert_allclose(d.currents, probability_currents(ex.M, ex.pbar), atol=0.01)
    assert d.cycle_current > 0 and d.sigma_rao_blackwell > 3 * d.sigma_rao_blackwell_err
    # Counting curve at the stated chain length, with its one-way pairs.
    assert d.sigma_counting_curve["n"][-1] == 5000 and len(d.sigma_counting_curve["n_one_way"]) > 1


def test_tied_machine_dominant_cycle_has_zero_affinity() -> None:
    p = random_params(6, D=8, L=4)
    m, ex = machine_and_exact(p, tied=True)
    d = diag.diagnose(m, n_steps=5000, rao_blackwell_draws=4000)
    assert np.abs(d.currents).max() < 0.01
    assert d.dominant_cycle  # currents of pure sampling noise still close a cycle...
    # ... whose affinity is 0 within the error propagated from the Rao-Blackwell entries (same draws).
    M, se = diag.rao_blackwell_M(m, 4000, seed=derive_seed(0, 1), return_stderr=True)
    np.testing.assert_array_equal(M, d.M_rao_blackwell)
    c = d.dominant_cycle
    nxt = c[1:] + c[:1]
    err = math.sqrt(np.sum((se[c, nxt] / M[c, nxt]) ** 2 + (se[nxt, c] / M[nxt, c]) ** 2))
    assert abs(d.cycle_affinity) <= 4 * err, (d.cycle_affinity, err)
    assert abs(ex.M[c, nxt].prod() / ex.M[nxt, c].prod() - 1) < 1e-12  # exactly reversible


def test_diagnose_an_rbm_uses_its_exact_likelihood_and_gibbs_chain() -> None:
    from nemm.rbm import RBM

    rng = np.random.default_rng(0)
    w, a, abar = rng.normal(0, 1.5, (8, 3)), rng.normal(0, 0.5, 8), rng.normal(0, 0.5, 3)
    rbm = RBM.from_params(w, a, abar, random_state=0)
    X = (rng.random((50, 8)) < 0.5).astype(np.uint8)
    y = rng.integers(0, 2, 50)
    d = diag.diagnose(rbm, X, y, n_steps=5000, rao_blackwell_draws=1000)
    assert d.kind == "rbm"
    assert d.loglik_exact == pytest.approx(float(np.mean(rbm.score_samples(X))), abs=1e-9)
    assert d.sigma_rao_blackwell <= 3 * d.sigma_rao_blackwell_err + 1e-3  # detailed balance
    ph = diag.rbm_hidden_distribution(rbm)
    np.testing.assert_allclose(d.pbar_rao_blackwell, ph, atol=0.03)
