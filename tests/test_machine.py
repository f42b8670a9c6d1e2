"""The Machine estimator: reproducibility, persistence, input checking, training on MNIST digits
and the small API (partial_fit, sample, hidden_trajectory, get/set_params)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp

import nemm
from nemm import Machine, approx_gradient, load
from nemm.exact import exact_model, hidden_states
from nemm.machine import FORMAT_NAME, FORMAT_VERSION

# Small, fast training settings for the tiny-data tests.
FAST = dict(n_epochs=3, steps_per_epoch=5, batch_size=(8, 16), chain_steps=8)


def tiny_data(seed: int = 0, N: int = 120, D: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0.05, 0.95, size=(3, D))
    return (rng.random((N, D)) < protos[rng.integers(0, 3, size=N)]).astype(np.uint8)


def params_of(m: Machine) -> dict[str, np.ndarray]:
    return {k: getattr(m, k + "_") for k in ("w", "a", "wbar", "abar", "xbar")}


def exact_pbar(m: Machine) -> np.ndarray:
    return exact_model(
        m.w_,
        m.a_,
        m.wbar_,
        m.abar_,
        m.xbar_,
        hidden=m.hidden,
        normalization=m.normalization,
        centered=m.centered,
    ).pbar


def rbm_log_pbar(m: Machine) -> np.ndarray:
    """Exact ln pbar of a tied machine (an RBM): ln pbar(z) = c.z + sum_i softplus((w z + a)_i) + const."""
    Zs = hidden_states(m.n_hidden, m.hidden)
    c = m.abar_ - (m.wbar_ @ m.xbar_ if m.centered else 0.0)
    lp = Zs @ c + np.logaddexp(0.0, Zs @ m.w_.T + m.a_).sum(axis=1)
    return lp - logsumexp(lp)


@pytest.fixture(scope="module")
def fitted() -> tuple[Machine, np.ndarray]:
    X = tiny_data()
    return Machine(3, random_state=5, **FAST).fit(X), X


# =========================================================================== 3. reproducibility

_THREADS_SCRIPT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from nemm import Machine, _core

    rng = np.random.default_rng(0)
    X = (rng.random((1500, 16)) < rng.uniform(0.1, 0.9, 16)).astype(np.uint8)
    h = hashlib.sha256()
    for kw in (dict(n_hidden=4), dict(n_hidden=3, hidden="binary"), dict(n_hidden=3, tied=True)):
        m = Machine(**kw, n_epochs=4, steps_per_epoch=5, batch_size=(8, 32), chain_steps=8,
                    n_chains=4, random_state=7).fit(X)
        S, Z = m.sample(64, n_chains=4, seed=3, return_hidden=True)
        traj = m.hidden_trajectory(300, seed=5, n_chains=4, codes=True)
        score = m.score_samples(X, n_steps=5000)
        hist = np.asarray([m.history_[k] for k in ("epoch", "loglik", "batch_size")], dtype=float)
        for arr in (m.w_, m.a_, m.wbar_, m.abar_, hist, S, Z, traj, score):
            h.update(np.ascontiguousarray(arr).tobytes())
    print(_core.max_threads(), h.hexdigest())
    """
)


def _run_with_threads(n: int) -> tuple[int, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(n))
    out = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    threads, digest = out.stdout.split()
    return int(threads), digest


@pytest.mark.skipif(not nemm.openmp_enabled(), reason="built without OpenMP: 2 threads run as 1")
def test_same_numbers_with_one_and_two_threads():
    t1, h1 = _run_with_threads(1)
    t2, h2 = _run_with_threads(2)
    assert (t1, t2) == (1, 2)
    assert h1 == h2


def test_same_seed_same_parameters_and_different_seed_different():
    X = tiny_data()
    kw = dict(FAST, n_chains=2)
    a = Machine(3, random_state=11, **kw).fit(X)
    b = Machine(3, random_state=11, **kw).fit(X)
    c = Machine(3, random_state=12, **kw).fit(X)
    for k, v in params_of(a).items():
        np.testing.assert_array_equal(v, params_of(b)[k], err_msg=k)
    assert a.history_["loglik"] == b.history_["loglik"]
    assert not np.array_equal(a.w_, c.w_)
    assert not np.array_equal(a.wbar_, c.wbar_)
    # refitting the same object starts over and gives the same numbers again
    a.fit(X)
    np.testing.assert_array_equal(a.w_, b.w_)
    # sampling and trajectories: same seed same draws, other seed other draws
    np.testing.assert_array_equal(a.sample(40, seed=1), b.sample(40, seed=1))
    assert not np.array_equal(a.sample(40, seed=1), a.sample(40, seed=2))
    np.testing.assert_array_equal(a.hidden_trajectory(200, seed=4), b.hidden_trajectory(200, seed=4))
    assert not np.array_equal(a.hidden_trajectory(200, seed=4), a.hidden_trajectory(200, seed=5))
    # the default seed is random_state
    np.testing.assert_array_equal(a.hidden_trajectory(200), b.hidden_trajectory(200, seed=11))


def test_chains_are_independent_streams():
    # Chain c of a multi-chain run must not be a copy (or a shift) of another chain.
    m = Machine.from_params(
        np.random.default_rng(0).normal(size=(8, 4)),
        np.zeros(8),
        np.random.default_rng(1).normal(size=(4, 8)),
        np.zeros(4),
        random_state=0,
    )
    traj = m.hidden_trajectory(500, seed=3, n_chains=4)
    for i in range(4):
        for j in range(i):
            assert not np.array_equal(traj[i], traj[j])
            assert not np.array_equal(traj[i][1:], traj[j][:-1])
    # and the first chain of a 4-chain run is the single chain of the same seed
    np.testing.assert_array_equal(traj[0], m.hidden_trajectory(500, seed=3, n_chains=1))


# =========================================================================== 4. save / load


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_hidden=3),
        dict(n_hidden=2, hidden="binary"),
        dict(n_hidden=3, tied=True),
        dict(n_hidden=3, normalization="sigmoid", centered=False),
    ],
    ids=["onehot", "binary", "tied", "sigmoid-uncentered"],
)
def test_save_load_roundtrip(tmp_path, kw):
    X = tiny_data()
    m = Machine(random_state=3, **kw, **FAST).fit(X)
    path = m.save(tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    r = load(path)
    assert isinstance(r, Machine)
    assert r.get_params() == m.get_params()
    for k, v in params_of(m).items():
        np.testing.assert_array_equal(getattr(r, k + "_"), v, err_msg=k)
    assert r.history_ == m.history_
    assert r.epochs_done_ == m.epochs_done_ == FAST["n_epochs"]
    pbar = exact_pbar(m)
    np.testing.assert_array_equal(r.score_samples(X, pbar=pbar), m.score_samples(X, pbar=pbar))
    np.testing.assert_array_equal(r.score_samples(X, n_steps=3000), m.score_samples(X, n_steps=3000))
    np.testing.assert_array_equal(
        r.hidden_trajectory(300, seed=9, n_chains=2), m.hidden_trajectory(300, seed=9, n_chains=2)
    )
    np.testing.assert_array_equal(r.sample(30, seed=2), m.sample(30, seed=2))


def test_saved_file_is_a_plain_npz(tmp_path, fitted):
    m, _ = fitted
    path = m.save(tmp_path / "model")
    assert path == tmp_path / "model.npz" and path.is_file()
    with np.load(path, allow_pickle=False) as npz:
        assert {"w", "a", "wbar", "abar", "xbar", "metadata"} <= set(npz.files)
        for k in ("w", "a", "wbar", "abar", "xbar"):
            assert npz[k].dtype == np.float64
            np.testing.assert_array_equal(npz[k], getattr(m, k + "_"))
        meta = json.loads(str(npz["metadata"][()]))
        np.testing.assert_array_equal(npz["history/loglik"], m.history_["loglik"])
    assert meta["format"] == FORMAT_NAME == "nemm-machine"
    assert meta["format_version"] == FORMAT_VERSION
    assert meta["settings"]["n_hidden"] == 3 and meta["settings"]["random_state"] == 5


def test_save_is_atomic_and_replaces(tmp_path, fitted):
    m, X = fitted
    other = Machine(3, random_state=99, **FAST).fit(X)
    path = tmp_path / "model.npz"
    m.save(path)
    other.save(path)  # over an existing file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temp file left
    np.testing.assert_array_equal(load(path).w_, other.w_)


def test_failed_save_leaves_old_file_and_no_temp(tmp_path, fitted, monkeypatch):
    m, X = fitted
    path = m.save(tmp_path / "model.npz")
    before = path.read_bytes()
    other = Machine(3, random_state=99, **FAST).fit(X)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def _rewrite(src: Path, dst: Path, *, meta_update=None, drop=(), metadata=None) -> Path:
    with np.load(src, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    if metadata is not None:
        arrays["metadata"] = np.array(metadata)
    elif meta_update is not None:
        meta = json.loads(str(arrays["metadata"][()]))
        meta_update(meta)
        arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)
    return dst


def test_load_rejects_wrong_files(tmp_path, fitted):
    m, _ = fitted
    good = m.save(tmp_path / "good.npz")

    bad = _rewrite(
        good, tmp_path / "v.npz", meta_update=lambda d: d.update(format_version=FORMAT_VERSION + 1)
    )
    with pytest.raises(ValueError, match="format version"):
        load(bad)
    bad = _rewrite(good, tmp_path / "f.npz", meta_update=lambda d: d.update(format="something-else"))
    with pytest.raises(ValueError, match="not a nemm model"):
        load(bad)
    bad = _rewrite(good, tmp_path / "m.npz", drop=("wbar",))
    with pytest.raises(ValueError, match="wbar"):
        load(bad)
    bad = _rewrite(good, tmp_path / "n.npz", drop=("metadata",))
    with pytest.raises(ValueError, match="metadata"):
        load(bad)
    bad = _rewrite(good, tmp_path / "j.npz", metadata="{not json")
    with pytest.raises(ValueError, match="metadata"):
        load(bad)
    text = tmp_path / "text.npz"
    text.write_text("this is not a model\n")
    with pytest.raises(ValueError, match="not a readable nemm model"):
        load(text)
    # arrays of inconsistent shapes
    with np.load(good, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["wbar"] = arrays["wbar"][:, :-1]
    np.savez(tmp_path / "s.npz", **arrays)
    with pytest.raises(ValueError, match="wbar"):
        load(tmp_path / "s.npz")


@pytest.mark.parametrize(
    "case",
    ["corrupt-zip", "npy-file", "metadata-not-an-object", "no-settings", "unknown-setting"],
)
def test_load_rejects_malformed_files_with_valueerror(tmp_path, fitted, case):
    # Every malformed input must give the documented ValueError, not an internal error,
    # and must not leave the file open.
    m, _ = fitted
    good = m.save(tmp_path / "good.npz")
    if case == "corrupt-zip":
        bad = tmp_path / "corrupt.npz"
        bad.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    elif case == "npy-file":
        bad = tmp_path / "array.npy"
        np.save(bad, np.zeros(3))
    elif case == "metadata-not-an-object":
        bad = _rewrite(good, tmp_path / "b.npz", metadata=json.dumps([1, 2, 3]))
    elif case == "no-settings":
        bad = _rewrite(good, tmp_path / "b.npz", meta_update=lambda d: d.pop("settings"))
    else:
        bad = _rewrite(good, tmp_path / "b.npz", meta_update=lambda d: d["settings"].update(bogus=1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raised = None
        try:
            load(bad)
        except Exception as exc:  # noqa: BLE001 - the type is checked below
            raised = type(exc)
        gc.collect()  # a leaked file object warns when collected
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert raised is ValueError, f"load raised {raised}, expected ValueError"
    assert not leaks, f"load left a file open: {leaks[0].message}"


# =========================================================================== 5. bad input


@pytest.mark.parametrize(
    "X,exc,match",
    [
        (np.array([[0.0, 1.0, np.nan], [1.0, 0.0, 1.0]]), ValueError, "NaN"),
        (np.array([[0, 1, 2], [1, 0, 1]]), ValueError, "only 0 and 1"),
        (np.array([[0.0, 0.5, 1.0], [1.0, 0.0, 1.0]]), ValueError, "only 0 and 1"),
        (np.array([0, 1, 1, 0]), ValueError, "two-dimensional"),
        (np.zeros((2, 3, 4)), ValueError, "two-dimensional"),
        (np.array([["0", "1"], ["1", "0"]]), TypeError, "numeric"),
        (np.array([[None, 1], [1, 0]], dtype=object), TypeError, "numeric"),
        (np.zeros((0, 5)), ValueError, "empty"),
        (np.zeros((5, 0)), ValueError, "empty"),
    ],
    ids=["nan", "two", "half", "1d", "3d", "strings", "object", "no-rows", "no-columns"],
)
def test_fit_rejects_bad_data(X, exc, match):
    with pytest.raises(exc, match=match):
        Machine(3, random_state=0, **FAST).fit(X)


def test_fit_accepts_bool_and_float_01():
    X = tiny_data()
    a = Machine(3, random_state=0, **FAST).fit(X.astype(bool))
    b = Machine(3, random_state=0, **FAST).fit(X.astype(np.float32))
    np.testing.assert_array_equal(a.w_, b.w_)


@pytest.mark.parametrize(
    "settings,match",
    [
        (dict(hidden="foo"), "hidden"),
        (dict(normalization="bar"), "normalization"),
        (dict(tied=True, normalization="sigmoid"), "tied"),
        (dict(hidden="binary", normalization="sigmoid"), "sigmoid"),
        (dict(n_hidden=1), "n_hidden"),
        (dict(n_hidden=0), "n_hidden"),
        (dict(n_epochs=0), "n_epochs"),
        (dict(chain_steps=0), "chain_steps"),
        (dict(n_chains=0), "n_chains"),
        (dict(batch_size=(0, 10)), "batch_size"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(rho=1.0), "rho"),
    ],
)
def test_bad_settings_are_rejected(settings, match):
    kw = dict(dict(n_hidden=3), **settings)
    with pytest.raises(ValueError, match=match):
        Machine(**dict(FAST, **kw)).fit(tiny_data())
    D, L = 4, 3
    with pytest.raises(ValueError, match=match):
        Machine.from_params(np.zeros((D, L)), np.zeros(D), np.zeros((L, D)), np.zeros(L), **kw)


def test_from_params_shape_and_value_checks():
    D, L = 5, 3
    ok = dict(w=np.zeros((D, L)), a=np.zeros(D), wbar=np.zeros((L, D)), abar=np.zeros(L))
    Machine.from_params(**ok)  # fine
    for key, bad in [
        ("w", np.zeros(D)),
        ("a", np.zeros(D + 1)),
        ("wbar", np.zeros((D, L))),
        ("abar", np.zeros(L + 1)),
    ]:
        with pytest.raises(ValueError, match=key):
            Machine.from_params(**dict(ok, **{key: bad}))
    with pytest.raises(ValueError, match="xbar"):
        Machine.from_params(**ok, xbar=np.zeros(D + 1))
    with pytest.raises(ValueError, match="xbar"):
        Machine.from_params(**ok, xbar=np.full(D, 1.5))
    with pytest.raises(ValueError, match="NaN|infinite"):
        Machine.from_params(**dict(ok, w=np.full((D, L), np.nan)))
    with pytest.raises(ValueError, match="w"):
        Machine.from_params(**ok, n_hidden=4)  # settings disagree with w
    with pytest.raises(TypeError):
        Machine.from_params(**dict(ok, a=np.array(["x"] * D)))


def test_unknown_setting_is_rejected():
    with pytest.raises(ValueError, match="unknown setting"):
        Machine(3).set_params(n_hiden=4)
    with pytest.raises(TypeError):
        Machine(3, bogus=1)


def test_scoring_sampling_and_gradient_check_their_input(fitted):
    m, X = fitted
    D = X.shape[1]
    with pytest.raises(ValueError, match="features"):
        m.score_samples(np.zeros((2, D + 1)))
    with pytest.raises(ValueError, match="features"):
        m.log_A(np.zeros((2, D - 1)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        m.score_samples(np.full((2, D), 3))
    with pytest.raises(ValueError, match="pbar"):
        m.score_samples(X, pbar=np.ones(4) / 4)  # wrong length
    with pytest.raises(ValueError, match="pbar"):
        m.score_samples(X, pbar=np.array([0.5, 0.6, -0.1]))
    with pytest.raises(ValueError, match="pbar"):
        m.score_samples(X, pbar=np.array([0.5, 0.2, 0.2]))
    with pytest.raises(ValueError, match="n_samples"):
        m.sample(0)
    with pytest.raises(ValueError):
        m.hidden_trajectory(0)
    Xp = X[:6]
    with pytest.raises(ValueError, match="Z has 5 hidden states but Xp has 6"):
        approx_gradient(m, X[:3], Xp, np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="features"):
        approx_gradient(m, X[:3, :-1], Xp, np.zeros(6, dtype=np.int64))
    with pytest.raises(ValueError, match="range"):
        approx_gradient(m, X[:3], Xp, np.full(6, 3))  # L = 3: states 0..2
    with pytest.raises(ValueError, match="range"):
        m.log_A(X, np.array([0, 5]))
    mb = Machine.from_params(np.zeros((D, 2)), np.zeros(D), np.zeros((2, D)), np.zeros(2), hidden="binary")
    with pytest.raises(ValueError, match="binary hidden states"):
        approx_gradient(mb, X[:3], Xp, np.zeros((6, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="binary hidden states"):
        approx_gradient(mb, X[:3], Xp, np.full((6, 2), 2, dtype=np.uint8))
    with pytest.raises(ValueError, match="binary"):
        mb.log_A(X)  # binary states must be given explicitly


def test_unfitted_machine_raises_runtimeerror(tmp_path):
    m = Machine(3)
    X = tiny_data()
    calls = [
        lambda: m.w_,
        lambda: m.wbar_,
        lambda: m.n_visible_,
        lambda: m.sample(3),
        lambda: m.hidden_trajectory(5),
        lambda: m.score_samples(X),
        lambda: m.score(X),
        lambda: m.log_A(X),
        lambda: m.occupancy(10),
        lambda: m.save(tmp_path / "m.npz"),
        lambda: approx_gradient(m, X, X, np.zeros(len(X), dtype=np.int64)),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match="fit"):
            call()
    assert not list(tmp_path.iterdir())


# =========================================================================== 6. MNIST digits


@pytest.mark.parametrize(
    "kw",
    [dict(n_hidden=6), dict(n_hidden=4, hidden="binary")],
    ids=["onehot-L6", "binary-L4"],
)
def test_training_on_digits_improves(digits, kw):
    X, _ = digits
    m = Machine(**kw, recipe="paper", n_epochs=10, random_state=0).fit(X)
    ll = np.asarray(m.history_["loglik"])
    assert ll.shape == (10,) and np.isfinite(ll).all()
    assert ll[-1] > ll[0] + 5
    assert m.history_["epoch"] == list(range(10))
    assert m.history_["batch_size"][0] == 16 and m.history_["batch_size"][-1] == 160
    score = m.score_samples(X)
    assert score.shape == (X.shape[0],) and np.isfinite(score).all()
    assert score.mean() > -160
    # far better than independent pixels (about -206 nats on these digits)
    q = np.clip(X.mean(axis=0), 1e-3, 1 - 1e-3)
    indep = float(np.mean(X @ np.log(q) + (1 - X) @ np.log1p(-q)))
    assert score.mean() > indep + 30


@pytest.mark.parametrize(
    "kw", [dict(n_hidden=6), dict(n_hidden=4, hidden="binary")], ids=["onehot", "binary"]
)
def test_tied_training_on_digits_improves_exact_likelihood(digits, kw):
    # The tied machine is an RBM: its stationary hidden marginal is known in closed form,
    # so its likelihood is exact even for D = 784.
    X, _ = digits
    m = Machine(**kw, tied=True, n_epochs=10, random_state=0).fit(X)
    assert np.isfinite(m.history_["loglik"]).all()
    np.testing.assert_array_equal(m.wbar_, m.w_.T)
    after = m.score_samples(X, pbar=np.exp(rbm_log_pbar(m))).mean()
    # The same kind of starting point as fit (appendix A1, tied): prototypes from 10% subsets.
    rng = np.random.default_rng(0)
    L = kw["n_hidden"]
    if kw.get("hidden") == "binary":
        w0, a0 = (
            0.01 * rng.standard_normal((X.shape[1], L)),
            np.log(np.clip(X.mean(0), 0.01, 0.99) / np.clip(1 - X.mean(0), 0.01, 0.99)),
        )
    else:
        means = np.stack(
            [X[rng.choice(len(X), len(X) // 10, replace=False)].mean(0) for _ in range(L)], axis=1
        )
        means = np.clip(means, 0.01, 0.99)
        w0, a0 = np.log(means / (1 - means)), np.zeros(X.shape[1])
    m0 = Machine.from_params(w0, a0, None, np.zeros(L), X.mean(0), tied=True, **kw)
    before = m0.score_samples(X, pbar=np.exp(rbm_log_pbar(m0))).mean()
    assert after > before + 10


def test_training_on_shared_mnist_files(mnist_dir, digits):
    # The paper's data read from the shared IDX files are the embedded digits, and train alike.
    from nemm.datasets import load_digits

    X, y = load_digits((0, 1, 2), 1000, directory=mnist_dir)
    np.testing.assert_array_equal(X, digits[0])
    np.testing.assert_array_equal(y, digits[1])
    a = Machine(6, n_epochs=2, random_state=0).fit(X)
    b = Machine(6, n_epochs=2, random_state=0).fit(digits[0])
    np.testing.assert_array_equal(a.w_, b.w_)


# =========================================================================== 7. small API


def test_partial_fit_continues(fitted):
    _, X = fitted
    m = Machine(3, random_state=5, **FAST).fit(X)
    w = m.w_.copy()
    m.partial_fit(X, n_epochs=2)
    assert m.epochs_done_ == FAST["n_epochs"] + 2
    assert len(m.history_["loglik"]) == FAST["n_epochs"] + 2
    assert m.history_["epoch"] == list(range(FAST["n_epochs"] + 2))
    assert not np.array_equal(m.w_, w)
    # two partial fits from scratch (3 + 2 epochs) continue exactly like fit + partial_fit
    same = Machine(3, random_state=5, **FAST)
    same.partial_fit(X, n_epochs=FAST["n_epochs"])
    same.partial_fit(X, n_epochs=2)
    np.testing.assert_array_equal(same.w_, m.w_)
    assert same.history_["loglik"] == m.history_["loglik"]
    # with the same schedule, 3 + 2 epochs are exactly one fit of 5: the chains, the RMSprop
    # state and the minibatch stream carry over
    five = Machine(3, random_state=5, **dict(FAST, n_epochs=5)).fit(X)
    parts = Machine(3, random_state=5, **dict(FAST, n_epochs=5))
    parts.partial_fit(X, n_epochs=3)
    parts.partial_fit(X, n_epochs=2)
    for k, v in params_of(five).items():
        np.testing.assert_array_equal(getattr(parts, k + "_"), v, err_msg=k)
    assert parts.history_["loglik"] == five.history_["loglik"]


def test_partial_fit_from_scratch_equals_fit():
    X = tiny_data()
    a = Machine(3, random_state=2, **FAST).fit(X)
    b = Machine(3, random_state=2, **FAST)
    for _ in range(FAST["n_epochs"]):
        b.partial_fit(X)
    np.testing.assert_array_equal(a.w_, b.w_)
    np.testing.assert_array_equal(a.wbar_, b.wbar_)
    assert a.history_["loglik"] == b.history_["loglik"]
    assert b.epochs_done_ == FAST["n_epochs"]


def test_partial_fit_after_load_continues_history(tmp_path, fitted):
    m, X = fitted
    r = load(m.save(tmp_path / "m.npz"))
    w = r.w_.copy()
    r.partial_fit(X, n_epochs=1)
    assert not np.array_equal(r.w_, w)  # it trained from the loaded parameters
    assert r.epochs_done_ == m.epochs_done_ + 1
    assert len(r.history_["loglik"]) == len(m.history_["loglik"]) + 1
    assert r.history_["loglik"][:-1] == m.history_["loglik"]


def test_partial_fit_rejects_other_width(fitted):
    m, X = fitted
    with pytest.raises(ValueError, match="features"):
        m.partial_fit(X[:, :-1])


@pytest.mark.parametrize("hidden,L", [("onehot", 3), ("binary", 3)])
def test_sample_shapes_and_values(hidden, L):
    D = 9
    rng = np.random.default_rng(0)
    m = Machine.from_params(
        rng.normal(size=(D, L)),
        rng.normal(size=D),
        rng.normal(size=(L, D)),
        rng.normal(size=L),
        hidden=hidden,
        random_state=1,
    )
    X = m.sample(50)
    assert X.shape == (50, D) and X.dtype == np.uint8
    assert set(np.unique(X)) <= {0, 1}
    X2, Z = m.sample(37, n_chains=5, return_hidden=True)
    assert X2.shape == (37, D) and X2.dtype == np.uint8
    if hidden == "onehot":
        assert Z.shape == (37,) and Z.dtype == np.int64 and Z.min() >= 0 and Z.max() < L
    else:
        assert Z.shape == (37, L) and Z.dtype == np.uint8 and set(np.unique(Z)) <= {0, 1}
    assert m.sample(1).shape == (1, D)
    assert not (X == X[0]).all()  # not one state repeated


@pytest.mark.parametrize("hidden,L", [("onehot", 4), ("binary", 3)])
def test_hidden_trajectory_shapes(hidden, L):
    D = 7
    rng = np.random.default_rng(1)
    m = Machine.from_params(
        rng.normal(size=(D, L)),
        rng.normal(size=D),
        rng.normal(size=(L, D)),
        rng.normal(size=L),
        hidden=hidden,
        random_state=1,
    )
    S = m.n_states
    codes = m.hidden_trajectory(100, codes=True)
    assert codes.shape == (100,) and codes.dtype == np.int64 and codes.min() >= 0 and codes.max() < S
    multi = m.hidden_trajectory(100, n_chains=3, codes=True)
    assert multi.shape == (3, 100)
    plain = m.hidden_trajectory(100)
    if hidden == "onehot":
        assert S == L
        assert plain.shape == (100,) and plain.dtype == np.int64
        np.testing.assert_array_equal(plain, codes)
    else:
        assert S == 2**L
        assert plain.shape == (100, L) and plain.dtype == np.uint8 and set(np.unique(plain)) <= {0, 1}
        np.testing.assert_array_equal(plain.astype(np.int64) @ (1 << np.arange(L)), codes)
        assert m.hidden_trajectory(50, n_chains=2).shape == (2, 50, L)
    assert len(np.unique(codes)) > 1


def test_get_and_set_params(fitted):
    m, X = fitted
    p = m.get_params()
    assert p["n_hidden"] == 3 and p["random_state"] == 5 and p["hidden"] == "onehot"
    assert set(p) >= {
        "n_hidden",
        "hidden",
        "normalization",
        "centered",
        "tied",
        "learning_rate",
        "n_epochs",
        "chain_steps",
        "n_chains",
        "random_state",
    }
    clone = Machine(**p)
    assert clone.get_params() == p
    assert clone.set_params(n_hidden=4, random_state=1) is clone
    assert clone.n_hidden == 4 and clone.get_params()["random_state"] == 1
    clone.fit(X)
    assert clone.w_.shape == (X.shape[1], 4)
    assert m.get_params() == p  # the original is untouched
    assert "n_hidden=3" in repr(m)


def test_mean_images_and_score(fitted):
    m, X = fitted
    mu = m.mean_images()
    assert mu.shape == (3, X.shape[1])
    # The core's sigmoid is accurate to a few 1e-11 relative where it is tiny (|w| near 14 after an
    # EM start makes means near 1e-6).
    np.testing.assert_allclose(mu, 1 / (1 + np.exp(-(m.w_.T + m.a_))), rtol=1e-10)
    pbar = exact_pbar(m)
    assert abs(m.score(X) - m.score_samples(X, pbar=pbar).mean()) < 0.1


def test_score_cache_follows_parameter_changes(fitted):
    _, X = fitted
    m = Machine(3, random_state=5, **FAST).fit(X)
    first = m.score_samples(X, n_steps=4000)
    np.testing.assert_array_equal(m.score_samples(X, n_steps=4000), first)  # cached, same numbers
    m.partial_fit(X, n_epochs=2)
    states, p = m.occupancy(4000)
    want = m.score_samples(X, pbar=p)
    np.testing.assert_allclose(m.score_samples(X, n_steps=4000), want, rtol=1e-12)
    assert not np.allclose(want, first)


def test_visible_bias_freezing_and_callback():
    X = tiny_data()
    seen = []
    m = Machine(3, random_state=0, **FAST).fit(
        X, callback=lambda mach, e: seen.append((e, mach.epochs_done_))
    )
    assert seen == [(0, 1), (1, 2), (2, 3)]
    np.testing.assert_array_equal(m.a_, np.zeros(X.shape[1]))  # one-hot: a = 0, frozen (eq. 20)
    b = Machine(2, hidden="binary", random_state=0, **FAST).fit(X)
    b0 = Machine(2, hidden="binary", random_state=0, freeze_visible_bias=True, **FAST).fit(X)
    q = np.clip(X.mean(axis=0), 0.01, 0.99)
    np.testing.assert_allclose(b0.a_, np.log(q / (1 - q)), rtol=1e-12)  # initial a, kept
    assert not np.allclose(b.a_, b0.a_)  # trained by default for binary
    o = Machine(3, random_state=0, freeze_visible_bias=False, **FAST).fit(X)
    assert np.abs(o.a_).max() > 0


# =========================================================================== 8. settings at the door


def test_numpy_scalar_settings_are_accepted_and_saved(tmp_path):
    # GridSearchCV grids built with np.arange, np.float32 learning rates and np.bool_ flags:
    # accepted, stored as given, written to the model file as plain JSON numbers.
    X = tiny_data()
    kw = dict(FAST, n_epochs=np.arange(1, 4)[2], chain_steps=np.int32(8), batch_size=np.array([8, 16]))
    m = Machine(
        np.int64(3),
        learning_rate=np.float32(0.1),
        centered=np.bool_(True),
        tied=np.bool_(False),
        freeze_visible_bias=np.bool_(True),
        random_state=np.uint32(5),
        **kw,
    ).fit(X)
    assert isinstance(m.n_hidden, np.int64)  # the user's value is kept
    plain = Machine(3, learning_rate=float(np.float32(0.1)), random_state=5, **FAST).fit(X)
    np.testing.assert_array_equal(m.w_, plain.w_)  # ... and means the same
    r = load(m.save(tmp_path / "m.npz"))
    s = r.get_params()
    assert type(s["n_hidden"]) is int and type(s["learning_rate"]) is float and type(s["centered"]) is bool
    assert s["batch_size"] == (8, 16) and s["random_state"] == 5 and s["freeze_visible_bias"] is True
    np.testing.assert_array_equal(r.w_, m.w_)
    assert r.history_["epoch"] == [0, 1, 2] and all(type(e) is int for e in r.history_["epoch"])


@pytest.mark.parametrize(
    "settings,exc,match",
    [
        (dict(centered="no"), TypeError, "centered must be True or False"),
        (dict(freeze_visible_bias="no"), TypeError, "freeze_visible_bias must be True or False"),
        (dict(tied=1), TypeError, "tied"),
        (dict(n_chains=2.5), TypeError, "n_chains must be an integer"),
        (dict(n_hidden=3.0), TypeError, "n_hidden must be an integer"),
        (dict(random_state=-1), ValueError, "random_state must be at least 0"),
        (dict(learning_rate="0.1"), TypeError, "learning_rate must be a real number, got '0.1'"),
        (dict(learning_rate=float("inf")), ValueError, "learning_rate must be finite"),
        (dict(eps=float("nan")), ValueError, "eps must be finite"),
        (dict(batch_size="big"), TypeError, "batch_size must be a positive integer or a pair"),
        (dict(batch_size=(8, 16, 32)), TypeError, "batch_size"),
        (dict(batch_size=(8, 2.5)), TypeError, r"batch_size\[1\]"),
        (dict(chain_steps=2**31), ValueError, "chain_steps must be at most 2147483647 .*32-bit"),
        (dict(n_chains=2**31), ValueError, "n_chains must be at most 2147483647"),
        (dict(n_hidden=2**31), ValueError, "n_hidden must be at most"),
        (dict(verbose="yes"), TypeError, "verbose"),
        (dict(hidden=None), TypeError, "hidden must be a string, one of"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_bad_setting_types_are_rejected_before_training(settings, exc, match):
    m = Machine(**dict(dict(FAST, n_hidden=3), **settings))  # stored as given (scikit-learn convention)
    with pytest.raises(exc, match=match):
        m.fit(tiny_data())
    assert m._engine is None and not hasattr(m, "history_")  # nothing was trained
    with pytest.raises(exc, match=match):
        m.partial_fit(tiny_data())
    D, L = 4, 3
    with pytest.raises(exc, match=match):
        Machine.from_params(
            np.zeros((D, L)), np.zeros(D), np.zeros((L, D)), np.zeros(L), **dict(dict(n_hidden=3), **settings)
        )


def test_fit_does_not_rewrite_batch_size():
    X = tiny_data()
    m = Machine(3, random_state=0, **dict(FAST, batch_size=8)).fit(X)
    assert m.batch_size == 8 and m.get_params()["batch_size"] == 8
    pair = Machine(3, random_state=0, **dict(FAST, batch_size=(8, 8))).fit(X)
    np.testing.assert_array_equal(m.w_, pair.w_)


def test_method_arguments_are_checked(fitted):
    m, X = fitted  # one-hot, L = 3
    with pytest.raises(TypeError, match="T must be an integer"):
        m.hidden_trajectory(2.5)
    with pytest.raises(TypeError, match="n_chains must be an integer"):
        m.hidden_trajectory(10, n_chains=2.5)
    with pytest.raises(TypeError, match="n_chains must be an integer"):
        m.sample(5, n_chains=2.5)
    with pytest.raises(ValueError, match="n_chains must be at most 2147483647"):
        m.sample(5, n_chains=2**31)
    with pytest.raises(ValueError, match="seed must be at least 0"):
        m.sample(5, seed=-1)
    with pytest.raises(TypeError, match="thin"):
        m.sample(5, thin=1.5)
    with pytest.raises(TypeError, match="states must be integer"):
        m.log_A(X[:2], states=[1.7])
    with pytest.raises(ValueError, match=r"range \[0, 3\)"):
        m.mean_images(states=[-1])
    with pytest.raises(ValueError, match=r"range \[0, 3\)"):
        m.log_A(X[:2], states=[-1])
    with pytest.raises(TypeError, match="n_epochs must be an integer"):
        m.partial_fit(X, n_epochs=1.5)
    np.testing.assert_array_equal(m.mean_images(states=[2, 0]), m.mean_images()[[2, 0]])
    mb = Machine.from_params(
        np.zeros((X.shape[1], 2)),
        np.zeros(X.shape[1]),
        np.zeros((2, X.shape[1])),
        np.zeros(2),
        hidden="binary",
    )
    with pytest.raises(ValueError, match="binary hidden states"):
        mb.mean_images(states=[[0, 2]])
    assert mb.mean_images(states=[1, 0]).shape == (1, X.shape[1])


def test_memory_is_estimated_before_training(monkeypatch):
    import time

    import nemm._checks as checks

    X = (np.random.default_rng(0).random((20, 784)) < 0.3).astype(np.uint8)
    monkeypatch.setattr(checks, "memory_limit", lambda: 16 * 2**30)  # a 16 GiB machine, anywhere
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"n_hidden=1000000.* about 81\.\d GiB .* 16\.0 GiB"):
        Machine(10**6).fit(X)
    assert time.perf_counter() - t0 < 5  # at once, not after allocating and training
    m = Machine(3, random_state=0, **FAST).fit(X[:, :10])
    monkeypatch.setattr(checks, "memory_limit", lambda: 2**20)
    with pytest.raises(MemoryError, match="10000000 samples"):
        m.sample(10**7)
    with pytest.raises(MemoryError, match="hidden trajectory"):
        m.hidden_trajectory(10**6, n_chains=4)
    assert m.sample(100).shape == (100, 10)  # what fits under the same limit is not refused
    monkeypatch.undo()
    real = checks.memory_limit()  # the machine's own answer: bytes (not pages), or None when unknown
    assert real is None or real >= 2**26, real


def test_sparse_input_is_accepted():
    sp = pytest.importorskip("scipy.sparse")
    X = tiny_data()
    dense = Machine(3, random_state=0, **FAST).fit(X)
    for S in (sp.csr_matrix(X), sp.csr_array(X.astype(float)), sp.coo_matrix(X.astype(bool))):
        m = Machine(3, random_state=0, **FAST).fit(S)
        np.testing.assert_array_equal(m.w_, dense.w_)
        pbar = exact_pbar(m)
        np.testing.assert_array_equal(m.score_samples(S, pbar=pbar), dense.score_samples(X, pbar=pbar))
    bad = sp.csr_matrix(X * 2.0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        Machine(3, **FAST).fit(bad)


def test_structural_settings_changed_after_fit_are_refused(fitted, tmp_path):
    _, X = fitted
    m = Machine(3, random_state=5, **FAST).fit(X)
    m.set_params(n_hidden=4)
    with pytest.raises(RuntimeError, match="n_hidden were changed"):
        m.sample(3)
    with pytest.raises(RuntimeError, match="n_hidden were changed"):
        m.save(tmp_path / "m.npz")
    m.set_params(n_hidden=3)
    assert m.sample(3).shape == (3, X.shape[1])


# =========================================================================== 9. threads and pickle


_SHARED_MACHINE_SCRIPT = textwrap.dedent(
    """
    import threading
    import numpy as np
    from nemm import Machine
    rng = np.random.default_rng(0)
    X = (rng.random((400, 300)) < rng.uniform(0.1, 0.9, size=300)).astype(np.uint8)
    # The minibatch size keeps changing (long schedule), so the engine's buffers are resized.
    SETTINGS = dict(n_epochs=40, steps_per_epoch=10, batch_size=(16, 200), chain_steps=60, random_state=1)

    def run_all(calls):
        errors = []
        def guard(f):
            try:
                f()
            except BaseException as exc:
                errors.append(repr(exc))
        threads = [threading.Thread(target=guard, args=(f,)) for f in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors

    # Three threads, four partial_fits of 2 epochs each: 1 + 24 epochs, as if run one after the other.
    m = Machine(8, **SETTINGS).partial_fit(X)
    def train():
        for _ in range(4):
            m.partial_fit(X, n_epochs=2)
    def read():
        for _ in range(10):
            m.sample(20, seed=1); m.hidden_trajectory(500, seed=2); m.w_; m.log_A(X[:5])
            m.score_samples(X[:5], n_steps=500)
    run_all([train, train, train, read])
    ref = Machine(8, **SETTINGS).partial_fit(X)
    for _ in range(12):
        ref.partial_fit(X, n_epochs=2)
    assert m.epochs_done_ == ref.epochs_done_ == 25, m.epochs_done_
    assert m.history_["epoch"] == list(range(25)), m.history_["epoch"]
    np.testing.assert_array_equal(m.w_, ref.w_)

    # Two concurrent fits: each is a whole fit; the machine ends as after one.
    f = Machine(8, **dict(SETTINGS, n_epochs=10))
    run_all([lambda: f.fit(X), lambda: f.fit(X)])
    one = Machine(8, **dict(SETTINGS, n_epochs=10)).fit(X)
    assert f.epochs_done_ == 10 and f.history_["epoch"] == list(range(10)), f.history_["epoch"]
    np.testing.assert_array_equal(f.w_, one.w_)
    print("ok")
    """
)


def test_threads_share_one_machine_safely():
    # In a subprocess: before the lock, two threads in partial_fit crashed the interpreter
    # (double free), which must fail this test rather than kill pytest.
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _SHARED_MACHINE_SCRIPT],
            capture_output=True,
            text=True,
            timeout=600,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", (proc.returncode, proc.stderr[-3000:])


@pytest.mark.parametrize("hidden", ["onehot", "binary"])
def test_pickle_and_deepcopy_go_through_the_model_file(hidden, tmp_path):
    import copy
    import io
    import pickle

    X = tiny_data()
    m = Machine(3, hidden=hidden, random_state=4, **FAST).fit(X)
    blob = pickle.dumps(m)
    assert b"nemm._core" not in blob  # no engine memory, only the model file's bytes
    state = m.__getstate__()
    assert set(state) == {"model_npz"}
    with np.load(io.BytesIO(state["model_npz"]), allow_pickle=False) as npz:
        saved = m.save(tmp_path / "m.npz")
        with np.load(saved, allow_pickle=False) as on_disk:
            assert set(npz.files) == set(on_disk.files)
            for k in npz.files:
                np.testing.assert_array_equal(npz[k], on_disk[k])
    for r in (pickle.loads(blob), copy.deepcopy(m)):
        assert r.get_params() == m.get_params() and r.history_ == m.history_
        assert r.epochs_done_ == m.epochs_done_ and r.n_features_in_ == m.n_features_in_
        for k, v in params_of(m).items():
            np.testing.assert_array_equal(getattr(r, k + "_"), v, err_msg=k)
        np.testing.assert_array_equal(r.sample(20, seed=3), m.sample(20, seed=3))
        r.partial_fit(X)  # trains on its own engine
        assert r.epochs_done_ == m.epochs_done_ + 1
    # unfitted: the settings as given, even invalid ones (checked at fit)
    u = pickle.loads(pickle.dumps(Machine(np.int64(5), centered="no")))
    assert u.n_hidden == 5 and u.centered == "no" and u._engine is None
