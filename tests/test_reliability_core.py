"""Reliability of the core (issue 20): fork, memory limits, the process-wide thread count, and
training whose parameters outgrow what ln Z can resolve.

Each test runs what once hung or aborted the interpreter in a subprocess with a timeout, so that
a regression fails the test instead of the test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import nemm
from nemm import RBM, Machine, _core


def _run(code: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,  # type: ignore[arg-type]
    )


def data(n: int = 200, D: int = 64, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, D)) < 0.3).astype(np.uint8)


# ---------------------------------------------------------------- fork
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_samples_after_its_parent_did() -> None:
    # The parent's sampling starts libgomp's thread pool; a child made by fork used to wait for
    # the pool's threads, which do not exist in it, for good. Now it runs on one thread, with
    # the bits a one-thread run gives.
    out = _run(
        """
        import os, numpy as np, nemm
        from nemm import _core
        X = (np.random.default_rng(0).random((200, 64)) < 0.3).astype(np.uint8)
        m = nemm.Machine(16, n_epochs=1, random_state=0).fit(X)
        nemm.set_num_threads(2)
        parent = m.sample(500, n_chains=4, seed=1)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            import signal
            signal.alarm(30)  # a child that hangs all the same must not outlive the test
            s = m.sample(500, n_chains=4, seed=1)
            m.partial_fit(X)  # training too
            os.write(w, bytes([int(np.array_equal(s, parent)), _core.max_threads()]))
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        same, threads = os.read(r, 2)
        print(os.waitstatus_to_exitcode(status), same, threads)
        """,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1", "1"]  # exit 0, the same samples, on one thread


# ---------------------------------------------------------------- threads
@pytest.mark.skipif(not nemm.openmp_enabled(), reason="the core was built without OpenMP")
def test_set_num_threads_applies_to_every_thread_of_the_process() -> None:
    saved = _core.max_threads()
    seen: list[int] = []
    try:
        nemm.set_num_threads(1)
        t = threading.Thread(target=lambda: seen.append(_core.max_threads()))
        t.start()
        t.join()
        nemm.set_num_threads(3)
        t = threading.Thread(target=lambda: seen.append(_core.max_threads()))
        t.start()
        t.join()
    finally:
        nemm.set_num_threads(saved)
    assert seen == [1, 3]


def test_bits_do_not_depend_on_the_thread_that_set_the_count() -> None:
    X = data()
    saved = _core.max_threads()
    results: list[np.ndarray] = []

    def train() -> None:
        results.append(Machine(8, n_epochs=2, random_state=0).fit(X).w_)

    try:
        nemm.set_num_threads(1)
        train()
        setter = threading.Thread(target=nemm.set_num_threads, args=(2,))
        setter.start()
        setter.join()
        t = threading.Thread(target=train)
        t.start()
        t.join()
    finally:
        nemm.set_num_threads(saved)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("bad", [1.9, "2", True, None, 2.0])
def test_set_num_threads_refuses_what_is_not_a_count(bad: object) -> None:
    saved = _core.max_threads()
    with pytest.raises(TypeError, match=r"^n must be an integer"):
        nemm.set_num_threads(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^n must be at least 1, got 0"):
        nemm.set_num_threads(0)
    assert _core.max_threads() == saved


# ---------------------------------------------------------------- memory
def _limited(limit_bytes: int):  # noqa: ANN202 - a preexec_fn
    def set_limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    return set_limit


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics of Linux")
@pytest.mark.parametrize("where", ["check", "core"])
def test_out_of_memory_is_a_memory_error_never_an_abort(where: str) -> None:
    # Under `ulimit -v`: the memory check sees the limit ("check"); with the check switched off,
    # the core's own std::bad_alloc, thrown inside OpenMP regions, comes back as MemoryError
    # ("core") instead of std::terminate (exit 134).
    out = _run(
        f"""
        import numpy as np, nemm
        import nemm._checks as checks
        if {where!r} == "core":
            checks.memory_limit = lambda: None
        nemm.set_num_threads(2)
        X = (np.random.default_rng(0).random((300, 784)) < 0.3).astype(np.uint8)
        try:
            nemm.Machine(3000, n_epochs=2, random_state=0).fit(X)
        except MemoryError as e:
            print("MemoryError", e)
        """,
        timeout=300,
        preexec_fn=_limited(450_000 * 1024),
    )
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert out.stdout.startswith("MemoryError"), out.stdout
    assert "terminate" not in out.stderr
    if where == "core":
        assert "out of memory in nemm's C++ core" in out.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS semantics of Linux")
def test_the_memory_check_sees_the_address_space_limit() -> None:
    out = _run(
        """
        import nemm._checks as checks
        print(checks.memory_limit())
        """,
        preexec_fn=_limited(600 << 20),
    )
    assert out.returncode == 0, out.stderr
    assert 0 < int(out.stdout) < 600 << 20  # the limit less what the interpreter has mapped


def test_a_huge_rbm_is_refused_before_it_allocates(monkeypatch: pytest.MonkeyPatch) -> None:
    import nemm._checks as checks

    monkeypatch.setattr(checks, "memory_limit", lambda: 16 << 30)
    with pytest.raises(MemoryError, match=r"training RBM\(n_hidden=1000000.*16\.0 GiB.*n_hidden"):
        RBM(1_000_000).fit(data(20, 784))


def test_memory_advice_names_the_setting_that_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import nemm._checks as checks

    monkeypatch.setattr(checks, "memory_limit", lambda: 16 << 30)
    X = data(50, 32)
    with pytest.raises(MemoryError, match=r"use a smaller batch_size$"):
        Machine(3, batch_size=(10**9, 10**9)).fit(X)
    with pytest.raises(MemoryError, match=r"use a smaller steps_per_epoch or batch_size$"):
        Machine(3, steps_per_epoch=2**62).fit(X)
    with pytest.raises(MemoryError, match=r"use a smaller n_hidden$"):
        Machine(10**7).fit(X)


# ---------------------------------------------------------------- parameters beyond ln Z's resolution
def test_rbm_training_that_drives_parameters_beyond_ln_z_stops_and_rolls_back() -> None:
    X = data(100, 8)
    m = RBM(4, hidden="binary", n_epochs=1, random_state=0).fit(X)
    w = m.w_
    m.set_params(learning_rate=1e20)
    with pytest.raises(FloatingPointError, match=r"outgrew what ln Z can resolve.*rolled back"):
        m.partial_fit(X, n_epochs=3)
    np.testing.assert_array_equal(m.w_, w)  # the good model is kept
    every_x = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(np.uint8)
    p = np.exp(m.score_samples(every_x))
    assert (p <= 1).all() and abs(p.sum() - 1) < 1e-9  # a distribution over the 2^8 images


def test_machine_training_at_an_absurd_learning_rate_stops() -> None:
    X = data(100, 8)
    m = Machine(3, n_epochs=1, random_state=0).fit(X)
    w = m.w_
    m.set_params(learning_rate=1e300)
    with pytest.raises(FloatingPointError, match=r"outgrew what ln Z can resolve"):
        m.partial_fit(X)
    np.testing.assert_array_equal(m.w_, w)


@pytest.mark.parametrize("scale", [1e20, 1e200])
def test_scores_of_parameters_beyond_ln_z_are_refused(scale: float) -> None:
    rng = np.random.default_rng(0)
    m = RBM.from_params(
        scale * rng.normal(size=(8, 4)), np.zeros(8), np.zeros(4), hidden="binary", n_hidden=4
    )
    with pytest.raises(FloatingPointError, match="outgrew what ln Z can resolve"):
        m.score_samples(data(10, 8))
    with pytest.raises(FloatingPointError, match="outgrew what ln Z can resolve"):
        m.log_partition()


# ---------------------------------------------------------------- Ctrl-C in the RBM's ln Z
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_an_exact_rbm_fit_at_the_largest_exact_layer() -> None:
    # 2^16 hidden states enumerated at every step (the largest exact gradient): Ctrl-C between
    # two steps, and the RBM is left at the end of its last complete epoch.
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
            import numpy as np
            from nemm import RBM
            X = (np.random.default_rng(0).random((64, 300)) < 0.3).astype(np.uint8)
            m = RBM(16, hidden="binary", gradient="exact", n_epochs=10**6, batch_size=8, random_state=0)
            print("ready", flush=True)
            try:
                m.fit(X)
            except KeyboardInterrupt:
                assert m.epochs_done_ == len(m.history_["epoch"])
                print("stopped", flush=True)
            """),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.5)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    latency = time.perf_counter() - t0
    assert proc.returncode == 0, err
    assert out.split() == ["stopped"]
    assert latency < 3.0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("call", ["log_partition()", "score_samples(X)"])
def test_ctrl_c_stops_the_rbm_enumeration_within_a_second(call: str) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import numpy as np
            from nemm import RBM
            rng = np.random.default_rng(0)
            X = (rng.random((4, 200)) < 0.3).astype(np.uint8)
            m = RBM.from_params(0.01 * rng.normal(size=(200, 23)), np.zeros(200), np.zeros(23),
                                hidden="binary", n_hidden=23)
            print("ready", flush=True)
            try:
                for _ in range(100):
                    m.{call}
            except KeyboardInterrupt:
                print("stopped", flush=True)
            """),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # inside the enumeration of 2^23 states (seconds)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    latency = time.perf_counter() - t0
    assert proc.returncode == 0, err
    assert out.split() == ["stopped"]
    assert latency < 3.0
