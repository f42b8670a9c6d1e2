"""nemm._pool: spawned workers that run with one thread each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nemm._pool import process_pool


def _limits() -> dict[str, list[int]]:
    """The thread counts a worker runs with: per threadpoolctl API, and the core's OpenMP maximum."""
    from threadpoolctl import threadpool_info

    from nemm import _core

    apis: dict[str, set[int]] = {}
    for i in threadpool_info():
        apis.setdefault(i["user_api"], set()).add(int(i["num_threads"]))
    out = {api: sorted(n) for api, n in apis.items()}
    out["core"] = [int(_core.max_threads())]
    return out


def test_workers_are_single_threaded() -> None:
    import nemm

    with process_pool(2) as pool:
        got = [f.result() for f in [pool.submit(_limits) for _ in range(2)]]
    # Every worker has loaded numpy's BLAS (and the core's OpenMP when it has one), all limited to one thread.
    expected = {"blas", "core"} | ({"openmp"} if nemm.openmp_enabled() else set())
    for g in got:
        assert expected <= set(g), g
        assert all(n == [1] for n in g.values()), g


def test_the_sweep_runs_on_this_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local backend of nemm.sweep (nemm._backends) has no pool of its own: it is process_pool."""
    from nemm import _backends, sweep
    from nemm.config import parse_config

    calls: list[int] = []
    real = _backends.process_pool

    def spy(n_workers: int, initializer: Any = None, initargs: Any = ()) -> Any:
        calls.append(n_workers)
        return real(n_workers, initializer, initargs)

    monkeypatch.setattr(_backends, "process_pool", spy)
    cfg = parse_config(
        "[model]\nn_hidden = [2, 3]\n[train]\nn_epochs = 1\nsteps_per_epoch = 2\nbatch_size = 8\n"
        "chain_steps = 4\n[data]\nper_class = 10\n[diagnostics]\ndiagnostic_steps = 200\n"
    )
    res = sweep.run_sweep(cfg, tmp_path / "o", workers=2, progress=False)
    assert calls == [2] and res.n_errors == 0 and res.n_run == 2
