"""Tests of probability currents, cycle affinities and sigma convergence curves (nemm.cycles)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nemm.cycles import (
    SigmaCurve,
    cycle_affinity,
    cycle_current,
    dominant_cycle,
    probability_currents,
    sigma_against_draws,
    sigma_against_length,
)
from nemm.markov import (
    entropy_production,
    entropy_production_from_counts,
    stationary_distribution,
    transition_counts,
)

SETTINGS = settings(max_examples=40, deadline=None)

# A doubly stochastic 3-state chain turning 0 -> 1 -> 2 -> 0: pbar uniform, J(0, 1) = (0.7 - 0.1) / 3.
M_TURN = np.array([[0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.7, 0.1, 0.2]])


def reversible(seed: int, S: int) -> tuple[np.ndarray, np.ndarray]:
    """M = W / rowsum(W) with W symmetric: detailed balance with pbar proportional to the row sums."""
    rng = np.random.default_rng(seed)
    W = rng.gamma(0.8, size=(S, S))
    W = W + W.T
    rows = W.sum(axis=1)
    return W / rows[:, None], rows / rows.sum()


def random_stochastic(seed: int, S: int) -> np.ndarray:
    M = np.random.default_rng(seed).gamma(0.7, size=(S, S)) + 1e-3
    return M / M.sum(axis=1, keepdims=True)


def from_circulation(pbar: np.ndarray, sym: float, cycles: list[tuple[list[int], float]]) -> np.ndarray:
    """M from fluxes F = S + C: S symmetric (off-diagonal ``sym``), C a sum of cycle circulations.

    Rows of F sum to pbar, so pbar is stationary, and the currents are J = F - F^T = 2 C.
    """
    S = pbar.size
    C = np.zeros((S, S))
    for cyc, c in cycles:
        for u, v in zip(cyc, cyc[1:] + cyc[:1]):
            C[u, v] += c
            C[v, u] -= c
    F = np.full((S, S), sym) + C
    np.fill_diagonal(F, 0.0)
    F[np.diag_indices(S)] = pbar - F.sum(axis=1)
    assert (F >= 0).all()
    return F / pbar[:, None]


def simple_cycles(S: int) -> list[list[int]]:
    """Every directed simple cycle of at least 3 states, once per rotation class."""
    out = []
    for n in range(3, S + 1):
        for perm in itertools.permutations(range(S), n):
            if perm[0] == min(perm):
                out.append(list(perm))
    return out


# --------------------------------------------------------------------------- currents


def test_currents_of_the_turning_chain() -> None:
    J = probability_currents(M_TURN, np.full(3, 1 / 3))
    j = 0.6 / 3
    np.testing.assert_allclose(J, [[0, j, -j], [-j, 0, j], [j, -j, 0]], atol=1e-15)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), S=st.integers(2, 7))
def test_currents_antisymmetric_and_conserved(seed: int, S: int) -> None:
    M = random_stochastic(seed, S)
    J = probability_currents(M, stationary_distribution(M))
    np.testing.assert_array_equal(J, -J.T)
    np.testing.assert_allclose(J.sum(axis=1), 0.0, atol=1e-12)  # stationarity: current is conserved


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), S=st.integers(2, 6))
def test_currents_vanish_and_affinities_are_zero_under_detailed_balance(seed: int, S: int) -> None:
    M, pbar = reversible(seed, S)
    np.testing.assert_allclose(probability_currents(M, pbar), 0.0, atol=1e-15)
    assert dominant_cycle(M, pbar) == []
    for cyc in simple_cycles(min(S, 4)):  # Kolmogorov's criterion
        assert cycle_affinity(M, cyc) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- affinity


def test_affinity_of_the_turning_chain_is_three_ln_seven() -> None:
    assert cycle_affinity(M_TURN, [0, 1, 2]) == pytest.approx(3 * math.log(7), abs=1e-14)
    assert cycle_affinity(M_TURN, [0, 1, 2, 0]) == pytest.approx(3 * math.log(7), abs=1e-14)
    assert cycle_affinity(M_TURN, [1, 2, 0]) == pytest.approx(3 * math.log(7), abs=1e-14)
    assert cycle_affinity(M_TURN, [2, 1, 0]) == pytest.approx(-3 * math.log(7), abs=1e-14)
    # A unicyclic network: sigma (eq. 21) = cycle current * cycle affinity.
    pbar = np.full(3, 1 / 3)
    sigma = entropy_production(M_TURN, pbar)
    assert sigma == pytest.approx(cycle_current(M_TURN, pbar, [0, 1, 2]) * 3 * math.log(7), rel=1e-13)


def test_affinity_hand_computed_general_cycle() -> None:
    M = np.array([[0.5, 0.3, 0.2], [0.25, 0.25, 0.5], [0.4, 0.1, 0.5]])
    expected = math.log((0.3 * 0.5 * 0.4) / (0.25 * 0.1 * 0.2))
    assert cycle_affinity(M, [0, 1, 2]) == pytest.approx(expected, abs=1e-14)
    assert cycle_affinity(M, [0, 1]) == 0.0  # a two-state "cycle" is always balanced


def test_affinity_infinite_and_undefined_cases() -> None:
    cyc3 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert cycle_affinity(cyc3, [0, 1, 2]) == math.inf
    assert cycle_affinity(cyc3, [0, 2, 1]) == -math.inf
    M = np.array([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])
    with pytest.raises(ValueError, match="both directions"):
        cycle_affinity(M, [0, 1, 2])
    # 0 -> 1 has no way back, 1 -> 2 no way forward: the ratio is 0 / 0.
    mixed = np.array([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.3, 0.3, 0.4]])
    with pytest.raises(ValueError, match="forward and backward"):
        cycle_affinity(mixed, [0, 1, 2])


@pytest.mark.parametrize(
    ("cycle", "match"),
    [([0], "at least 2"), ([0, 1, 0, 2], "each state once"), ([0, 3], "0..2"), ([0, 1.5], "integer")],
)
def test_affinity_rejects_bad_cycles(cycle: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cycle_affinity(M_TURN, cycle)


def test_bad_matrices_are_rejected() -> None:
    with pytest.raises(ValueError, match="row-stochastic"):
        probability_currents(np.array([[0.5, 0.4], [0.5, 0.5]]), [0.5, 0.5])
    with pytest.raises(ValueError, match="square"):
        probability_currents(np.ones((2, 3)) / 3, [0.5, 0.5])
    with pytest.raises(ValueError, match="pbar must have shape"):
        probability_currents(M_TURN, [0.5, 0.5])
    with pytest.raises(ValueError, match="finite"):
        cycle_affinity(np.array([[np.nan, 1.0], [0.5, 0.5]]), [0, 1])


# --------------------------------------------------------------------------- dominant cycle


def test_dominant_cycle_of_the_turning_chain() -> None:
    assert dominant_cycle(M_TURN, np.full(3, 1 / 3)) == [0, 1, 2]
    assert dominant_cycle(M_TURN.T, np.full(3, 1 / 3)) == [0, 2, 1]  # M_TURN.T turns the other way


@pytest.mark.parametrize(("a", "b", "expected"), [(0.02, 0.005, [0, 1, 2]), (0.005, 0.02, [2, 3, 4])])
def test_dominant_cycle_picks_the_larger_current(a: float, b: float, expected: list[int]) -> None:
    pbar = np.full(5, 0.2)
    M = from_circulation(pbar, 0.03, [([0, 1, 2], a), ([2, 3, 4], b)])
    assert dominant_cycle(M, pbar) == expected
    assert cycle_current(M, pbar, expected) == pytest.approx(2 * max(a, b), abs=1e-15)


def test_dominant_cycle_respects_max_length() -> None:
    pbar = np.full(7, 1 / 7)
    M = from_circulation(pbar, 0.02, [([0, 1, 2, 3], 0.015), ([4, 6, 5], 0.005)])
    assert dominant_cycle(M, pbar) == [0, 1, 2, 3]
    assert dominant_cycle(M, pbar, max_length=3) == [4, 6, 5]
    with pytest.raises(ValueError, match="max_length"):
        dominant_cycle(M, pbar, max_length=2)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), S=st.integers(3, 5), max_length=st.sampled_from([None, 3, 4]))
def test_dominant_cycle_maximizes_the_bottleneck_current(seed: int, S: int, max_length: int | None) -> None:
    M = random_stochastic(seed, S)
    pbar = stationary_distribution(M)
    J = probability_currents(M, pbar)
    cyc = dominant_cycle(M, pbar, max_length)
    assert cyc == dominant_cycle(M, pbar, max_length)  # deterministic
    limit = S if max_length is None else max_length
    best = max(
        (min(J[u, v] for u, v in zip(c, c[1:] + c[:1])) for c in simple_cycles(S) if len(c) <= limit),
        default=-math.inf,
    )
    if best <= 1e-12:
        assert cyc == []
        return
    assert 3 <= len(cyc) <= limit and cyc[0] == min(cyc)
    assert cycle_current(M, pbar, cyc) == pytest.approx(best, abs=1e-15)
    assert cycle_affinity(M, cyc) > 0  # a cycle carrying positive current has positive affinity


# --------------------------------------------------------------------------- convergence of sigma


def markov_trajectory(M: np.ndarray, T: int, seed: int, n_chains: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cum = np.cumsum(M, axis=1)
    u = rng.random((n_chains, T))
    traj = np.empty((n_chains, T), dtype=np.int64)
    traj[:, 0] = rng.integers(0, M.shape[0], size=n_chains)
    for t in range(1, T):
        traj[:, t] = np.minimum((u[:, t, None] > cum[traj[:, t - 1]]).sum(axis=1), M.shape[0] - 1)
    return traj


def test_sigma_against_length_calls_the_counting_estimator_and_converges() -> None:
    traj = markov_trajectory(M_TURN, 40_000, seed=4, n_chains=2)
    lengths = [10, 100, 1000, 40_000]
    curve = sigma_against_length(traj, 3, lengths, pseudocount=0.5)
    assert isinstance(curve, SigmaCurve)
    np.testing.assert_array_equal(curve.n, lengths)
    for k, s, n1 in zip(lengths, curve.sigma, curve.n_one_way):
        ep = entropy_production_from_counts(transition_counts(traj[:, :k], 3), pseudocount=0.5)
        assert (s, n1) == (ep.sigma, ep.n_one_way)
    exact = entropy_production(M_TURN, np.full(3, 1 / 3))  # 0.6 ln 7
    assert curve.sigma[-1] == pytest.approx(exact, rel=0.03)
    assert curve.n_one_way[-1] == 0


def test_sigma_against_length_one_way_pairs_with_a_deterministic_cycle() -> None:
    traj = np.tile([0, 1, 2], 100)
    curve = sigma_against_length(traj, 3, [4, 300], pseudocount=0.0)
    assert (curve.sigma == math.inf).all() and (curve.n_one_way == 3).all()
    with pytest.raises(ValueError, match="lengths"):
        sigma_against_length(traj, 3, [1])
    with pytest.raises(ValueError, match="lengths"):
        sigma_against_length(traj, 3, [301])


def test_sigma_against_draws_exact_and_converging() -> None:
    # Draws whose Abar(x, .) equals the row M(z', .) exactly: sigma is exact at every n.
    S, n = 3, 50
    exact_rows = np.repeat(M_TURN[:, None, :], n, axis=1)
    curve = sigma_against_draws(exact_rows, [1, 10, 50])
    np.testing.assert_allclose(curve.sigma, entropy_production(M_TURN, np.full(3, 1 / 3)), rtol=1e-12)
    assert (curve.n_one_way == 0).all() and np.isnan(curve.sigma_two_way).all()
    # One-hot "Abar" from sampled next states: the Rao-Blackwell M is then the counting M per row.
    rng = np.random.default_rng(1)
    n = 20_000
    onehot = np.zeros((S, n, S))
    for z in range(S):
        onehot[z, np.arange(n), rng.choice(S, size=n, p=M_TURN[z])] = 1.0
    curve = sigma_against_draws(onehot, [n])
    assert curve.sigma[0] == pytest.approx(0.6 * math.log(7), rel=0.03)
    with pytest.raises(ValueError, match="shape"):
        sigma_against_draws(np.ones((3, 4)), [1])
    with pytest.raises(ValueError, match="draws"):
        sigma_against_draws(exact_rows, [0])
