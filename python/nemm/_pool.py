"""The one worker-pool helper: spawned processes, one engine/BLAS thread each (threadpoolctl).

The processes are the parallelism, so every worker limits OpenMP and BLAS to one
thread through :mod:`threadpoolctl` (and the core through ``nemm.set_num_threads``)
instead of environment variables. ``spawn``, not ``fork``: the parent may hold
OpenMP threads, which a forked child cannot use.

Workers never outlive the process that started them: on Linux the kernel sends them
SIGKILL when it dies (``prctl(PR_SET_PDEATHSIG)``), and everywhere a watch thread
ends a worker whose parent is gone (the parent id changes), so a driver killed by
SIGKILL, a batch scheduler or a closed terminal leaves no process behind (nor the
resource tracker, which ends when its last client does). Workers ignore SIGINT: a
Ctrl-C to the whole process group reaches the driver, which stops them at once
(:meth:`WorkerPool.terminate`); only the driver writes files, so nothing is lost but
the runs in progress.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["PARENT_POLL_SECONDS", "WorkerPool", "process_pool"]

#: How often a worker checks that its parent is alive (seconds): the bound on an orphan's life
#: where the kernel's parent-death signal is missing (not Linux) or busy (the watch needs the GIL).
PARENT_POLL_SECONDS = 0.5
#: How long a stopped worker gets to end on SIGTERM before it is killed (seconds).
_TERMINATE_GRACE = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# Kept alive for the worker's lifetime: threadpool_limits restores the old limits when collected.
_LIMITS: Any = None


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)  # the parent is gone (re-parented to init or a subreaper): nobody wants our result


def _die_with_parent(parent: int) -> None:
    """End this worker when the process ``parent`` ends, however it ends (SIGKILL included)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="nemm-parent-watch", daemon=True).start()


def _init(parent: int, initializer: Callable[..., None] | None, initargs: Sequence[Any]) -> None:
    global _LIMITS
    _die_with_parent(parent)
    # Ctrl-C to the process group is the driver's to handle: it stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    # tqdm makes a multiprocessing lock on its first bar, which a worker stopped by the driver
    # never releases (the resource tracker then warns of a leak); a worker's bars need no more
    # than a thread lock.
    tqdm.set_lock(threading.RLock())

    import nemm

    nemm.set_num_threads(1)
    _LIMITS = threadpool_limits(limits=1)
    if initializer is not None:
        initializer(*initargs)


class WorkerPool(cf.Executor):
    """A ``ProcessPoolExecutor`` of spawned, single-threaded workers that can be stopped at once and restarted.

    Parameters
    ----------
    n_workers : int
    initializer : callable, optional
        Run as ``initializer(*initargs)`` in every worker after the thread limits are set
        (again in the new workers of :meth:`restart`).
    initargs : sequence
    """

    def __init__(
        self, n_workers: int, initializer: Callable[..., None] | None = None, initargs: Sequence[Any] = ()
    ) -> None:
        self.n_workers = int(n_workers)
        self._init_args = (os.getpid(), initializer, tuple(initargs))
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(
            max_workers=self.n_workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init,
            initargs=self._init_args,
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def terminate(self) -> None:
        """Stop every worker now (the runs in progress are lost) and shut the pool down."""
        # The executor's own processes: it offers no public way to stop a running task.
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        for p in procs:
            with contextlib.suppress(OSError, ValueError):
                p.terminate()
        deadline = time.monotonic() + _TERMINATE_GRACE
        for p in procs:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                p.join(max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
                    p.join(_TERMINATE_GRACE)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def restart(self) -> None:
        """Replace the workers by new ones (after one died, which breaks the whole executor)."""
        self.terminate()
        self._pool = self._new_pool()


@contextlib.contextmanager
def process_pool(
    n_workers: int, initializer: Callable[..., None] | None = None, initargs: Sequence[Any] = ()
) -> Iterator[WorkerPool]:
    """A :class:`WorkerPool` of ``n_workers`` spawned, single-threaded workers.

    ``initializer(*initargs)`` runs in every worker after the thread limits are set.
    On an error or an interruption (Ctrl-C, SIGTERM) in the ``with`` block the workers
    are stopped at once instead of finishing their tasks.
    """
    pool = WorkerPool(n_workers, initializer, initargs)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    pool.shutdown(wait=True)
