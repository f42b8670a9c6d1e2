"""The one worker-pool helper: spawned processes, one engine/BLAS thread each (threadpoolctl).

The processes are the parallelism, so every worker limits OpenMP and BLAS to one
thread through :mod:`threadpoolctl` (and the core through ``nemm.set_num_threads``)
instead of environment variables. ``spawn``, not ``fork``: the parent may hold
OpenMP threads, which a forked child cannot use.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from typing import Any

__all__ = ["process_pool"]

# Kept alive for the worker's lifetime: threadpool_limits restores the old limits when collected.
_LIMITS: Any = None


def _init(initializer: Callable[..., None] | None, initargs: Sequence[Any]) -> None:
    global _LIMITS
    from threadpoolctl import threadpool_limits

    import nemm

    nemm.set_num_threads(1)
    _LIMITS = threadpool_limits(limits=1)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def process_pool(
    n_workers: int, initializer: Callable[..., None] | None = None, initargs: Sequence[Any] = ()
) -> Iterator[cf.ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of ``n_workers`` spawned, single-threaded workers.

    ``initializer(*initargs)`` runs in every worker after the thread limits are set.
    On an error in the ``with`` block, pending tasks are cancelled.
    """
    pool = cf.ProcessPoolExecutor(
        max_workers=int(n_workers),
        mp_context=mp.get_context("spawn"),
        initializer=_init,
        initargs=(initializer, tuple(initargs)),
    )
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
