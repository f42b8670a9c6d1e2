"""nemm._pool: spawned workers that run with one thread each."""

from __future__ import annotations

from nemm._pool import process_pool


def _limits() -> list[int]:
    from threadpoolctl import threadpool_info

    return sorted({int(i["num_threads"]) for i in threadpool_info()})


def test_workers_are_single_threaded() -> None:
    with process_pool(2) as pool:
        got = [f.result() for f in [pool.submit(_limits) for _ in range(2)]]
    assert all(g in ([], [1]) for g in got), got
