"""The headline entropy production rate (nemm.diagnostics.entropy_production_rate) against exact enumeration,
on strong cycles whose backward entries of M are below 1e-30, on trained digit machines (effort 8 against
effort 1), and its bits against nemm's and BLAS's thread counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nemm
from nemm import diagnostics as diag
from nemm.exact import exact_model

FIXTURES = Path(__file__).parent / "fixtures"


def cycle_params(w_scale: float, wbar_scale: float, L: int = 3, D: int = 12) -> dict:
    """A latent cycle 0 -> 1 -> ... -> L-1 -> 0: state k draws its own block of pixels, and that block is read
    back as state k + 1. Strong weights make the backward entries M(k+1 -> k) tiny."""
    rng = np.random.default_rng(0)
    block = np.zeros((L, D))
    for k in range(L):
        block[k, k * D // L : (k + 1) * D // L] = 1.0
    return {
        "w": (w_scale * (2 * block - 1)).T + 0.1 * rng.standard_normal((D, L)),
        "a": np.zeros(D),
        "wbar": np.array([wbar_scale * (2 * block[(j - 1) % L] - 1) for j in range(L)])
        + 0.1 * rng.standard_normal((L, D)),
        "abar": np.zeros(L),
        "xbar": np.full(D, 0.5),
    }


def random_params(seed: int, D: int, L: int, scale: float) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "w": scale * rng.standard_normal((D, L)),
        "a": rng.standard_normal(D),
        "wbar": scale * rng.standard_normal((L, D)),
        "abar": rng.standard_normal(L),
        "xbar": rng.uniform(0.2, 0.8, D),
    }


def machine_and_exact(p: dict, **settings: object) -> tuple[nemm.Machine, object]:
    m = nemm.Machine.from_params(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], **settings)
    keys = {k: settings[k] for k in ("hidden", "normalization", "centered") if k in settings}
    return m, exact_model(p["w"], p["a"], p["wbar"], p["abar"], p["xbar"], **keys)  # type: ignore[arg-type]


@pytest.mark.parametrize("w_scale, wbar_scale", [(3.0, 3.0), (9.0, 6.0), (20.0, 9.0)])
def test_matches_exact_enumeration_on_cycles(w_scale: float, wbar_scale: float) -> None:
    m, ex = machine_and_exact(cycle_params(w_scale, wbar_scale), n_hidden=3)
    r = diag.entropy_production_rate(m, seed=1)
    assert r.method == "M" and r.converged and r.effort_needed is None
    assert abs(r.sigma - ex.entropy_production) <= 4 * r.sigma_err
    assert r.sigma_err < 0.01 * ex.entropy_production
    # Entry by entry: ln M within 4 error bars (and 0.3 nats) of the exact one. Entries near 1 may show
    # no spread at all (every draw gives Abar = 1.0): they miss the rare rest of their row, 1e-3 here.
    assert r.log_M is not None and r.log_M_err is not None
    diff = np.abs(r.log_M - np.log(ex.M))
    assert np.all(diff <= 4 * r.log_M_err + 2e-3) and diff.max() < 0.3


def test_backward_entries_below_1e30_are_estimated() -> None:
    m, ex = machine_and_exact(cycle_params(20.0, 9.0), n_hidden=3)
    assert ex.M.min() < 1e-30  # the strong cycle's backward entries
    r = diag.entropy_production_rate(m, seed=2)
    assert r.log_M is not None
    back = np.log(ex.M) < np.log(1e-30)
    assert back.any() and np.allclose(r.log_M[back], np.log(ex.M)[back], atol=0.2)
    # The plain Rao-Blackwell M cannot see them at any practical number of draws.
    rb = diag.rao_blackwell_M(m, 2000, seed=0)
    assert isinstance(rb, np.ndarray) and np.all(rb[back] < 1e-30)


@pytest.mark.parametrize(
    "settings, L, scale",
    [
        ({"hidden": "binary"}, 3, 2.0),
        ({"normalization": "sigmoid"}, 4, 2.0),
        ({"centered": False}, 4, 3.0),
    ],
)
def test_matches_exact_for_every_kernel(settings: dict, L: int, scale: float) -> None:
    m, ex = machine_and_exact(random_params(1, 10, L, scale), n_hidden=L, **settings)
    r = diag.entropy_production_rate(m, seed=3)
    assert r.method == "M"
    assert abs(r.sigma - ex.entropy_production) <= 4 * r.sigma_err + 1e-4


def test_transitions_method_on_a_large_binary_space_matches_exact() -> None:
    m, ex = machine_and_exact(random_params(1, 10, 5, 3.0), n_hidden=5, hidden="binary")
    r = diag.entropy_production_rate(m, effort=2.0, seed=3)
    assert r.method == "transitions" and r.log_M is None
    t = r.transitions
    assert len(t["from"]) == len(t["log_ratio"]) > 0 and t["n_steps"] >= len(t["from"])
    assert abs(r.sigma - ex.entropy_production) <= 4 * r.sigma_err


def test_a_missed_region_is_reported_as_not_converged() -> None:
    """Huge backward weights on 12 pixels: the dominant x are ties of two states that no tilt meets well.
    The estimate is off by nats, and the convergence check says so."""
    m, ex = machine_and_exact(cycle_params(12.0, 30.0), n_hidden=3)
    r = diag.entropy_production_rate(m, seed=1)
    assert abs(r.sigma - ex.entropy_production) > 1.0
    assert not r.converged and r.effort_needed is not None and r.effort_needed > r.effort


def test_tied_machine_is_reversible() -> None:
    p = random_params(2, 10, 3, 2.0)
    m = nemm.Machine.from_params(p["w"], p["a"], None, p["abar"], p["xbar"], n_hidden=3, tied=True)
    r = diag.entropy_production_rate(m, seed=0)
    assert abs(r.sigma) <= 4 * r.sigma_err + 1e-4


def test_arguments_seed_and_rbm() -> None:
    m, _ = machine_and_exact(random_params(3, 8, 3, 1.0), n_hidden=3)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="effort"):
            diag.entropy_production_rate(m, effort=bad)
    a = diag.entropy_production_rate(m, seed=5)
    b = diag.entropy_production_rate(m, seed=5)
    c = diag.entropy_production_rate(m, seed=6)
    assert a.sigma == b.sigma and a.sigma != c.sigma
    X = (np.random.default_rng(0).random((60, 8)) < 0.5).astype(np.uint8)
    rbm = nemm.RBM(3, n_epochs=2, random_state=0).fit(X)
    r = diag.entropy_production_rate(rbm)
    assert r.method == "M" and abs(r.sigma) <= 4 * r.sigma_err + 1e-4  # an RBM's Gibbs chain is reversible


def test_diagnose_reports_the_three_estimators_under_their_names() -> None:
    m, ex = machine_and_exact(cycle_params(9.0, 6.0), n_hidden=3)
    d = diag.diagnose(m, n_steps=2000, rao_blackwell_draws=200)
    assert d.sigma_method == "M" and d.sigma_converged is True
    assert abs(d.sigma - ex.entropy_production) <= 4 * d.sigma_err
    ts = diag.transition_statistics(m, 2000, seed=0)
    assert d.sigma_counting == ts.sigma and d.sigma_counting_err == ts.sigma_err
    assert d.sigma_rao_blackwell is not None and d.log_M is not None
    skipped = diag.diagnose(m, n_steps=2000, rao_blackwell_draws=0, sigma_effort=0)
    assert np.isnan(skipped.sigma) and skipped.sigma_method == "" and skipped.sigma_converged is None
    assert skipped.sigma_counting == d.sigma_counting


@pytest.fixture(scope="module")
def trained() -> list[nemm.Machine]:
    """Two machines trained on the embedded digits (Machine(6, random_state=s).fit, s = 0, 1), parameters only."""
    f = np.load(FIXTURES / "trained_digits_L6.npz")
    return [
        nemm.Machine.from_params(
            f[f"w{s}"], f[f"a{s}"], f[f"wbar{s}"], f[f"abar{s}"], f[f"xbar{s}"], n_hidden=6, random_state=s
        )
        for s in (0, 1)
    ]


def test_trained_machine_effort_8_agrees_with_effort_1(trained: list[nemm.Machine]) -> None:
    """Seed 1 here (about 10 s); both seeds against effort 16 in bench/sigma_validation.py."""
    m = trained[1]
    one = diag.entropy_production_rate(m, effort=1.0)
    eight = diag.entropy_production_rate(m, effort=8.0)
    assert one.log_M is not None and one.log_M.min() < np.log(1e-10)  # tiny backward entries
    assert abs(one.sigma - eight.sigma) <= 2 * np.hypot(one.sigma_err, eight.sigma_err)
    assert eight.sigma_err < one.sigma_err


_THREADS_SCRIPT = """
import json, sys
import numpy as np
import nemm
from nemm import diagnostics as diag
nemm.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
D, L = 300, 4
m = nemm.Machine.from_params(2 * rng.standard_normal((D, L)) / np.sqrt(D) * 8, rng.standard_normal(D),
                             rng.standard_normal((L, D)) / np.sqrt(D) * 8, rng.standard_normal(L),
                             rng.uniform(0.2, 0.8, D), n_hidden=L)
ep = diag.entropy_production_rate(m, effort=0.25, seed=1)
rb = diag.rao_blackwell_sigma(m, 400, seed=1)
b = diag.entropy_production_rate(
    nemm.Machine.from_params(rng.standard_normal((D, 5)) / 4, rng.standard_normal(D), rng.standard_normal((5, D)) / 4,
                             rng.standard_normal(5), rng.uniform(0.2, 0.8, D), n_hidden=5, hidden="binary"),
    effort=0.25, seed=1)
print(json.dumps({"ep": [ep.sigma.hex(), ep.sigma_err.hex(), ep.log_M.tobytes().hex()],
                  "rb": [rb.sigma.hex(), rb.sigma_err.hex(), rb.M.tobytes().hex()],
                  "transitions": [b.sigma.hex(), b.sigma_err.hex()]}))
"""


def test_bits_do_not_depend_on_nemm_or_blas_threads() -> None:
    """entropy_production_rate and rao_blackwell_sigma give the same bits with 1 or 2 nemm and BLAS threads."""
    results = []
    for threads in ("1", "2"):
        env = dict(os.environ)
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = threads
        proc = subprocess.run(
            [sys.executable, "-c", _THREADS_SCRIPT, threads],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert results[0] == results[1]
