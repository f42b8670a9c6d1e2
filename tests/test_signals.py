"""Signals and processes: SIGTERM/SIGINT/SIGKILL of sweeps and training, lost workers, locks, Dask addresses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nemm import _backends, sweep
from nemm.cli import main
from nemm.config import parse_config

pytestmark = pytest.mark.slow

# Two runs of a moment, then two of several seconds (5000 epochs), so that a signal lands mid-sweep.
SLOW = """\
[model]
n_hidden = 2

[train]
recipe = "paper"
n_epochs = [2, 5000]
steps_per_epoch = 30
batch_size = [8, 16]
chain_steps = 8

[sweep]
seeds = 2

[data]
per_class = 20

[diagnostics]
diagnostic_steps = 2000
"""
SHORT = SLOW.replace("n_epochs = [2, 5000]", "n_epochs = [2, 3]")
N_RUNS = 4


def _children(pid: int) -> list[int]:
    """Every descendant process id of ``pid`` (psutil if present, else /proc)."""
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except ImportError:  # pragma: no cover - psutil comes with dask[distributed]
        kids: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(d.name))
        out, todo = [], [pid]
        while todo:
            for k in kids.get(todo.pop(), []):
                out.append(k)
                todo.append(k)
        return out


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _start_sweep(cfg: Path, out: Path, workers: int = 2) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nemm",
            "sweep",
            str(cfg),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--quiet",
        ],
        start_new_session=True,  # a signal to the test's process group never reaches it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def slow_cfg(tmp_path: Path) -> Path:
    p = tmp_path / "slow.toml"
    p.write_text(SLOW)
    return p


@pytest.fixture
def killer() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started: killed with their whole session if the test fails midway."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_to_the_sweep_driver_stops_everything_and_keeps_the_finished_runs(
    sig: signal.Signals, slow_cfg: Path, tmp_path: Path, killer: list[subprocess.Popen[str]]
) -> None:
    out = tmp_path / "out"
    proc = _start_sweep(slow_cfg, out)
    killer.append(proc)
    assert _wait_for(lambda: list(out.glob("runs/*/result.json")), 240), "no run finished"
    workers = _children(proc.pid)
    assert workers  # the pool's processes (and multiprocessing's resource tracker)
    proc.send_signal(sig)  # to the driver alone, as a batch scheduler or `kill` sends it
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=60)
    latency = time.monotonic() - t0
    assert proc.returncode == 128 + int(sig)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nemm: error: "), err
    assert ("interrupted" if sig == signal.SIGINT else f"terminated by {sig.name}") in lines[0]
    assert latency < 10, latency  # about a second on an idle machine; the workers are not waited for
    assert _wait_gone(workers, 5) == []
    finished = {p.parent.name for p in out.glob("runs/*/result.json")}
    table = (out / "results.csv").read_text().splitlines()
    assert 1 <= len(finished) < N_RUNS and len(table) == 1 + len(finished)
    assert {row.rsplit(",", 1)[1] for row in table[1:]} == finished
    assert f"{len(finished)} of {N_RUNS} runs finished" in lines[0]


def test_sigkill_to_the_sweep_driver_ends_its_workers(
    slow_cfg: Path, tmp_path: Path, killer: list[subprocess.Popen[str]]
) -> None:
    out = tmp_path / "out"
    proc = _start_sweep(slow_cfg, out)
    killer.append(proc)
    # Both workers started (each has loaded the core) and the resource tracker.
    assert _wait_for(lambda: len(_children(proc.pid)) >= 3, 120), _children(proc.pid)
    time.sleep(1.0)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _wait_gone(workers, 5) == []


def _die_once(spec: Any, X: np.ndarray, y: Any) -> dict[str, Any]:
    """A run whose first try is killed as by the OOM killer (a marker file remembers the try)."""
    marker = Path(spec.settings["marker"])
    if spec.settings.get("die") and not marker.exists():
        marker.write_text("tried")
        os.kill(os.getpid(), signal.SIGKILL)
    return {"result": {"index": spec.index, "pid": os.getpid()}, "model": None}


def _always_die(spec: Any, X: np.ndarray, y: Any) -> dict[str, Any]:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def _specs(tmp_path: Path, die: list[bool]) -> list[sweep.RunSpec]:
    return [
        sweep.RunSpec(
            index=i,
            settings={"die": d, "marker": str(tmp_path / f"tried-{i}")},
            swept={},
            seed=0,
            diagnostics={},
            baselines={},
            data_checksum="",
            run_id=f"run{i}",
        )
        for i, d in enumerate(die)
    ]


def test_a_killed_worker_is_replaced_and_its_run_retried(tmp_path: Path) -> None:
    got: dict[str, Any] = {}
    specs = _specs(tmp_path, [False, True, False, False])
    _backends.run_local(
        specs, np.zeros((2, 2), np.uint8), None, 2, lambda s, r: got.setdefault(s.run_id, r), _die_once
    )
    assert sorted(got) == ["run0", "run1", "run2", "run3"]
    assert all(isinstance(r, dict) for r in got.values()), got  # none lost: the pool was restarted
    assert (tmp_path / "tried-1").exists()


def test_a_run_that_kills_its_worker_twice_is_reported_lost(tmp_path: Path) -> None:
    from concurrent.futures.process import BrokenProcessPool

    got: dict[str, Any] = {}
    t0 = time.monotonic()
    _backends.run_local(
        _specs(tmp_path, [True]),
        np.zeros((2, 2), np.uint8),
        None,
        1,
        lambda s, r: got.setdefault(s.run_id, r),
        _always_die,
    )
    assert isinstance(got["run0"], BrokenProcessPool) and time.monotonic() - t0 < 120


def test_two_sweeps_on_one_directory_never_run_a_run_twice(
    tmp_path: Path, killer: list[subprocess.Popen[str]]
) -> None:
    cfg = tmp_path / "short.toml"
    cfg.write_text(SHORT)
    out = tmp_path / "out"
    procs = [_start_sweep(cfg, out, workers=1) for _ in range(2)]
    killer.extend(procs)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    # "4 runs (k already done, m run now) ...": every run computed once, by one of the two.
    run_now = [int(o.split(", ")[1].split(" run now")[0]) for o in outs]
    assert sum(run_now) == N_RUNS, outs
    assert len(list(out.glob("runs/*/result.json"))) == N_RUNS


def test_a_sweep_waits_for_the_lock_of_its_directory(
    tmp_path: Path, killer: list[subprocess.Popen[str]]
) -> None:
    import fcntl

    cfg = tmp_path / "short.toml"
    cfg.write_text(SHORT)
    out = tmp_path / "out"
    out.mkdir()
    with open(out / sweep.LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another sweep is running here
        proc = _start_sweep(cfg, out, workers=1)
        killer.append(proc)
        time.sleep(3.0)
        assert proc.poll() is None and not list(out.glob("runs/*"))
    out_text, err = proc.communicate(timeout=300)  # the lock is released: it runs
    assert proc.returncode == 0 and f"{N_RUNS} run now" in out_text, err


def test_sigterm_to_nemm_train_leaves_a_resumable_checkpoint(
    tmp_path: Path, killer: list[subprocess.Popen[str]]
) -> None:
    data = tmp_path / "d.npy"
    np.save(data, (np.random.default_rng(0).random((60, 16)) < 0.5).astype(np.uint8))
    out = tmp_path / "m.npz"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nemm",
            "train",
            str(data),
            "--hidden",
            "3",
            "--epochs",
            "100000",
            "--steps-per-epoch",
            "5",
            "--checkpoint-every",
            "100000",
            "--out",
            str(out),
            "--quiet",
            "--no-ceiling",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().startswith("data:")
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + int(signal.SIGTERM), err
    assert len(err.strip().splitlines()) == 1 and "--resume" in err and "terminated by SIGTERM" in err
    import nemm

    m = nemm.load(out)
    assert 0 < m.epochs_done_ < 100000 and hasattr(m, "_batches")


# --------------------------------------------------------------------------- Dask addresses


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts and says nothing (a web server waiting for a request)."""
    srv = socket.create_server(("127.0.0.1", 0))
    conns: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"tcp://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in conns:
        c.close()
    srv.close()


@pytest.fixture
def http_proxy() -> Iterator[str]:
    """A TCP server that answers every connection with an HTTP error at once (a proxy)."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c = srv.accept()[0]
            except OSError:
                continue
            with c:
                c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    srv.close()


def _sweep_cli(tmp_path: Path, scheduler: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nn_epochs = 1\n")
    t0 = time.monotonic()
    rc = main(["sweep", str(cfg), "--out", str(tmp_path / "o"), "--scheduler", scheduler, "--quiet"])
    return rc, capsys.readouterr().err, time.monotonic() - t0


@pytest.mark.parametrize(
    "address", ["notaurl", "tcp://[::1", "http://127.0.0.1:1", "tcp://127.0.0.1:notaport"]
)
def test_a_malformed_scheduler_address_is_one_line(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("distributed")
    rc, err, seconds = _sweep_cli(tmp_path, address, capsys)
    assert rc == 2 and err.startswith("nemm: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Dask scheduler address" in err and seconds < 5


@pytest.mark.parametrize("server", ["silent_server", "http_proxy"])
def test_a_peer_that_is_no_dask_scheduler_is_named_within_seconds(
    server: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr(_backends, "SCHEDULER_TIMEOUT", 1.0)
    rc, err, seconds = _sweep_cli(tmp_path, request.getfixturevalue(server), capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not a Dask scheduler" in err, err
    assert seconds < 10


def test_nothing_listening_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    rc, err, seconds = _sweep_cli(tmp_path, f"tcp://127.0.0.1:{port}", capsys)
    assert rc == 2 and "cannot reach the Dask scheduler" in err and seconds < 10, err


def test_a_cluster_without_workers_fails_after_the_stated_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(_backends, "WORKER_WAIT_SECONDS", 1.0)
    cfg = parse_config("[train]\nn_epochs = 1\nsteps_per_epoch = 2\n[data]\nper_class = 5\n")
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", dashboard_address=":0") as c:
        _backends.check_scheduler_address(c.scheduler_address)  # a real scheduler passes the check
        with pytest.raises(RuntimeError, match="has no worker, and none joined within 1 s"):
            sweep.run_sweep(cfg, tmp_path / "o", scheduler=c.scheduler_address, progress=False)


def test_the_parent_watch_ends_an_orphan_without_the_kernel_signal(tmp_path: Path) -> None:
    """The fallback of systems without PR_SET_PDEATHSIG: a worker whose parent is gone exits by itself."""
    grandchild = (
        "import os, threading, time\n"
        "from nemm._pool import _watch_parent\n"
        "threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = (
        "import subprocess, sys, os\n"
        f"p = subprocess.Popen([sys.executable, '-c', {grandchild!r}], stdout=subprocess.PIPE, text=True)\n"
        "assert p.stdout.readline().strip() == 'ready'\n"
        "print(p.pid, flush=True)\n"
        "os._exit(0)  # dies without waiting for its child, as a SIGKILLed driver would\n"
    )
    out = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=60)
    orphan = int(out.stdout.strip())
    assert _wait_gone([orphan], 5) == []


def test_sigterm_to_nemm_reproduce_keeps_the_finished_runs(
    tmp_path: Path, killer: list[subprocess.Popen[str]]
) -> None:
    out = tmp_path / "rep"
    argv = ["reproduce", "--seeds", "2", "--epochs", "5000", "--em-restarts", "1", "--rbm-seeds", "0"]
    argv += ["--tied-seeds", "0", "--diag-steps", "40", "--track-steps", "4", "--mixing-steps", "50"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemm", *argv, "--jobs", "2", "--no-figures", "--quiet", "--out", str(out)],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killer.append(proc)
    # The EM mixture finishes first (it is submitted first); the two 5000-epoch machines run on.
    assert _wait_for(lambda: list(out.glob("runs/*/result.json")), 240), "no run finished"
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + int(signal.SIGTERM), err
    assert (
        len(err.strip().splitlines()) == 1 and "terminated by SIGTERM" in err and "of 3 runs finished" in err
    )
    assert _wait_gone(workers, 5) == []
    assert (out / "results.csv").exists()


def test_a_dask_cluster_that_loses_every_worker_reruns_the_lost_runs(tmp_path: Path) -> None:
    """All workers killed mid-sweep (their scattered data go with them): the runs wait for new workers."""
    distributed = pytest.importorskip("distributed")
    cfg = parse_config(SLOW.replace("n_epochs = [2, 5000]", "n_epochs = [2, 1500]"), base_dir=tmp_path)
    out = tmp_path / "out"
    done_at_kill: list[int] = []
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:

        def kill_every_worker() -> None:
            _wait_for(lambda: list(out.glob("runs/*/result.json")), 240)
            done_at_kill.append(len(list(out.glob("runs/*/result.json"))))
            for w in list(cluster.workers.values()):
                os.kill(w.process.pid, signal.SIGKILL)  # the nanny starts a new worker

        t = threading.Thread(target=kill_every_worker, daemon=True)
        t.start()
        res = sweep.run_sweep(cfg, out, scheduler=cluster.scheduler_address, progress=False)
        t.join()
    assert done_at_kill and done_at_kill[0] < N_RUNS  # the workers died mid-sweep
    assert res.n_errors == 0, [r["error"] for r in res.rows]
