"""Binary hidden layers of more than 63 units (issue 18, "hidden layers of any size").

The core holds a hidden state as ceil(L / 64) uint64 words (bit b % 64 of word b // 64 is z_b);
one word, the state's code, up to 64 units, so narrow machines keep their bits. Checked here:
training, sampling, files and threads at L = 100; the chain's two conditional probabilities at
L = 70 against numpy; the gradient at L = 70 against the direct evaluation of eqs. 16-17; and the
bits of a narrow machine against a pinned hash of the 64-bit-code implementation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest
from scipy.special import expit
from test_core import make_machine, random_params, reference_gradient

import nemm
from nemm import RBM, Machine, _core, approx_gradient
from nemm.datasets import load_digits
from nemm.diagnostics import transition_statistics


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits()[0][::20]


@pytest.fixture
def restore_threads() -> Iterator[None]:
    saved = _core.max_threads()
    yield
    nemm.set_num_threads(saved)


def wide_machine(X: np.ndarray, L: int = 100, **settings: object) -> Machine:
    kw: dict[str, object] = dict(
        hidden="binary", recipe="paper", n_epochs=2, steps_per_epoch=4, random_state=1
    )
    kw.update(settings)
    return Machine(L, **kw).fit(X)  # type: ignore[arg-type]


def test_machine_with_100_binary_units_fits_and_samples(digits):
    m = wide_machine(digits)
    assert np.isfinite(m.w_).all() and np.isfinite(m.wbar_).all()
    assert np.isfinite(m.history_["loglik"]).all()
    X, Z = m.sample(12, burn_in=20, return_hidden=True)
    assert X.shape == (12, digits.shape[1]) and Z.shape == (12, 100) and Z.dtype == np.uint8
    assert set(np.unique(Z)) <= {0, 1} and 0 < Z.mean() < 1
    traj = m.hidden_trajectory(30, n_chains=3, burn_in=5)
    assert traj.shape == (3, 30, 100) and traj.dtype == np.uint8
    # The units past the first word are used too.
    assert traj[..., 64:].any() and not traj[..., 64:].all()
    with pytest.raises(ValueError, match="codes=True needs n_hidden <= 63"):
        m.hidden_trajectory(5, codes=True)
    states, p = m.occupancy(50, burn_in=5)
    assert states.shape[1] == 100 and np.isclose(p.sum(), 1.0)
    with pytest.warns(UserWarning, match="rough estimate"):
        assert np.isfinite(m.score(digits[:20]))


def test_rbm_with_100_binary_units_trains_by_pcd_and_samples(digits):
    r = RBM(100, hidden="binary", gradient="pcd", n_epochs=2, random_state=0).fit(digits)
    assert np.isfinite(r.w_).all()
    X, H = r.sample(6, burn_in=20, return_hidden=True)
    assert X.shape == (6, digits.shape[1]) and H.shape == (6, 100)
    with pytest.raises(ValueError, match="exact"):
        RBM(100, hidden="binary", gradient="exact").fit(digits)


def test_conditional_probabilities_of_a_70_unit_chain_match_numpy():
    # Recorded pairs (x'(t), z(t)) with z(t) ~ Abar(x'(t), .) and x'(t+1) ~ A(z(t), .): the draws
    # minus the sigmoid probabilities numpy computes from the parameters must average to zero
    # within their standard error, unit by unit and pixel by pixel.
    D, L, T = 10, 70, 20_000
    p = random_params(7, D, L, scale=0.4)
    m = make_machine(p, hidden="binary")
    m._engine.reset_chains(1, 11, None)
    Xp, Z = m._engine.run_chains(T)
    Xp, Z = Xp.astype(float), Z.astype(float)
    q = expit((Xp - p["xbar"]) @ p["wbar"].T + p["abar"])  # P(z_b = 1 | x'(t)), eqs. 11, 17
    zscore = (Z - q).sum(axis=0) / np.sqrt((q * (1 - q)).sum(axis=0))
    assert np.abs(zscore).max() < 5.0, zscore
    mu = expit(Z[:-1] @ p["w"].T + p["a"])  # P(x_i = 1 | z(t)), eqs. 8, 10
    zx = (Xp[1:] - mu).sum(axis=0) / np.sqrt((mu * (1 - mu)).sum(axis=0))
    assert np.abs(zx).max() < 5.0, zx
    # A deterministic layer puts every unit's bit where it belongs (units 64-69 in the second word).
    det = dict(p, abar=np.where(np.arange(L) % 3 == 0, 60.0, -60.0), wbar=np.zeros((L, D)))
    m2 = make_machine(det, hidden="binary")
    m2._engine.reset_chains(2, 3, None)
    _, Z2 = m2._engine.run_chains(5)
    np.testing.assert_array_equal(Z2, np.tile(np.arange(L) % 3 == 0, (10, 1)).astype(np.uint8))


@pytest.mark.parametrize("repeated", [False, True])
def test_gradient_of_a_70_unit_layer_matches_direct_evaluation(repeated):
    D, L, N, T = 9, 70, 4, 16
    p = random_params(5, D, L, scale=0.3)
    m = make_machine(p, hidden="binary")
    rng = np.random.default_rng(2)
    X = rng.integers(0, 2, size=(N, D)).astype(np.uint8)
    m._engine.reset_chains(1, 9, None)
    Xp, Z = m._engine.run_chains(T)  # a recorded chain of the engine itself
    if repeated:  # states recorded more than once, differing only in the second word
        Z = Z[np.arange(T) % 4].copy()
        Z[::2, 66] ^= 1
    got = approx_gradient(m, X, Xp, Z)
    want, ll = reference_gradient(p, X, Xp, Z, "binary", "softmax", True, False)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-11, err_msg=k)
    raw = m._engine.approx_gradient(X, Xp, Z)
    assert abs(raw["loglik"] - ll) <= 1e-9 * max(1.0, abs(ll))


def test_save_and_load_at_100_units_continue_bit_for_bit(digits, tmp_path):
    m = wide_machine(digits)
    path = m.save(tmp_path / "wide.npz")
    back = nemm.load(path)
    for k in ("w_", "a_", "wbar_", "abar_"):
        np.testing.assert_array_equal(getattr(back, k), getattr(m, k))
    np.testing.assert_array_equal(back.hidden_trajectory(20, burn_in=3), m.hidden_trajectory(20, burn_in=3))
    m.partial_fit(digits)
    back.partial_fit(digits)
    np.testing.assert_array_equal(back.w_, m.w_)
    np.testing.assert_array_equal(back.wbar_, m.wbar_)
    z = np.load(path)["train/z"]
    assert z.shape == (1, 2) and z.dtype == np.uint64


def test_rbm_at_100_units_saves_its_chains_and_resumes_bit_for_bit(digits, tmp_path):
    r = RBM(100, hidden="binary", gradient="pcd", n_epochs=1, random_state=2).fit(digits)
    back = nemm.load(r.save(tmp_path / "rbm.npz"))
    r.partial_fit(digits)
    back.partial_fit(digits)
    np.testing.assert_array_equal(back.w_, r.w_)
    np.testing.assert_array_equal(back.abar_, r.abar_)
    assert np.load(tmp_path / "rbm.npz")["train/z"].shape[1:] == (2,)


def test_chain_state_of_a_wide_layer_is_checked(digits):
    m = wide_machine(digits, n_epochs=1)
    state = m._engine.chain_state()
    with pytest.raises(ValueError, match=r"chain z must have shape \(n_chains, 2\)"):
        m._engine.set_chain_state(state["visible"], state["z"][:, 0], state["rng"], state["lanes"])
    bad = state["z"].copy()
    bad[:, 1] |= np.uint64(1) << np.uint64(40)  # unit 104 of a 100-unit layer
    with pytest.raises(ValueError, match="out of range"):
        m._engine.set_chain_state(state["visible"], bad, state["rng"], state["lanes"])


@pytest.mark.skipif(not nemm.openmp_enabled(), reason="the core was built without OpenMP")
def test_wide_training_bits_do_not_depend_on_the_thread_count(digits, restore_threads):
    runs = []
    for threads in (1, 2):
        nemm.set_num_threads(threads)
        m = wide_machine(digits, n_chains=6, n_epochs=1)
        runs.append((m.w_, m.wbar_, m.abar_, m.sample(8, burn_in=5, return_hidden=True)[1]))
    for one, two in zip(*runs):
        np.testing.assert_array_equal(one, two)


def test_transition_statistics_of_a_wide_layer_label_the_visited_states():
    # No codes past 63 units: the visited states get exact labels. A weakly coupled 100-unit
    # layer visits a new state almost every step, more than dense statistics hold: refused by name.
    m = make_machine(random_params(1, 6, 100, scale=0.1), hidden="binary")
    with pytest.raises(ValueError, match="distinct hidden states"):
        transition_statistics(m, 5000, n_segments=2, burn_in=5)
    p = random_params(1, 6, 80, scale=0.1)
    p["abar"] = np.where(np.arange(80) < 78, -40.0, 0.0)  # two free units: four states
    small = make_machine(p, hidden="binary")
    ts = transition_statistics(small, 2000, n_chains=1, n_segments=2, burn_in=5)
    assert ts.states.size == 4 and ts.counts.sum() == 1999


def test_narrow_binary_machines_keep_their_bits(digits):
    # Pinned from the 64-bit-code core (before the words): a 40-unit machine's training, hidden
    # codes and samples. tools/behaviour_hash.py checks the narrow layers of the behaviour hash too.
    m = Machine(40, hidden="binary", recipe="paper", n_epochs=2, steps_per_epoch=3, random_state=3).fit(
        digits
    )
    t = m.hidden_trajectory(200, n_chains=2, burn_in=10, codes=True)
    S, Z = m.sample(8, burn_in=5, return_hidden=True)
    h = hashlib.sha256()
    for a in (m.w_, m.wbar_, m.abar_, m.a_, t, S, Z):
        h.update(np.ascontiguousarray(a).tobytes())
    assert h.hexdigest()[:16] == "c94faddab32659f0"
    bits = m.hidden_trajectory(200, n_chains=2, burn_in=10)
    np.testing.assert_array_equal((bits.astype(np.int64) << np.arange(40)).sum(axis=-1), t)
