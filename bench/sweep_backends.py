"""A 100-run sweep (paper protocol, seeds x a grid) on local processes and on a Dask LocalCluster.

    python bench/sweep_backends.py [--workers 2] [--seeds 10] [--chain-steps 20000] [--json FILE] [--keep DIR]

The grid is n_hidden in {3, 4, 5, 6, 8} x normalization in {softmax, sigmoid}, times
``--seeds`` seeds (10: 100 runs), on the embedded digits 0, 1, 2 with the paper's training
protocol (the Machine defaults: 120 epochs of 30 steps, batch 16 -> 160, T = 48). Both
backends get the same number of single-threaded worker processes. Per backend it prints the
wall time of the sweep, of its run phase, the summed work of the runs (``seconds`` in
result.json: training and measuring inside a worker) and the per-run overhead,

    overhead per run = (run phase x workers - work) / runs,

i.e. what a worker slot spends outside ``run_one`` (process start, data transfer, pickling,
scheduling, the driver writing files). Dask's cluster start-up is printed apart. The two
results.csv files must be identical byte for byte; the script raises otherwise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from nemm.config import parse_config
from nemm.sweep import run_sweep

CONFIG = """
[model]
n_hidden = [3, 4, 5, 6, 8]
normalization = ["softmax", "sigmoid"]
[train]
recipe = "paper"
n_epochs = 120
[sweep]
seeds = {seeds}
[diagnostics]
diagnostic_steps = {chain_steps}
"""


def _one(label: str, out: Path, workers: int, cfg_text: str, **kw: Any) -> dict[str, Any]:
    cfg = parse_config(cfg_text)
    t0 = time.perf_counter()
    res = run_sweep(cfg, out, progress=False, workers=None if "scheduler" in kw else workers, **kw)
    wall = time.perf_counter() - t0
    results = [json.loads(p.read_text()) for p in out.glob("runs/*/result.json")]
    work = sum(r["seconds"] for r in results)
    train = sum(r.get("train_seconds", 0.0) for r in results)
    n = len(res.rows)
    if res.n_errors or res.n_run != n:
        raise RuntimeError(f"{label}: {res.n_errors} failed runs of {n}")
    row = {
        "backend": label,
        "runs": n,
        "workers": workers,
        "sweep_s": wall,
        "run_phase_s": res.run_seconds,
        "work_s": work,
        "train_s": train,
        "overhead_per_run_ms": (res.run_seconds * workers - work) / n * 1e3,
    }
    print(
        f"{label:26s} {n:5d} {wall:9.1f} {res.run_seconds:10.1f} {work:9.1f} {row['overhead_per_run_ms']:14.1f}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=10, help="runs = 10 x seeds (default 100)")
    ap.add_argument("--chain-steps", type=int, default=20_000, help="diagnostics chain per run")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    ap.add_argument("--keep", type=Path, help="write the sweeps here instead of a temporary directory")
    args = ap.parse_args()
    from distributed import LocalCluster

    text = CONFIG.format(seeds=args.seeds, chain_steps=args.chain_steps)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        print(
            f"{'backend':26s} {'runs':>5s} {'sweep s':>9s} {'run phase':>10s} {'work s':>9s} {'overhead/run ms':>14s}"
        )
        rows = [_one(f"local, {args.workers} processes", base / "local", args.workers, text)]
        t0 = time.perf_counter()
        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            startup = time.perf_counter() - t0
            rows.append(
                _one(
                    f"Dask LocalCluster, {args.workers}",
                    base / "dask",
                    args.workers,
                    text,
                    scheduler=cluster.scheduler_address,
                )
            )
        rows[-1]["cluster_startup_s"] = startup
        print(f"Dask LocalCluster start-up: {startup:.2f} s (not in the table)")
        a, b = (base / "local" / "results.csv").read_bytes(), (base / "dask" / "results.csv").read_bytes()
        if a != b:
            raise RuntimeError("results.csv differs between the local and the Dask backend")
        print("results.csv identical across backends")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
