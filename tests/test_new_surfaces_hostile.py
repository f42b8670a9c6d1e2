"""Issue 20, "New surfaces of the other issues": the estimators and options added by issues 17-19
refuse bad input naming the argument, stop on Ctrl-C within about a second, keep memory bounded
and give the same bits on any number of threads."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import nemm
from nemm.datasets import binarize
from nemm.diagnostics import entropy_production_rate


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, nemm.Machine, nemm.RBM]:
    rng = np.random.default_rng(0)
    X = (rng.random((120, 16)) < 0.3).astype(np.uint8)
    m = nemm.Machine(3, n_epochs=2, random_state=0, recipe="paper").fit(X)
    r = nemm.RBM(3, n_epochs=2, random_state=0).fit(X)
    return X, m, r


@pytest.mark.parametrize(
    ("effort", "error"),
    [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
     ("1", TypeError), (True, TypeError), (None, TypeError)],
)  # fmt: skip
def test_entropy_production_rate_refuses_bad_effort(small, effort, error) -> None:
    _, m, _ = small
    with pytest.raises(error, match="effort"):
        entropy_production_rate(m, effort=effort)


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), ("a", TypeError), (1.5, TypeError)])
def test_entropy_production_rate_refuses_bad_seed(small, seed, error) -> None:
    _, m, _ = small
    with pytest.raises(error, match="seed"):
        entropy_production_rate(m, seed=seed)


def test_entropy_production_rate_names_a_model_that_is_none() -> None:
    with pytest.raises(TypeError, match="model must be a fitted Machine or RBM"):
        entropy_production_rate(None)  # type: ignore[arg-type]


def test_estimate_loglik_refuses_bad_method_and_effort(small) -> None:
    X, _, r = small
    with pytest.raises(ValueError, match="method must be one of"):
        nemm.estimate_loglik(r, X, method="fast")
    with pytest.raises(TypeError, match="n_temperatures must be an integer"):
        nemm.estimate_loglik(r, X[:4], method="ais", n_temperatures=1.5)
    with pytest.raises(ValueError, match="n_runs"):
        nemm.estimate_loglik(r, X[:4], method="ais", n_runs=0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        nemm.estimate_loglik(r, X[:4] * 2)


@pytest.mark.parametrize(
    ("settings", "error", "name"),
    [
        ({"sampler": "fast"}, ValueError, "sampler"),
        ({"sampler": None}, TypeError, "sampler"),
        ({"pt_temperatures": 1}, ValueError, "pt_temperatures"),
        ({"pt_temperatures": 2.5}, TypeError, "pt_temperatures"),
        ({"pt_beta_min": 0.0}, ValueError, "pt_beta_min"),
        ({"pt_beta_min": float("nan")}, ValueError, "pt_beta_min"),
    ],
)
def test_rbm_sampler_settings_refused_by_name(small, settings, error, name) -> None:
    X, _, _ = small
    with pytest.raises(error, match=name):
        nemm.RBM(3, n_epochs=1, **settings).fit(X)


def test_recipe_and_binarization_refused_by_name(small) -> None:
    X, _, r = small
    with pytest.raises(ValueError, match="sampler"):
        r.sample(4, sampler="fast")
    with pytest.raises(ValueError, match="recipe"):
        nemm.Machine(3, recipe="fast").fit(X)
    with pytest.raises(ValueError, match="binarization"):
        binarize(np.zeros((2, 4)), method="fast")
    with pytest.raises(ValueError, match="seed"):
        binarize(np.zeros((2, 4)), method="stochastic", seed=-3)


def test_entropy_production_rate_memory_does_not_grow_with_effort(small, monkeypatch) -> None:
    """Draws are made in pieces: a huge effort holds about one piece of pixels at a time."""
    import tracemalloc

    from nemm import entropy_production as ep

    _, m, _ = small
    monkeypatch.setattr(ep, "_PIECE_VALUES", 4096)
    tracemalloc.start()
    try:
        ep.log_M_entries(m, [[0, 1]], n_samples=200_000, seed=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # All draws at once: 200,000 x 16 pixels x 8 bytes = 25.6 MB; in pieces: the log weights (1.6 MB) and a piece.
    assert peak < 8_000_000


def test_entropy_production_rate_pieces_keep_the_bits(small, monkeypatch) -> None:
    from nemm import entropy_production as ep

    _, m, _ = small
    whole = ep.log_M_entries(m, [[0, 1], [2, 0]], n_samples=3000, seed=4)
    monkeypatch.setattr(ep, "_PIECE_VALUES", 16 * 7)  # 7 rows of 16 pixels a piece
    pieces = ep.log_M_entries(m, [[0, 1], [2, 0]], n_samples=3000, seed=4)
    np.testing.assert_array_equal(whole[0], pieces[0])
    np.testing.assert_array_equal(whole[1], pieces[1])


def _interrupted_after(code: str, delay: float = 1.0) -> tuple[float, str, str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        t0 = time.perf_counter()
        out, err = proc.communicate(timeout=60)
        return time.perf_counter() - t0, out, err, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(
    "call",
    [
        "entropy_production_rate(m, effort=10_000)",
        "r.sample(10**7, sampler='pt')",
        "r.sample(10**8, sampler='exact')",
    ],
)
def test_ctrl_c_stops_the_new_long_calls(call: str) -> None:
    latency, out, err, rc = _interrupted_after(f"""
        import numpy as np
        import nemm
        from nemm.diagnostics import entropy_production_rate
        rng = np.random.default_rng(0)
        X = (rng.random((200, 64)) < 0.3).astype(np.uint8)
        m = nemm.Machine(4, n_epochs=1, random_state=0, recipe="paper").fit(X)
        r = nemm.RBM(4, n_epochs=1, random_state=0).fit(X)
        print("ready", flush=True)
        try:
            {call}
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    assert rc == 0, err
    assert out.split() == ["interrupted"]
    assert latency < 3.0  # about a second is the aim; generous for a loaded machine


def test_new_estimators_do_not_depend_on_nemm_threads(small) -> None:
    _, m, r = small
    before = nemm._core.get_num_threads() if hasattr(nemm._core, "get_num_threads") else None
    try:
        nemm.set_num_threads(1)
        one = (entropy_production_rate(m, seed=2).sigma, r.sample(50, sampler="pt", seed=1))
        nemm.set_num_threads(2)
        two = (entropy_production_rate(m, seed=2).sigma, r.sample(50, sampler="pt", seed=1))
    finally:
        if before:
            nemm.set_num_threads(int(before))
    assert one[0] == two[0]
    np.testing.assert_array_equal(one[1], two[1])
