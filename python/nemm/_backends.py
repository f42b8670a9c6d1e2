"""Where the runs of a sweep execute: local worker processes, or a running Dask scheduler.

Both backends take the run specs, the data and a ``run(spec, X, y) -> dict`` function
(:func:`nemm.sweep.run_one`), and report every finished run, or the exception of a
lost one, through ``on_done(spec, result_or_exception)`` as it finishes. The data
travel to every worker once; only the driver writes files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, cast

import numpy as np

from nemm._pool import WorkerPool, process_pool

__all__ = [
    "LOST_RUN_RETRIES",
    "SCHEDULER_TIMEOUT",
    "WORKER_WAIT_SECONDS",
    "check_scheduler_address",
    "run_dask",
    "run_local",
    "worker_pool",
]

OnDone = Callable[[Any, "dict[str, Any] | BaseException"], None]

# Data of a local worker process, set once by the pool initializer (not pickled per task).
_WORKER_DATA: tuple[np.ndarray, np.ndarray | None] | None = None


def _init_worker(X: np.ndarray, y: np.ndarray | None) -> None:
    global _WORKER_DATA
    _WORKER_DATA = (X, y)


def _run_in_worker(run: Callable[..., dict[str, Any]], spec: Any) -> dict[str, Any]:
    assert _WORKER_DATA is not None, "worker data not initialized"
    return run(spec, *_WORKER_DATA)


@contextlib.contextmanager
def worker_pool(n_workers: int, X: np.ndarray, y: np.ndarray | None) -> Iterator[WorkerPool]:
    """The package's worker pool (:func:`nemm._pool.process_pool`) holding ``(X, y)`` in every worker.

    Pass it to :func:`run_local` (``executor=``) to run several sweeps, or a sweep and
    other work (figures), on the same warm workers.
    """
    with process_pool(int(n_workers), _init_worker, (X, y)) as ex:
        yield ex


#: Times a run whose worker process died (killed by the OOM killer, say) is run again on new workers.
LOST_RUN_RETRIES = 1


def run_local(
    specs: Sequence[Any],
    X: np.ndarray,
    y: np.ndarray | None,
    workers: int,
    on_done: OnDone,
    run: Callable[..., dict[str, Any]],
    executor: Executor | None = None,
) -> None:
    """Local processes, one run each at a time (``workers = 0``: in this process, for debugging).

    ``executor``: a :func:`worker_pool` holding the same ``(X, y)``, used instead of a new pool.
    A worker that dies breaks the whole pool: the pool is restarted and the runs it lost are
    run again, each at most :data:`LOST_RUN_RETRIES` times (an executor that is not a
    :class:`~nemm._pool.WorkerPool` cannot be restarted: its lost runs are reported as lost).
    """
    if executor is None and workers == 0:
        for s in specs:
            on_done(s, run(s, X, y))
        return
    with contextlib.ExitStack() as stack:
        ex = (
            executor
            if executor is not None
            else stack.enter_context(worker_pool(min(workers, len(specs)), X, y))
        )
        todo, losses = list(specs), dict.fromkeys((s.run_id for s in specs), 0)
        while todo:
            retry = []
            for s, exc in _collect(ex, todo, on_done, run):
                losses[s.run_id] += 1
                if losses[s.run_id] > LOST_RUN_RETRIES or not isinstance(ex, WorkerPool):
                    on_done(s, exc)
                else:
                    retry.append(s)
            if retry:
                cast(WorkerPool, ex).restart()
            todo = retry


def _collect(
    ex: Executor, specs: Sequence[Any], on_done: OnDone, run: Callable[..., dict[str, Any]]
) -> list[tuple[Any, BaseException]]:
    """Run ``specs`` on ``ex``, reporting each as it finishes; returns the runs lost with a broken pool.

    On an interruption (Ctrl-C, SIGTERM) the runs that finished meanwhile are reported
    before it propagates; the pool's owner (:func:`~nemm._pool.process_pool`) stops the others.
    """
    futures: dict[Future[dict[str, Any]], Any] = {ex.submit(_run_in_worker, run, s): s for s in specs}
    reported: set[Future[dict[str, Any]]] = set()
    lost: list[tuple[Any, BaseException]] = []

    def report(f: Future[dict[str, Any]]) -> None:
        reported.add(f)
        exc = f.exception()
        if isinstance(exc, BrokenProcessPool):
            lost.append((futures[f], exc))
        else:
            on_done(futures[f], exc if exc is not None else f.result())

    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: futures[f].index):
                report(f)
    except BaseException:
        if not isinstance(ex, WorkerPool):  # a WorkerPool's own thread cancels, as it stops (terminate)
            for f in futures:
                f.cancel()
        finished = [f for f in futures if f not in reported and f.done() and not f.cancelled()]
        for f in sorted(finished, key=lambda f: futures[f].index):
            if f.exception() is None:
                report(f)
        raise
    return lost


#: Seconds to connect to a Dask scheduler and to receive its greeting (a peer that sends none is no scheduler).
SCHEDULER_TIMEOUT = 10.0
#: Seconds a sweep waits for a Dask worker when the cluster has none (at the start, or after losing them all).
WORKER_WAIT_SECONDS = 60.0
# The schemes of distributed's addresses; tcp ones are checked byte-wise before connecting.
_DASK_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
# A Dask TCP message starts with its length (8 bytes, little-endian); the greeting is a few hundred bytes.
_GREETING_MAX = 1 << 20


def check_scheduler_address(address: str, timeout: float | None = None) -> None:
    """Refuse, within ``timeout`` seconds (:data:`SCHEDULER_TIMEOUT`), an address that is not a Dask scheduler.

    A ``tcp://HOST:PORT`` address (or ``HOST:PORT``) is connected to, and the peer must
    greet as a Dask scheduler does: a scheduler speaks first, with a short message whose
    first 8 bytes are its length. A web server, a dashboard port or a proxy sends nothing
    or text, and is named as such instead of hanging for minutes.

    Raises
    ------
    ValueError
        The address is malformed.
    RuntimeError
        Nothing answers there, or what answers is not a Dask scheduler.
    """
    text = str(address).strip()
    scheme, _, rest = text.rpartition("://") if "://" in text else ("tcp", "", text)
    if scheme not in _DASK_SCHEMES:
        raise ValueError(
            f"--scheduler {address!r}: not a Dask scheduler address; expected tcp://HOST:PORT "
            f"(schemes: {', '.join(_DASK_SCHEMES)})"
        )
    if scheme != "tcp":
        return
    timeout = SCHEDULER_TIMEOUT if timeout is None else timeout
    try:
        parts = urllib.parse.urlsplit(f"tcp://{rest}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"--scheduler {address!r}: not a Dask scheduler address ({exc})") from exc
    if not host or port is None:
        raise ValueError(f"--scheduler {address!r}: not a Dask scheduler address; expected tcp://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            head = b""
            while len(head) < 8:
                chunk = sock.recv(8 - len(head))
                if not chunk:
                    break
                head += chunk
    except TimeoutError as exc:
        raise RuntimeError(
            f"--scheduler {address}: not a Dask scheduler (no greeting within {timeout:g} s; "
            "a web server, the dashboard port or a proxy?)"
        ) from exc
    except OSError as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}") from exc
    if len(head) < 8 or not 0 < int.from_bytes(head, "little") <= _GREETING_MAX:
        raise RuntimeError(f"--scheduler {address}: not a Dask scheduler (it answered {head!r})")


def run_dask(
    specs: Sequence[Any],
    X: np.ndarray,
    y: np.ndarray | None,
    scheduler: Any,
    on_done: OnDone,
    run: Callable[..., dict[str, Any]],
) -> None:
    """A running ``distributed`` scheduler (an address, or a Client/cluster object).

    A cluster without workers is waited for :data:`WORKER_WAIT_SECONDS`; runs lost with
    every worker (their data go with them) are run again once on the workers that join.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise ImportError('--scheduler needs Dask: pip install "nemm[dask]"') from exc
    own = not isinstance(scheduler, Client)
    address = getattr(scheduler, "scheduler_address", scheduler)
    if own and isinstance(address, str):
        check_scheduler_address(address)
    try:
        client = Client(address, set_as_default=False, timeout=SCHEDULER_TIMEOUT) if own else scheduler
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    try:
        losses: dict[str, int] = {}
        todo = list(specs)
        while todo:
            _wait_for_workers(client, address)
            retry = []
            for s, lost in _dask_round(client, todo, X, y, on_done, run):
                losses[s.run_id] = losses.get(s.run_id, 0) + 1
                if losses[s.run_id] > LOST_RUN_RETRIES:
                    on_done(s, lost)
                else:
                    retry.append(s)
            todo = retry
    finally:
        if own:
            client.close()


def _wait_for_workers(client: Any, address: Any) -> None:
    """Return once the cluster has a worker; fail after :data:`WORKER_WAIT_SECONDS` without one."""
    if client.scheduler_info().get("workers"):
        return
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise RuntimeError(
            f"the Dask cluster at {address} has no worker, and none joined within "
            f"{WORKER_WAIT_SECONDS:g} s; start workers and run the sweep again (finished runs are kept)"
        ) from exc


def _dask_round(
    client: Any,
    specs: Sequence[Any],
    X: np.ndarray,
    y: np.ndarray | None,
    on_done: OnDone,
    run: Callable[..., dict[str, Any]],
) -> list[tuple[Any, BaseException]]:
    """Run ``specs`` on the cluster, reporting each as it finishes; returns the runs lost with their workers."""
    from distributed import as_completed

    # The data travel once to every worker; tasks refer to them (scattered again after losing every worker).
    Xf = client.scatter(X, broadcast=True, hash=False)
    yf = client.scatter(y, broadcast=True, hash=False) if y is not None else None
    futures = {
        client.submit(
            run, s, Xf, yf, pure=False, key=f"nemm-run-{s.run_id}-{os.getpid()}-{time.time_ns()}"
        ): s
        for s in specs
    }
    lost: list[tuple[Any, BaseException]] = []
    try:
        for f in as_completed(list(futures), loop=client.loop):
            try:
                out = f.result()
            except Exception as exc:  # a lost worker (run never raises for a failing run)
                lost.append((futures[f], exc))
                continue
            on_done(futures[f], out)
    except BaseException:
        with contextlib.suppress(Exception):  # an interruption: leave nothing running on the cluster
            client.cancel(list(futures))
        raise
    return lost
