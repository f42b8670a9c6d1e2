"""Issue 17 part 2: a chain that never moves is not reported as mixing perfectly.

Rows of the counted M of states never left (never visited, or seen only last) are
unknown (NaN), never filled with the occupancy; a stuck chain has tau = inf and
Tr(M)/L = 1 in every output (transition_statistics, diagnose's text, sweep rows).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import nemm
import nemm.diagnostics as diag
from nemm import sweep
from nemm.datasets import embedded_digits
from nemm.markov import transition_matrix


def _stuck_machine(L: int, D: int, hidden: str) -> nemm.Machine:
    """A machine whose chain cannot move: every image is all ones, and that image always maps to state 0."""
    w = np.zeros((D, L))
    a = np.full(D, 40.0)  # x = 1 everywhere, whatever z
    abar = np.full(L, -40.0)
    abar[0] = 40.0  # one-hot: softmax puts all mass on state 0; binary: bit 0 on, the others off
    return nemm.Machine.from_params(
        w, a, np.zeros((L, D)), abar, np.full(D, 0.5), hidden=hidden, random_state=0
    )


@pytest.fixture(scope="module")
def stuck_rbm() -> nemm.RBM:
    X, _ = embedded_digits()
    return nemm.RBM(6, random_state=1).fit(X)  # the RBM of the issue: its Gibbs chain never moves


def test_stuck_rbm_has_infinite_tau_and_unit_self_transition(stuck_rbm: nemm.RBM) -> None:
    ts = diag.transition_statistics(stuck_rbm, 50_000, n_chains=2, seed=3)
    assert np.trace(ts.counts) == ts.counts.sum() == 99_998  # no move at all
    assert ts.tau == math.inf
    assert ts.self_transition == 1.0
    # Only the visited state's row is known; the others are unknown, not the occupancy.
    visited = ts.pbar_e > 0
    np.testing.assert_array_equal(ts.rows_known, visited)
    assert np.isnan(ts.M[~visited]).all()
    np.testing.assert_array_equal(np.diag(ts.M)[visited], 1.0)
    assert all(math.isinf(t) for t in ts.segments["tau"])


def test_diagnose_text_prints_unknown_rows_not_made_up_ones(stuck_rbm: nemm.RBM) -> None:
    from nemm.cli import diagnosis_text

    d = diag.diagnose(stuck_rbm, n_steps=2000, seed=3, rao_blackwell_draws=0)
    assert d.tau == math.inf and d.self_transition == 1.0
    text = diagnosis_text(d, "rbm.npz", None)
    rows = text.split("M (row: state, column: next state):\n")[1].splitlines()[: d.n_states]
    visited = d.occupancy > 0
    assert sum("unknown (never visited)" in r for r in rows) == int((~visited).sum()) >= 1
    for r, v in zip(rows, visited):
        assert ("unknown" in r) != bool(v)
    assert "decorrelation time tau (eq. 23): ∞" in text
    assert "Tr(M)/L (eq. 24): 1 " in text


def test_seen_only_last_is_never_left() -> None:
    from nemm.cli import diagnosis_text

    d = diag.diagnose(_stuck_machine(3, 6, "onehot"), n_steps=100, n_chains=1, seed=0, rao_blackwell_draws=0)
    d.M = transition_matrix(np.array([[5, 1, 0], [0, 0, 0], [0, 0, 0]]))  # state 1 seen only last
    d.occupancy = np.array([5, 1, 0]) / 6
    text = diagnosis_text(d, "m.npz", None)
    assert "unknown (never left)" in text and "unknown (never visited)" in text


@pytest.mark.parametrize("hidden, L", [("onehot", 4), ("binary", 13)])
def test_sweep_rows_of_a_stuck_machine(hidden: str, L: int) -> None:
    # One-hot: the dense path (diagnose); binary L = 13: the sparse path, relabelled to one visited state.
    m = _stuck_machine(L, 6, hidden)
    rng = np.random.default_rng(0)
    X = (rng.random((30, 6)) < 0.5).astype(np.uint8)
    cfg = {"diagnostic_steps": 400, "n_chains": 2, "pseudocount": 0.5, "measures": ["sigma", "tau", "trace"]}
    got = sweep.measure(m, X, None, cfg)
    assert got["tau"] == math.inf
    assert got["trace"] == 1.0


def test_stuck_machine_transition_statistics() -> None:
    ts = diag.transition_statistics(_stuck_machine(5, 6, "onehot"), 1000, n_chains=3, seed=1)
    assert ts.tau == math.inf and ts.self_transition == 1.0
    np.testing.assert_array_equal(ts.rows_known, [True, False, False, False, False])
    np.testing.assert_array_equal(ts.pbar, [1, 0, 0, 0, 0])


def test_reproduce_record_of_the_stuck_rbm() -> None:
    # The rbm row of nemm reproduce: tau inf and Tr(M)/L 1, never "tau 0, Tr(M)/L 0.167".
    from nemm.reproduce import records
    from nemm.reproduce.report import fmt

    X, y = embedded_digits()
    cfg = {
        "diagnostic_steps": 2000,
        "n_chains": 2,
        "pseudocount": 0.5,
        "rao_blackwell_draws": 0,
        "mixing_steps": 0,
        "track_every": 0,
    }
    rec, _ = records.run_record("rbm", {"n_hidden": 6, "random_state": 1}, X, y, cfg)
    assert float(rec["tau"]) == math.inf and rec["self_transition"] == 1.0  # records keep inf as "inf"
    assert (fmt(rec["tau"]), fmt(rec["self_transition"])) == ("∞", "1")
