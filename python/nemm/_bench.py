"""``nemm bench``: a short measurement of the installed engine.

Times one paper-protocol training run (``Machine(6).fit`` on the 2980 embedded digits, one
thread) and the chain throughput of the trained machine (one chain on one thread, 64 chains on
one and on all threads), and checks what it computed. It compiles nothing and reads nothing
outside the package; the full suite, the yardstick and the numpy/PyTorch references are in
``bench/`` of the source tree.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

__all__ = ["add_arguments", "measure", "run"]


def _best_seconds(fn: Any, repeats: int) -> tuple[float, Any]:
    """Best wall-clock seconds of ``repeats`` calls of ``fn`` (the least disturbed), last result."""
    best, out = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(*, quick: bool = False, threads: int | None = None) -> dict[str, Any]:
    """Run the measurements; return ``{"meta": {...}, "results": {key: {value, unit, note}}}``.

    Raises
    ------
    RuntimeError
        If a result is wrong: a non-finite or implausible log-likelihood, or a hidden
        trajectory with states out of range or stuck in one state.
    """
    import nemm
    from nemm import _core
    from nemm.datasets import embedded_digits

    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    X, _ = embedded_digits()
    saved = int(_core.max_threads())
    all_threads = saved if threads is None else int(threads)
    epochs, repeats, steps = (12, 1, 20_000) if quick else (120, 3, 200_000)
    results: dict[str, dict[str, Any]] = {}

    def add(key: str, value: float, unit: str, note: str = "") -> None:
        results[key] = {"value": float(value), "unit": unit, "note": note}

    try:
        nemm.set_num_threads(1)
        sec, m = _best_seconds(
            lambda: nemm.Machine(6, recipe="paper", n_epochs=epochs, random_state=0).fit(X), repeats
        )
        ll = float(m.history_["loglik"][-1])
        if not (np.isfinite(ll) and ll > -170):
            raise RuntimeError(f"log-likelihood {ll} after training: the engine is broken")
        add(
            "fit_s", sec, "s", f"Machine(6).fit, {epochs} epochs x 30 steps, 1 thread; LL {ll:.2f} nats/digit"
        )

        for n_chains, n_threads in [(1, 1), (64, 1)] + ([(64, all_threads)] if all_threads > 1 else []):
            nemm.set_num_threads(n_threads)
            T = steps // n_chains
            sec, z = _best_seconds(
                lambda T=T, n_chains=n_chains: m.hidden_trajectory(T, n_chains=n_chains, burn_in=0, seed=1),
                repeats,
            )
            z = np.asarray(z).ravel()
            if z.size != T * n_chains or z.min() < 0 or z.max() >= m.n_states or np.unique(z).size < 2:
                raise RuntimeError(
                    f"hidden trajectory of {n_chains} chains is wrong: states out of range "
                    "or stuck in one state"
                )
            add(
                f"chain.C{n_chains}.t{n_threads}",
                T * n_chains / sec,
                "steps/s",
                f"{n_chains} chain{'s' if n_chains > 1 else ''}, {n_threads} thread{'s' if n_threads > 1 else ''}",
            )
    finally:
        nemm.set_num_threads(saved)
    meta = {
        "nemm_version": nemm.__version__,
        "openmp": nemm.openmp_enabled(),
        "threads": all_threads,
        "quick": quick,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return {"meta": meta, "results": results}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``nemm bench``."""
    parser.add_argument("--quick", action="store_true", help="a tenth of the training, fewer steps: seconds")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of the 'all threads' run (default: the OpenMP maximum)",
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``nemm bench``: print a table, optionally write JSON."""
    from nemm.results import write_json

    data = measure(quick=args.quick, threads=args.threads)
    print(
        f"nemm {data['meta']['nemm_version']} (OpenMP {data['meta']['openmp']})"
        + (", quick" if args.quick else "")
    )
    for key, row in data["results"].items():
        print(f"  {key:<14} {row['value']:>14.4g} {row['unit']:<8} {row['note']}")
    if args.json:
        write_json(args.json, data, indent=2)
        print(f"results written to {args.json}")
    return 0
