"""Exact resume (issue 10): the whole training state goes through save/load and pickle, so that
2 epochs + save + load + 2 epochs equals 4 epochs bit for bit; version-1 files; `nemm train
--checkpoint-every / --resume` after a SIGKILL; Ctrl-C in long core calls; divergence at its step;
and the same Ctrl-C and divergence behaviour for the RBM's fit (one estimator base, issue 16)."""

from __future__ import annotations

import copy
import json
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nemm import RBM, Machine, load
from nemm.machine import FORMAT_VERSION

SMALL = dict(n_hidden=3, n_epochs=4, steps_per_epoch=4, batch_size=(4, 10), chain_steps=6, random_state=7)
KINDS = {
    "onehot-softmax": dict(),
    "onehot-sigmoid": dict(normalization="sigmoid"),
    "binary": dict(hidden="binary"),
    "tied": dict(tied=True),
}


def data(seed: int = 0, N: int = 50, D: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0.1, 0.9, size=(3, D))
    return (rng.random((N, D)) < protos[rng.integers(0, 3, size=N)]).astype(np.uint8)


def training_state(m: Machine) -> dict[str, np.ndarray]:
    """Everything that decides the future of a run, as arrays."""
    e = m._engine
    out = {k: getattr(m, k + "_") for k in ("w", "a", "wbar", "abar", "xbar")}
    out.update({f"chain/{k}": v for k, v in e.chain_state().items()})
    out.update({f"opt/{k}": v for k, v in e.optimizer_state().items()})
    perm, pos, rng_state = m._batches.state()
    out["perm"], out["pos"] = perm, np.array(pos)
    out["batch_rng"] = np.array(json.dumps(rng_state))
    return out


def assert_same_run(a: Machine, b: Machine) -> None:
    sa, sb = training_state(a), training_state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.epochs_done_ == b.epochs_done_
    for k in ("epoch", "batch_size", "loglik"):
        assert a.history_[k] == b.history_[k], k
    # ... and every later sample.
    np.testing.assert_array_equal(
        a.sample(20, burn_in=5, thin=2, seed=3), b.sample(20, burn_in=5, thin=2, seed=3)
    )
    np.testing.assert_array_equal(
        a.hidden_trajectory(200, seed=4, burn_in=0, codes=True),
        b.hidden_trajectory(200, seed=4, burn_in=0, codes=True),
    )


@pytest.mark.parametrize("n_chains", [1, 2])
@pytest.mark.parametrize("kind", list(KINDS))
def test_two_plus_two_epochs_through_a_file_equal_four(kind: str, n_chains: int, tmp_path: Path) -> None:
    X = data()
    kw = dict(SMALL, n_chains=n_chains, **KINDS[kind])
    straight = Machine(**kw).fit(X)
    half = Machine(**kw).partial_fit(X, n_epochs=2)
    path = half.save(tmp_path / "half.npz")
    resumed = load(path)
    resumed.partial_fit(X, n_epochs=2)
    assert_same_run(straight, resumed)
    # The loaded history keeps its types.
    assert all(type(v) is int for v in resumed.history_["epoch"] + resumed.history_["batch_size"])
    assert all(type(v) is float for v in resumed.history_["loglik"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_pickle_and_deepcopy_continue_bit_for_bit(kind: str) -> None:
    X = data(1)
    kw = dict(SMALL, n_chains=2, **KINDS[kind])
    straight = Machine(**kw).fit(X)
    for clone in (lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy):
        half = Machine(**kw).partial_fit(X, n_epochs=2)
        twin = clone(half)
        twin.partial_fit(X, n_epochs=2)
        assert_same_run(straight, twin)
        half.partial_fit(X, n_epochs=2)  # the original is not disturbed by the copy
        assert_same_run(straight, half)


def test_saving_a_resumed_run_writes_the_same_file(tmp_path: Path) -> None:
    X = data(2)
    a = Machine(**SMALL).fit(X)
    b = Machine(**SMALL).partial_fit(X, n_epochs=3)
    b = load(b.save(tmp_path / "b.npz"))
    b.partial_fit(X, n_epochs=1)
    with np.load(a.save(tmp_path / "a.npz")) as fa, np.load(b.save(tmp_path / "b2.npz")) as fb:
        assert sorted(fa.files) == sorted(fb.files)
        assert {k for k in fa.files if k.startswith("train/")} == {
            f"train/{k}" for k in ("visible", "z", "rng", "lanes", "vw", "va", "vwbar", "vabar", "perm")
        }
        for k in fa.files:
            if k not in ("metadata", "history/seconds"):
                np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)
        ma, mb = json.loads(str(fa["metadata"])), json.loads(str(fb["metadata"]))
        assert ma["format_version"] == FORMAT_VERSION == 2
        assert ma["train"] == mb["train"]


def test_partial_fit_after_load_with_other_data_continues_on_them(tmp_path: Path) -> None:
    X, Y = data(3), data(4, N=30)
    m = load(Machine(**SMALL).partial_fit(X, n_epochs=2).save(tmp_path / "m.npz"))
    same = load(tmp_path / "m.npz").partial_fit(X, n_epochs=1)
    other = m.partial_fit(Y, n_epochs=1)
    assert other.epochs_done_ == 3 and other._batches.n == 30
    # The chains and optimizer carried over, but the minibatches came from Y: another run.
    assert not np.array_equal(other.w_, same.w_)


def _as_version_1(src: Path, dst: Path) -> Path:
    with np.load(src) as f:
        arrays = {k: f[k] for k in f.files if not k.startswith("train/")}
    meta = json.loads(str(arrays["metadata"]))
    meta["format_version"] = 1
    meta.pop("train")
    arrays["metadata"] = np.array(json.dumps(meta))
    np.savez(dst, **arrays)
    return dst


def test_version_1_files_load_with_a_warning_that_resume_is_not_exact(tmp_path: Path) -> None:
    X = data(5)
    m = Machine(**SMALL).partial_fit(X, n_epochs=2)
    v1 = _as_version_1(m.save(tmp_path / "m.npz"), tmp_path / "old.npz")
    with pytest.warns(UserWarning, match=r"old\.npz is a version-1 model file.*cannot resume exactly"):
        old = load(v1)
    np.testing.assert_array_equal(old.w_, m.w_)
    assert old.epochs_done_ == 2 and old.history_["epoch"] == [0, 1]
    old.partial_fit(X, n_epochs=1)  # trains on, with fresh chains and optimizer
    assert old.epochs_done_ == 3


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda a: a.pop("train/lanes"), "incomplete training state"),
        (lambda a: a.__setitem__("train/rng", np.zeros_like(a["train/rng"])), "all zero"),
        (lambda a: a.__setitem__("train/vw", -a["train/vw"] - 1), "non-negative"),
        (lambda a: a.__setitem__("train/va", np.full_like(a["train/va"], np.nan)), "finite"),
        (lambda a: a.__setitem__("train/visible", a["train/visible"][:, :-1]), "shape"),
        (lambda a: a.__setitem__("train/perm", np.zeros_like(a["train/perm"])), "not a permutation"),
        (lambda a: a.__setitem__("train/z", a["train/z"].astype(np.int64)), "uint64"),
    ],
)
def test_a_damaged_training_state_is_named(damage, message: str, tmp_path: Path) -> None:
    m = Machine(**SMALL).partial_fit(data(), n_epochs=1)
    with np.load(m.save(tmp_path / "m.npz")) as f:
        arrays = {k: f[k] for k in f.files}
    damage(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load(tmp_path / "bad.npz")


def test_engine_chain_state_round_trip_continues_the_chains() -> None:
    m = Machine(**dict(SMALL, n_chains=3, hidden="binary")).partial_fit(data(), n_epochs=1)
    e = m._engine
    state = e.chain_state()
    assert state["visible"].shape == (3, 12) and state["visible"].dtype == np.uint8
    assert state["z"].shape == (3,) and state["z"].dtype == np.uint64
    assert state["rng"].shape == (3, 4) and state["rng"].dtype == np.uint64
    assert state["lanes"].shape == (3, 4, 8) and state["lanes"].dtype == np.uint32
    first = e.run_chains(5)
    e.set_chain_state(**state)
    again = e.run_chains(5)
    for u, v in zip(first, again):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match=r"shape \(n_chains, 4, 8\)"):
        e.set_chain_state(state["visible"], state["z"], state["rng"], state["lanes"][:, :3])
    with pytest.raises(ValueError, match="out of range"):
        e.set_chain_state(state["visible"], state["z"] | np.uint64(1 << 10), state["rng"], state["lanes"])
    opt = e.optimizer_state()
    with pytest.raises(ValueError, match=r"vw must have shape \(D, L\)"):
        e.set_optimizer_state(opt["vw"].T, opt["va"], opt["vwbar"], opt["vabar"])


# ---------------------------------------------------------------- divergence
def test_divergence_is_caught_at_its_step_and_rolled_back() -> None:
    X = data(6)
    m = Machine(**dict(SMALL, n_epochs=3)).partial_fit(X, n_epochs=1)
    before = training_state(m)
    m.set_params(learning_rate=1e308)  # the first update overflows to inf
    with pytest.raises(
        FloatingPointError,
        match=r"training diverged at epoch 1, step 0 \(w became non-finite in "
        r"the update\); the training state is rolled back to the start of "
        r"that epoch; try a smaller learning_rate",
    ):
        m.partial_fit(X, n_epochs=1)
    after = training_state(m)  # the epoch was rolled back: parameters, chains, optimizer, minibatches
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert m.epochs_done_ == 1 and len(m.history_["epoch"]) == 1
    m.set_params(learning_rate=SMALL.get("learning_rate"))  # back to the setting it had (None: the recipe's)
    m.partial_fit(X, n_epochs=2)  # and it trains on exactly as if the failed call never happened
    assert_same_run(m, Machine(**dict(SMALL, n_epochs=3)).fit(X))


def test_a_nan_gradient_is_never_applied() -> None:
    # A NaN in the data's log-likelihood path (here: a NaN weight set by hand) is caught at the
    # gradient, before the update, and the engine is left as before the call.
    m = Machine(**SMALL).partial_fit(data(), n_epochs=1)
    e = m._engine
    w = e.w.copy()
    w[0, 0] = np.nan
    e.set_params(w, e.a, e.wbar, e.abar, e.xbar)
    before = {k: v.copy() for k, v in e.optimizer_state().items()}
    with pytest.raises(FloatingPointError, match=r"training diverged at step 0 of this call \(the "):
        e.train_steps(np.arange(4), np.array([4]), 3, 0.1, 0.9, 1e-8, False)
    for k, v in e.optimizer_state().items():
        np.testing.assert_array_equal(v, before[k])


# ---------------------------------------------------------------- Ctrl-C
def _python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _interrupt_after_ready(proc: subprocess.Popen, delay: float = 1.0) -> tuple[float, str, str]:
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        t0 = time.perf_counter()
        out, err = proc.communicate(timeout=60)
        return time.perf_counter() - t0, out, err
    finally:  # a failed check must not leave the long call running
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.parametrize(
    "call",
    [
        "m.hidden_trajectory(400_000_000, burn_in=0)",
        "m.hidden_trajectory(10, burn_in=10**12)",
        "m.sample(10**6, burn_in=10**12)",
    ],
)
def test_ctrl_c_stops_long_core_calls_at_once(call: str) -> None:
    proc = _python(f"""
        import numpy as np
        from nemm import Machine
        rng = np.random.default_rng(0)
        m = Machine.from_params(rng.normal(size=(64, 8)), np.zeros(64), rng.normal(size=(8, 64)), np.zeros(8))
        print("ready", flush=True)
        try:
            {call}
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            m.sample(3, burn_in=1)  # the machine still works
            print("usable", flush=True)
    """)
    latency, out, err = _interrupt_after_ready(proc)
    assert proc.returncode == 0, err
    assert out.split() == ["interrupted", "usable"]
    assert latency < 3.0  # measured ~0.01 s; generous for a loaded machine


def test_ctrl_c_during_fit_leaves_a_resumable_machine(tmp_path: Path) -> None:
    X = data(8, N=200, D=64)
    np.save(tmp_path / "X.npy", X)
    kw = dict(
        n_hidden=4, n_epochs=100_000, steps_per_epoch=5, batch_size=(8, 8), chain_steps=20, random_state=3
    )
    proc = _python(f"""
        import numpy as np
        from nemm import Machine
        X = np.load({str(tmp_path / "X.npy")!r})
        m = Machine(**{kw!r})
        print("ready", flush=True)
        try:
            m.fit(X)
        except KeyboardInterrupt:
            assert m.epochs_done_ == len(m.history_["epoch"]) > 0
            m.save({str(tmp_path / "cut.npz")!r})
            print(m.epochs_done_, flush=True)
    """)
    latency, out, err = _interrupt_after_ready(proc, delay=1.5)
    assert proc.returncode == 0, err
    assert latency < 3.0
    done = int(out.split()[-1])
    resumed = load(tmp_path / "cut.npz").partial_fit(X, n_epochs=2)
    reference = Machine(**kw).partial_fit(X, n_epochs=done + 2)
    assert_same_run(resumed, reference)


# ---------------------------------------------------------------- nemm train --checkpoint-every / --resume
def _nemm(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nemm", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _epochs_in(path: Path) -> int:
    try:
        with np.load(path) as f:
            return int(json.loads(str(f["metadata"]))["epochs_done"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return 0


def test_nemm_train_killed_and_resumed_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    X = data(9, N=300, D=64)
    np.save(tmp_path / "X.npy", X)
    opts = [
        "--hidden",
        "4",
        "--epochs",
        "60",
        "--steps-per-epoch",
        "20",
        "--chain-steps",
        "200",
        "--batch-size",
        "8",
        "20",
        "--seed",
        "5",
        "--quiet",
        "--no-ceiling",
    ]
    ref = _nemm("train", str(tmp_path / "X.npy"), *opts, "--out", str(tmp_path / "ref.npz"))
    killed = _nemm(
        "train", str(tmp_path / "X.npy"), *opts, "--checkpoint-every", "2", "--out", str(tmp_path / "run.npz")
    )
    deadline = time.monotonic() + 120
    while _epochs_in(tmp_path / "run.npz") < 2 and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.kill()  # SIGKILL, right after a checkpoint
    killed.communicate()
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    cut = _epochs_in(tmp_path / "run.npz")
    assert 2 <= cut < 60  # killed in the middle of the run
    resume = _nemm("train", "--resume", str(tmp_path / "run.npz"), "--quiet", "--no-ceiling")
    out, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert f"resuming {tmp_path / 'run.npz'} at epoch {cut} of 60" in out
    with np.load(tmp_path / "ref.npz") as a, np.load(tmp_path / "run.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for k in a.files:
            if k not in ("metadata", "history/seconds"):
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        ma, mb = json.loads(str(a["metadata"])), json.loads(str(b["metadata"]))
        assert ma["epochs_done"] == mb["epochs_done"] == 60
        assert ma["train"]["batch_rng"] == mb["train"]["batch_rng"]


def test_nemm_train_resume_refuses_settings_and_changed_data(tmp_path: Path) -> None:
    X = data(10)
    np.save(tmp_path / "X.npy", X)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "nemm",
            "train",
            str(tmp_path / "X.npy"),
            "--hidden",
            "3",
            "--epochs",
            "2",
            "--steps-per-epoch",
            "2",
            "--quiet",
            "--no-ceiling",
            "--out",
            str(tmp_path / "m.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "nemm", "train", "--resume", str(tmp_path / "m.npz"), "--lr", "0.5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "do not give --lr" in r.stderr
    np.save(tmp_path / "X.npy", 1 - X)
    r = subprocess.run(
        [sys.executable, "-m", "nemm", "train", "--resume", str(tmp_path / "m.npz")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "has changed since the run started" in r.stderr


class _InterruptedOnce(list):
    """A history list whose first append raises KeyboardInterrupt, as a Ctrl-C landing mid-booking would."""

    fired = False

    def append(self, value: object) -> None:
        if not _InterruptedOnce.fired:
            _InterruptedOnce.fired = True
            raise KeyboardInterrupt
        super().append(value)


def test_ctrl_c_while_booking_an_epoch_still_books_it_then_raises() -> None:
    X = data(9)
    kw = dict(n_hidden=3, n_epochs=6, steps_per_epoch=3, batch_size=(4, 4), chain_steps=5, random_state=1)
    m = Machine(**kw).partial_fit(X, n_epochs=2)
    m.history_["batch_size"] = _InterruptedOnce(m.history_["batch_size"])
    _InterruptedOnce.fired = False
    with pytest.raises(KeyboardInterrupt):
        m.partial_fit(X, n_epochs=2)
    # The core kept epoch 2: its row is booked in every list, the counter follows, nothing is doubled.
    assert m.epochs_done_ == 3
    assert all(len(v) == 3 for v in m.history_.values()), {k: len(v) for k, v in m.history_.items()}
    m.history_["batch_size"] = list(m.history_["batch_size"])
    m.partial_fit(X, n_epochs=1)
    assert_same_run(m, Machine(**kw).partial_fit(X, n_epochs=4))


# ---------------------------------------------------------------- the RBM's fit behaves like the Machine's
RBM_KINDS = {
    "exact": dict(n_hidden=3, batch_size=8, random_state=2),
    "pcd": dict(
        n_hidden=3, batch_size=8, gradient="pcd", n_chains=6, pcd_steps=2, centered=True, random_state=2
    ),
}


def rbm_state(m: RBM) -> dict[str, np.ndarray]:
    """Everything that decides the future of an RBM's run, as arrays."""
    e = m._engine
    out = {k: getattr(m, k + "_") for k in ("w", "a", "abar", "xbar")}
    out.update({f"opt/{k}": np.asarray(v) for k, v in e.optimizer_state().items()})
    if e.n_chains:
        out.update({f"chain/{k}": v for k, v in e.chain_state().items()})
    out["order_rng"] = np.array(json.dumps(m._rng.bit_generator.state))
    return out


def assert_same_rbm_run(a: RBM, b: RBM) -> None:
    sa, sb = rbm_state(a), rbm_state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
    assert a.epochs_done_ == b.epochs_done_
    assert a.history_["epoch"] == b.history_["epoch"] and a.history_["loglik"] == b.history_["loglik"]


@pytest.mark.parametrize("kind", list(RBM_KINDS))
def test_rbm_divergence_is_caught_at_its_step_and_rolled_back(kind: str) -> None:
    X = data(6)
    kw = RBM_KINDS[kind]
    m = RBM(**kw).partial_fit(X, n_epochs=1)
    before = rbm_state(m)
    m.set_params(learning_rate=1e308)  # the updates overflow
    with pytest.raises(
        FloatingPointError,
        match=r"training diverged at epoch 1, step \d+ \((w|a|abar) became "
        r"non-finite in the update\); the training state is rolled back to "
        r"the start of that epoch; try a smaller learning_rate",
    ):
        m.partial_fit(X, n_epochs=1)
    after = rbm_state(m)  # parameters, optimizer, centering offset, chains and minibatch order
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert m.epochs_done_ == 1 and all(len(v) == 1 for v in m.history_.values())
    m.set_params(learning_rate=RBM().learning_rate)
    m.partial_fit(X, n_epochs=2)  # and it trains on exactly as if the failed call never happened
    assert_same_rbm_run(m, RBM(**kw).partial_fit(X, n_epochs=3))


def test_rbm_nan_gradient_is_never_applied() -> None:
    m = RBM(**RBM_KINDS["exact"]).partial_fit(data(), n_epochs=1)
    e = m._engine
    w = e.w.copy()
    w[0, 0] = np.nan
    e.set_params(w, e.a, e.abar, e.xbar)
    before = e.optimizer_state()
    with pytest.raises(
        FloatingPointError, match=r"training diverged at step 0 of this call \(the gradient of w "
    ):
        e.train_steps(np.arange(4), np.array([4]), "exact", 1, False, 0.01)
    after = e.optimizer_state()
    assert after["t"] == before["t"]
    for k in ("mw", "vw", "ma", "va", "mh", "vh", "lambda"):
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


@pytest.mark.parametrize("gradient", ["exact", "pcd"])
def test_ctrl_c_stops_a_long_rbm_training_call_at_once_and_rolls_it_back(gradient: str) -> None:
    # Minutes of steps in one core call: Ctrl-C must stop it between two steps and leave the
    # engine exactly as before the call (parameters, optimizer, centering offset, chains).
    proc = _python(f"""
        import numpy as np
        from nemm import _core
        rng = np.random.default_rng(0)
        X = (rng.random((200, 64)) < 0.3).astype(np.uint8)
        e = _core.RBMEngine(64, 8, "onehot")
        e.set_params(0.1 * rng.normal(size=(64, 8)), np.zeros(64), np.zeros(8), X.mean(axis=0))
        e.set_data(X)
        e.set_optimizer("adam", 0.01, 0.9, 0.999, 0.9, 1e-8)
        e.reset_chains(10, 1, None)
        e.train_steps(np.arange(8), np.array([8]), {gradient!r}, 3, True, 0.01)  # a centering offset
        def state():
            d = {{k: np.asarray(v).copy() for k, v in e.optimizer_state().items()}}
            d.update({{"chain/" + k: v for k, v in e.chain_state().items()}})
            d.update(w=e.w, a=e.a, abar=e.abar)
            return d
        before = state()
        rows = np.tile(np.arange(200), 20_000)  # a million steps
        print("ready", flush=True)
        try:
            e.train_steps(rows, np.full(rows.size // 4, 4), {gradient!r}, 3, True, 0.01)
        except KeyboardInterrupt:
            after = state()
            assert all(np.array_equal(before[k], after[k]) for k in before), [
                k for k in before if not np.array_equal(before[k], after[k])]
            print("rolled back", flush=True)
    """)
    latency, out, err = _interrupt_after_ready(proc)
    assert proc.returncode == 0, err
    assert out.split() == ["rolled", "back"]
    assert latency < 3.0  # a call without signal checks would run for minutes


@pytest.mark.parametrize("kind", list(RBM_KINDS))
def test_ctrl_c_during_rbm_fit_leaves_a_resumable_rbm(kind: str, tmp_path: Path) -> None:
    X = data(8, N=400, D=64)
    np.save(tmp_path / "X.npy", X)
    kw = dict(RBM_KINDS[kind], n_hidden=8, n_epochs=100_000, batch_size=4)
    proc = _python(f"""
        import numpy as np
        from nemm import RBM
        X = np.load({str(tmp_path / "X.npy")!r})
        m = RBM(**{kw!r})
        try:  # "ready" once an epoch is booked, however slow a loaded machine is
            m.fit(X, callback=lambda m, e: e == 0 and print("ready", flush=True))
        except KeyboardInterrupt:
            assert m.epochs_done_ == len(m.history_["epoch"]) == len(m.history_["loglik"]) > 0
            m.save({str(tmp_path / "cut.npz")!r})
            print(m.epochs_done_, flush=True)
    """)
    latency, out, err = _interrupt_after_ready(proc, delay=0.5)
    assert proc.returncode == 0, err
    assert latency < 3.0
    done = int(out.split()[-1])
    resumed = load(tmp_path / "cut.npz").partial_fit(X, n_epochs=2)
    assert_same_rbm_run(resumed, RBM(**kw).partial_fit(X, n_epochs=done + 2))


def test_ctrl_c_while_booking_an_rbm_epoch_still_books_it_then_raises() -> None:
    X = data(9)
    kw = RBM_KINDS["pcd"]
    m = RBM(**kw).partial_fit(X, n_epochs=2)
    m.history_["loglik"] = _InterruptedOnce(m.history_["loglik"])
    _InterruptedOnce.fired = False
    with pytest.raises(KeyboardInterrupt):
        m.partial_fit(X, n_epochs=2)
    assert m.epochs_done_ == 3
    assert all(len(v) == 3 for v in m.history_.values()), {k: len(v) for k, v in m.history_.items()}
    m.history_["loglik"] = list(m.history_["loglik"])
    m.partial_fit(X, n_epochs=1)
    assert_same_rbm_run(m, RBM(**kw).partial_fit(X, n_epochs=4))
