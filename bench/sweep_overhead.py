"""Per-run overhead of the sweep backends: wall time of a sweep of tiny runs minus the work of its runs.

    python bench/sweep_overhead.py [--seeds 5] [--workers 2] [--dask]

Each backend runs the same 20 tiny runs (60 digits, 2 epochs of 3 steps, a 2000-step
diagnostics chain) into a fresh directory. The work of a run is the time its worker spent
in ``run_one`` (``seconds`` in result.json); overhead per run = (run phase x workers - work) / runs,
i.e. everything a worker slot spends on something else: process start, data transfer,
pickling, writing files, scheduling. The run phase excludes the fixed part of a sweep (data,
table, report, figure); Dask's cluster start-up is reported apart, and so is the local pool's
(spawning the workers, each importing nemm and receiving the data: nemm._pool.process_pool):
the last column subtracts it, leaving the part that grows with the number of runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from nemm.config import parse_config
from nemm.sweep import run_sweep

CONFIG = """
[model]
n_hidden = [2, 3, 4, 5]
[train]
n_epochs = 2
steps_per_epoch = 3
batch_size = [8, 16]
chain_steps = 8
[sweep]
seeds = {seeds}
[data]
per_class = 20
[diagnostics]
diagnostic_steps = 2000
"""


def _nap() -> None:
    time.sleep(0.3)


def pool_startup(workers: int) -> float:
    """Seconds until every worker of a fresh sweep pool (with the data) has run a first task."""
    from nemm import sweep

    X, y, _ = sweep.load_data(parse_config(CONFIG.format(seeds=1)).data)
    t0 = time.perf_counter()
    with sweep.worker_pool(workers, X, y) as ex:
        for f in [
            ex.submit(_nap) for _ in range(workers)
        ]:  # one nap per worker: each is busy when the next comes
            f.result()
        startup = time.perf_counter() - t0 - 0.3
    return startup


def measure(label: str, out: Path, workers: int, seeds: int, startup: float = 0.0, **kw: object) -> None:
    cfg = parse_config(CONFIG.format(seeds=seeds))
    t0 = time.perf_counter()
    res = run_sweep(cfg, out, progress=False, workers=workers if "scheduler" not in kw else None, **kw)
    wall = time.perf_counter() - t0
    work = sum(json.loads(p.read_text())["seconds"] for p in out.glob("runs/*/result.json"))
    slots = max(workers, 1)
    n = len(res.rows)
    assert res.n_errors == 0 and res.n_run == n
    print(
        f"{label:28s} runs {n}  sweep {wall:5.2f} s  run phase {res.run_seconds:5.2f} s  work {work:5.2f} s  "
        f"overhead/run {(res.run_seconds * slots - work) / n * 1e3:6.1f} ms  "
        f"without start-up {((res.run_seconds - startup) * slots - work) / n * 1e3:6.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=5, help="runs = 4 x seeds (default 20)")
    ap.add_argument("--dask", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("in-process (workers=0)", Path(tmp) / "w0", 0, args.seeds)
        s1, sn = pool_startup(1), pool_startup(args.workers)
        print(f"local pool start-up: 1 worker {s1:.2f} s, {args.workers} workers {sn:.2f} s")
        measure("local, 1 worker", Path(tmp) / "w1", 1, args.seeds, s1)
        measure(f"local, {args.workers} workers", Path(tmp) / "wn", args.workers, args.seeds, sn)
        if args.dask:
            from distributed import LocalCluster

            t0 = time.perf_counter()
            with LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                print(f"Dask LocalCluster start-up: {time.perf_counter() - t0:.2f} s")
                measure(
                    f"Dask LocalCluster, {args.workers} workers",
                    Path(tmp) / "dask",
                    args.workers,
                    args.seeds,
                    0.0,
                    scheduler=cluster.scheduler_address,
                )


if __name__ == "__main__":
    main()
