"""Peak resident memory of loading N rows of D bits and training a Machine on them a few epochs.

    python bench/sweep_memory.py [--rows 10000 30000 100000] [--dims 196 784] [--epochs 3] [--json FILE]

Every (N, D) point runs in a fresh subprocess: planted one-hot data (nemm.datasets.planted,
L = 10, pixel densities 0.12 / 0.88), then ``Machine(10, n_epochs=epochs).fit(X)`` with the
paper's other settings, then the exact ln p of the first 1000 rows. The peak RSS is the
child's own ``ru_maxrss`` (resource.getrusage(RUSAGE_SELF) at its end, the figure
/usr/bin/time -v reports); "baseline" is the same process importing nemm and doing nothing else.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import resource, sys, time
import numpy as np
import nemm
from nemm.datasets import planted
N, D, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if N:
    t0 = time.perf_counter()
    X, z = planted(D, 10, N, 0)
    m = nemm.Machine(10, recipe="paper", n_epochs=epochs, random_state=0).fit(X)
    lp = float(np.mean(m.score_samples(X[:1000], n_steps=20000)))
    print(f"{time.perf_counter() - t0:.1f} {lp:.3f}")
else:
    print("0 nan")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux: the figure /usr/bin/time -v reports
"""


def peak_rss(N: int, D: int, epochs: int) -> tuple[float, str]:
    """(peak RSS in MiB, child's output) of one fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(N), str(D), str(epochs)], check=True, capture_output=True, text=True
    ).stdout.split("\n")
    return int(out[-2] if out[-1] == "" else out[-1]) / 1024, out[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    ap.add_argument("--dims", type=int, nargs="+", default=[196, 784])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    base, _ = peak_rss(0, 1, 1)
    print(f"baseline (import nemm): {base:.0f} MiB")
    rows = [{"rows": 0, "D": 0, "peak_rss_mib": base}]
    print(
        f"{'rows':>8s} {'D':>5s} {'data MiB':>9s} {'peak RSS MiB':>13s} {'above baseline':>15s} {'s':>6s} {'ln p':>9s}"
    )
    for D in sorted(args.dims):
        for N in sorted(args.rows):
            rss, out = peak_rss(N, D, args.epochs)
            secs, lp = out.split()
            print(
                f"{N:8d} {D:5d} {N * D / 2**20:9.1f} {rss:13.0f} {rss - base:15.0f} {secs:>6s} {lp:>9s}",
                flush=True,
            )
            rows.append({"rows": N, "D": D, "peak_rss_mib": rss, "seconds": float(secs), "loglik": float(lp)})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
