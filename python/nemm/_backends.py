"""Where the runs of a sweep execute: local worker processes, or a running Dask scheduler.

Both backends take the run specs, the data and a ``run(spec, X, y) -> dict`` function
(:func:`nemm.sweep.run_one`), and report every finished run, or the exception of a
lost one, through ``on_done(spec, result_or_exception)`` as it finishes. The data
travel to every worker once; only the driver writes files.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from typing import Any

import numpy as np

from nemm._pool import process_pool

__all__ = ["run_dask", "run_local", "worker_pool"]

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
def worker_pool(n_workers: int, X: np.ndarray, y: np.ndarray | None) -> Iterator[Executor]:
    """The package's worker pool (:func:`nemm._pool.process_pool`) holding ``(X, y)`` in every worker.

    Pass it to :func:`run_local` (``executor=``) to run several sweeps, or a sweep and
    other work (figures), on the same warm workers.
    """
    with process_pool(int(n_workers), _init_worker, (X, y)) as ex:
        yield ex


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
        futures: dict[Future[dict[str, Any]], Any] = {ex.submit(_run_in_worker, run, s): s for s in specs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: futures[f].index):
                exc = f.exception()
                on_done(futures[f], exc if exc is not None else f.result())


def run_dask(
    specs: Sequence[Any],
    X: np.ndarray,
    y: np.ndarray | None,
    scheduler: Any,
    on_done: OnDone,
    run: Callable[..., dict[str, Any]],
) -> None:
    """A running ``distributed`` scheduler (an address, or a Client/cluster object)."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ImportError('--scheduler needs Dask: pip install "nemm[dask]"') from exc
    own = not isinstance(scheduler, Client)
    address = getattr(scheduler, "scheduler_address", scheduler)
    try:
        client = Client(address, set_as_default=False) if own else scheduler
    except OSError as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    try:
        # The data travel once to every worker; tasks refer to them.
        Xf = client.scatter(X, broadcast=True, hash=False)
        yf = client.scatter(y, broadcast=True, hash=False) if y is not None else None
        futures = {
            client.submit(
                run, s, Xf, yf, pure=False, key=f"nemm-run-{s.run_id}-{os.getpid()}-{time.time_ns()}"
            ): s
            for s in specs
        }
        for f in as_completed(list(futures), loop=client.loop):
            try:
                out = f.result()
            except Exception as exc:  # a lost worker: recorded, not final
                out = exc
            on_done(futures[f], out)
    finally:
        if own:
            client.close()
