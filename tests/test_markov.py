"""nemm.markov: the pure Markov-chain math (counts, M, pbar, sigma, tau, Tr(M)/L, class KL, error bars)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemm.exact import backward_kernel, exact_model, visible_states
from nemm.markov import (
    DENSE_EIG_LIMIT,
    EntropyProduction,
    decorrelation_time,
    entropy_production,
    entropy_production_from_counts,
    known_rows,
    mean_self_transition,
    occupancy,
    occupancy_from_trajectory,
    rao_blackwell_transition_matrix,
    segment_error,
    stationary_distribution,
    summarize_counts,
    transition_counts,
    transition_matrix,
)

SETTINGS = settings(max_examples=30, deadline=None)

CYCLE3 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
# A nonequilibrium 3-state chain with all transitions allowed.
M3 = np.array([[0.2, 0.6, 0.2], [0.1, 0.3, 0.6], [0.5, 0.2, 0.3]])


def random_stochastic(seed: int, S: int, sparsity: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    M = rng.gamma(0.7, size=(S, S))
    if sparsity:
        M[rng.random((S, S)) < sparsity] = 0.0
        M[np.arange(S), rng.integers(0, S, size=S)] += 0.1  # no empty rows
    return M / M.sum(axis=1, keepdims=True)


def simulate(M: np.ndarray, n_steps: int, seed: int, start: int = 0) -> np.ndarray:
    """Trajectory of the chain M (row = current state) with a seeded Generator."""
    rng = np.random.default_rng(seed)
    cum = np.cumsum(M, axis=1).tolist()
    u = rng.random(n_steps).tolist()
    traj = np.empty(n_steps, dtype=np.int64)
    s = start
    for t in range(n_steps):
        traj[t] = s
        row, x = cum[s], u[t]
        s = 0
        while s < len(row) - 1 and x >= row[s]:
            s += 1
    return traj


# --------------------------------------------------------------------------- counting


def test_transition_counts_and_occupancy():
    traj = np.array([0, 1, 1, 2, 0, 1])
    c = transition_counts(traj, 3)
    want = np.zeros((3, 3))
    for i, j in [(0, 1), (1, 1), (1, 2), (2, 0), (0, 1)]:
        want[i, j] += 1
    np.testing.assert_array_equal(c, want)
    np.testing.assert_allclose(occupancy(c), [2 / 5, 2 / 5, 1 / 5])
    np.testing.assert_allclose(occupancy_from_trajectory(traj, 3), [2 / 6, 3 / 6, 1 / 6])
    np.testing.assert_allclose(occupancy_from_trajectory(traj[:-1], 3), occupancy(c))
    with pytest.raises(ValueError):
        transition_counts([0, 3], 3)
    with pytest.raises(ValueError):
        occupancy(np.zeros((2, 2)))


def test_transition_matrix_rows_and_pseudocount():
    c = np.array([[2.0, 6.0], [1.0, 3.0]])
    np.testing.assert_allclose(transition_matrix(c), [[0.25, 0.75], [0.25, 0.75]])
    np.testing.assert_allclose(transition_matrix(c, pseudocount=1.0), [[0.3, 0.7], [2 / 6, 4 / 6]])
    with pytest.raises(ValueError):
        transition_matrix(c, pseudocount=-1.0)
    with pytest.raises(ValueError):
        transition_matrix(-c)


def test_transition_matrix_unknown_rows_are_nan_not_made_up():
    # State 2 is never left (seen only last), state 3 never visited: their rows are unknown.
    traj = [0, 1, 0, 1, 1, 0, 2]
    c = transition_counts(traj, 4)
    M = transition_matrix(c)
    np.testing.assert_array_equal(known_rows(M), [True, True, False, False])
    assert np.isnan(M[2]).all() and np.isnan(M[3]).all()
    np.testing.assert_allclose(M[:2].sum(axis=1), 1.0)
    np.testing.assert_allclose(M[0], [0, 2 / 3, 1 / 3, 0])
    # tau, pbar and Tr(M)/S use the measured rows: the chain on {0, 1} with the mass to 2 dropped.
    sub = np.array([[0.0, 1.0], [2 / 3, 1 / 3]])
    assert decorrelation_time(M) == pytest.approx(decorrelation_time(sub), rel=1e-12)
    np.testing.assert_allclose(stationary_distribution(M), [0.4, 0.6, 0, 0], atol=1e-12)
    assert mean_self_transition(M) == pytest.approx((0 + 1 / 3) / 2)
    # With a pseudo-count every row is measured.
    assert known_rows(transition_matrix(c, pseudocount=1.0)).all()
    assert np.isnan(transition_matrix(np.zeros((3, 3)))).all()
    assert math.isnan(mean_self_transition(transition_matrix(np.zeros((3, 3)))))
    assert math.isnan(decorrelation_time(transition_matrix(np.zeros((3, 3)))))


def test_stuck_chain_has_infinite_tau_and_unit_self_transition():
    # Two chains that never leave state 1 of 6 (the RBM of issue 17 part 2): no move was seen.
    traj = np.ones((2, 50_000), dtype=np.int64)
    got = summarize_counts(transition_counts(traj, 6), stationary=True)
    assert got.tau == math.inf
    assert got.self_transition == 1.0
    np.testing.assert_array_equal(got.rows_known, [False, True, False, False, False, False])
    assert np.isnan(got.M[[0, 2, 3, 4, 5]]).all() and got.M[1, 1] == 1.0
    np.testing.assert_array_equal(got.pbar, [0, 1, 0, 0, 0, 0])
    # Stuck in two different states: still never left.
    two = np.array([[2] * 100, [4] * 100])
    assert summarize_counts(transition_counts(two, 6)).tau == math.inf
    assert summarize_counts(transition_counts(two, 6)).self_transition == 1.0


def test_partially_stuck_chains():
    # One chain moves among 0..2, the other never leaves 4: the pooled chain never decorrelates
    # (two closed classes), and Tr(M)/S is the mean over the four measured rows, not over all six.
    rng = np.random.default_rng(0)
    moving = np.zeros(20_000, dtype=np.int64)
    for t in range(1, moving.size):
        moving[t] = rng.choice(3, p=M3[moving[t - 1]])
    traj = np.stack([moving, np.full(moving.size, 4)])
    got = summarize_counts(transition_counts(traj, 6), stationary=True)
    assert got.tau == math.inf
    np.testing.assert_array_equal(got.rows_known, [True, True, True, False, True, False])
    expected = (np.trace(got.M[:3, :3]) + 1.0) / 4
    assert got.self_transition == pytest.approx(expected, rel=1e-12)
    assert got.self_transition > 0.4  # the old occupancy rows gave (trace + 1 + 0) / 6, about 0.3
    # The moving chain alone: tau of its own three states, unaffected by the three unvisited ones.
    alone = summarize_counts(transition_counts(moving, 6))
    assert alone.tau == pytest.approx(decorrelation_time(M3), rel=0.05)
    assert alone.self_transition == pytest.approx(np.trace(M3) / 3, abs=0.02)


def test_transition_matrix_converges_to_true_M():
    n = 60_000
    traj = simulate(M3, n, seed=1)
    M = transition_matrix(transition_counts(traj, 3))
    # Each row is a multinomial mean from about n/3 transitions: 5 standard errors.
    assert np.abs(M - M3).max() < 5 * math.sqrt(0.25 / (n / 4))


# --------------------------------------------------------------------------- spectra


def test_stationary_distribution_two_state():
    p, q = 0.3, 0.1
    M = np.array([[1 - p, p], [q, 1 - q]])
    np.testing.assert_allclose(stationary_distribution(M), [q / (p + q), p / (p + q)], rtol=1e-13)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.sampled_from([0.0, 0.5]))
def test_stationary_distribution_random(seed, S, sparsity):
    M = random_stochastic(seed, S, sparsity)
    p = stationary_distribution(M)
    assert p.shape == (S,) and (p >= 0).all()
    assert p.sum() == pytest.approx(1.0, abs=1e-13)
    np.testing.assert_allclose(p @ M, p, atol=1e-12)


def test_stationary_distribution_rejects_non_stochastic():
    with pytest.raises(ValueError, match="stochastic"):
        stationary_distribution(np.array([[0.5, 0.4], [0.5, 0.5]]))
    with pytest.raises(ValueError):
        stationary_distribution(np.ones((2, 3)) / 3)


def test_decorrelation_time_deterministic_cycle_is_infinite():
    assert decorrelation_time(CYCLE3) == math.inf
    assert decorrelation_time(np.eye(3)) == math.inf  # reducible: eigenvalue 1 twice


@pytest.mark.parametrize("p", [0.05, 0.2, 0.45, 0.7, 0.95])
def test_decorrelation_time_two_state(p):
    # Symmetric two-state chain: eigenvalues 1 and 1 - 2p (negative for p > 1/2: modulus counts).
    M = np.array([[1 - p, p], [p, 1 - p]])
    assert decorrelation_time(M) == pytest.approx(-1.0 / math.log(abs(1 - 2 * p)), rel=1e-10)


def test_decorrelation_time_rank_one_and_single_state():
    assert decorrelation_time(np.array([[0.5, 0.5], [0.5, 0.5]])) == 0.0
    assert decorrelation_time(np.tile([0.2, 0.3, 0.5], (3, 1))) == 0.0
    assert decorrelation_time(np.array([[1.0]])) == 0.0


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(2, 7))
def test_decorrelation_time_positive_for_mixing_chains(seed, S):
    M = 0.9 * random_stochastic(seed, S) + 0.1 / S  # strictly positive: ergodic and aperiodic
    tau = decorrelation_time(M)
    assert 0.0 <= tau < math.inf
    lam = np.sort(np.abs(np.linalg.eigvals(M)))[-2]
    if lam > 1e-6:
        # The correlation decays as |lambda_2|^t = exp(-t / tau).
        assert math.exp(-1.0 / tau) == pytest.approx(lam, rel=1e-8)


def test_mean_self_transition():
    assert mean_self_transition(M3) == pytest.approx((0.2 + 0.3 + 0.3) / 3)
    assert mean_self_transition(np.full((4, 4), 0.25)) == pytest.approx(0.25)
    assert mean_self_transition(CYCLE3) == 0.0


# --------------------------------------------------------------------------- entropy production


def test_entropy_production_of_cycles():
    pbar = np.full(3, 1 / 3)
    assert entropy_production(CYCLE3, pbar) == math.inf
    # Biased ring: jump forward with p, back with q, uniform pbar. Each of the three pairs carries
    # (p - q)/3 ln(p/q), so sigma = (p - q) ln(p/q).
    p, q = 0.7, 0.2
    M = np.array([[0.1, p, q], [q, 0.1, p], [p, q, 0.1]])
    np.testing.assert_allclose(stationary_distribution(M), pbar, rtol=1e-12)
    assert entropy_production(M, pbar) == pytest.approx((p - q) * math.log(p / q), rel=1e-12)


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.sampled_from([0.0, 0.5]))
def test_entropy_production_zero_for_reversible_chains(seed, S, sparsity):
    # Symmetric edge weights W give a reversible chain M = W / rowsum with pbar propto rowsum.
    rng = np.random.default_rng(seed)
    W = rng.gamma(0.7, size=(S, S))
    if sparsity:
        W[rng.random((S, S)) < sparsity] = 0.0
    W = W + W.T + np.eye(S) * 1e-3
    M = W / W.sum(axis=1, keepdims=True)
    pbar = W.sum(axis=1) / W.sum()
    assert abs(entropy_production(M, pbar)) < 1e-12
    assert abs(entropy_production(M, stationary_distribution(M))) < 1e-10


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_entropy_production_non_negative(seed, S):
    M = 0.9 * random_stochastic(seed, S) + 0.1 / S
    assert entropy_production(M, stationary_distribution(M)) >= 0.0


def test_entropy_production_pairs_without_flux_contribute_nothing():
    # 0 <-> 1 balanced, state 2 isolated: no pair is one-way, sigma = 0.
    M = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    assert entropy_production(M, np.array([0.4, 0.4, 0.2])) == 0.0
    with pytest.raises(ValueError):
        entropy_production(M, np.array([0.5, 0.5]))


def test_entropy_production_from_counts_pseudocount_rule():
    # Pairs: (0,1) both ways; (0,2) one way (0->2 only); (1,2) one way (2->1 only); (2,3) and (0,3),
    # (1,3) never. Self-transitions are present but must not matter beyond the total.
    c = np.array(
        [
            [5.0, 4.0, 3.0, 0.0],
            [2.0, 7.0, 0.0, 0.0],
            [0.0, 6.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 9.0],
        ]
    )
    r = entropy_production_from_counts(c, pseudocount=0.5)
    assert isinstance(r, EntropyProduction)
    assert r.n_one_way == 2 and r.n_pairs_observed == 3 and r.pseudocount == 0.5
    total = c.sum() + 4 * 0.5  # two one-way pairs, 0.5 added to both directions of each
    want = (
        (4 - 2) * math.log(4 / 2) + (3.5 - 0.5) * math.log(3.5 / 0.5) + (6.5 - 0.5) * math.log(6.5 / 0.5)
    ) / total
    assert r.sigma == pytest.approx(want, rel=1e-12)
    # The two-way figure ignores the one-way pairs and uses the raw counts.
    assert r.sigma_two_way == pytest.approx((4 - 2) * math.log(4 / 2) / c.sum(), rel=1e-12)
    r0 = entropy_production_from_counts(c, pseudocount=0.0)
    assert r0.sigma == math.inf and r0.n_one_way == 2
    assert r0.sigma_two_way == pytest.approx(r.sigma_two_way, rel=1e-12)
    # Only one-way pairs get the pseudo-count: without them the estimate is the raw plug-in.
    c2 = c.copy()
    c2[2, 0], c2[1, 2] = 1.0, 1.0
    r2 = entropy_production_from_counts(c2, pseudocount=0.5)
    assert r2.n_one_way == 0
    want2 = (2 * math.log(2) + 2 * math.log(3) + 5 * math.log(6)) / c2.sum()
    assert r2.sigma == pytest.approx(want2, rel=1e-12)


def test_entropy_production_from_counts_self_transitions_and_scale():
    c = np.array([[0.0, 4.0], [1.0, 0.0]])
    base = entropy_production_from_counts(c).sigma
    # Doubling all counts changes nothing; adding self-transitions only dilutes by the total.
    assert entropy_production_from_counts(2 * c).sigma == pytest.approx(base)
    c_self = c + np.diag([3.0, 2.0])
    assert entropy_production_from_counts(c_self).sigma == pytest.approx(base * c.sum() / c_self.sum())
    with pytest.raises(ValueError):
        entropy_production_from_counts(np.zeros((2, 2)))


def test_entropy_production_from_deterministic_cycle_counts():
    traj = np.tile([0, 1, 2], 100)
    r = entropy_production_from_counts(transition_counts(traj, 3), pseudocount=0.0)
    assert r.sigma == math.inf and r.n_one_way == 3 and r.n_pairs_observed == 3


def test_entropy_production_from_long_trajectory_matches_exact():
    exact = entropy_production(M3, stationary_distribution(M3))
    n_seg, seg_len = 20, 10_000
    traj = simulate(M3, n_seg * seg_len + 1, seed=12345)
    full = entropy_production_from_counts(transition_counts(traj, 3))
    assert full.n_one_way == 0
    segs = [
        entropy_production_from_counts(transition_counts(traj[k * seg_len : (k + 1) * seg_len + 1], 3)).sigma
        for k in range(n_seg)
    ]
    mean, err = segment_error(segs)
    # The full-run estimate has about the error of the segment mean; plug-in bias is O(1/n).
    assert err < 0.05 * exact  # the test has resolving power
    assert abs(full.sigma - exact) < 4 * err
    assert abs(mean - exact) < 4 * err + 1e-3


# --------------------------------------------------------------------------- class KL


# --------------------------------------------------------------------------- error bars and Rao-Blackwell


def test_segment_error():
    mean, err = segment_error([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert err == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    m, e = segment_error([5.0])
    assert m == 5.0 and math.isnan(e)
    m, e = segment_error([1.0, math.inf])
    assert m == math.inf and math.isnan(e)
    arr_m, arr_e = segment_error(np.array([[1.0, 2.0], [3.0, 2.0]]))
    np.testing.assert_allclose(arr_m, [2.0, 2.0])
    np.testing.assert_allclose(arr_e, [1.0, 0.0])
    with pytest.raises(ValueError):
        segment_error([])


def test_rao_blackwell_transition_matrix_basic():
    blocks = [np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[0.2, 0.8]])]
    np.testing.assert_allclose(rao_blackwell_transition_matrix(blocks), [[0.75, 0.25], [0.2, 0.8]])
    with pytest.raises(ValueError):
        rao_blackwell_transition_matrix([np.array([[0.5, 0.4]]), np.array([[0.5, 0.5]])])
    with pytest.raises(ValueError):
        rao_blackwell_transition_matrix([np.zeros((0, 2)), np.array([[0.5, 0.5]])])


@pytest.mark.parametrize("hidden", ["onehot", "binary"])
def test_rao_blackwell_estimate_approaches_exact_M(hidden):
    rng = np.random.default_rng(8)
    D, L = 6, 3 if hidden == "onehot" else 2
    w, a = 1.5 * rng.normal(size=(D, L)), rng.normal(size=D)
    wbar, abar, xbar = 1.5 * rng.normal(size=(L, D)), rng.normal(size=L), np.full(D, 0.5)
    m = exact_model(w, a, wbar, abar, xbar, hidden=hidden)
    n_draws = 4000
    blocks = []
    for zp in range(m.M.shape[0]):
        idx = rng.choice(2**D, size=n_draws, p=m.A[zp])  # x ~ A(z', .)
        blocks.append(backward_kernel(wbar, abar, xbar, visible_states(D)[idx], hidden))
    M_rb = rao_blackwell_transition_matrix(blocks)
    np.testing.assert_allclose(M_rb.sum(axis=1), 1.0, atol=1e-14)
    # Each entry is a mean of n_draws values in [0, 1]: standard error <= 0.5 / sqrt(n_draws).
    assert np.abs(M_rb - m.M).max() < 5 * 0.5 / math.sqrt(n_draws)


@given(st.integers(0, 2**31 - 1), st.integers(2, 6))
@SETTINGS
def test_summarize_counts_is_the_sum_of_its_parts(seed, S):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 5, (S, S)).astype(float) * (rng.random((S, S)) < 0.7)
    c[0, 1] += 1  # never all zero
    got = summarize_counts(c, pseudocount=0.5, stationary=True)
    M = transition_matrix(c)
    np.testing.assert_array_equal(got.M, M)
    assert got.entropy == entropy_production_from_counts(c, pseudocount=0.5)
    np.testing.assert_array_equal(got.tau, decorrelation_time(M))  # equal, or both NaN or both inf
    np.testing.assert_array_equal(got.self_transition, mean_self_transition(M))
    np.testing.assert_array_equal(got.pbar, stationary_distribution(M))
    assert summarize_counts(c).pbar is None


def test_summarize_counts_skips_eigen_decompositions_of_huge_blocks():
    S = DENSE_EIG_LIMIT + 1
    c = np.zeros((S, S))
    c[np.arange(S), (np.arange(S) + 1) % S] = 1.0
    got = summarize_counts(c, stationary=True)
    assert math.isnan(got.tau) and got.pbar is None and got.self_transition == 0.0
