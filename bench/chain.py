#!/usr/bin/env python
"""Chain benchmark: the yardstick, one paper-protocol training run and the chain throughput.

    python bench/chain.py --quick            # a few seconds
    python bench/chain.py --json out.json    # full run, about a minute

What is measured (every number also checks something cheap about its result):

* the yardstick: ``chain_limit.cpp``, a plain single-threaded C++ chain loop (compiled here
  with ``g++ -O3 -march=native``), and the ratio ours / yardstick;
* the seconds of one paper-protocol training run (120 epochs x 30 steps, T = 48, minibatch
  16 -> 160) on the 2980 embedded digits, on one thread;
* chain throughput, in double steps x' -> z -> x' per second, for D = 784 visible bits with
  trained parameters: L = 6 one-hot and L = 8 binary hidden units, one chain and
  C = 1, 2, 4, ..., 64 chains, on one thread and on all cores.

``bench/suite.py`` runs the larger suite; ``nemm bench`` a short measurement of the installed
engine alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import harness  # noqa: E402
from harness import (  # noqa: E402
    CHAIN_COUNTS,
    QUICK_YARDSTICK_STEPS,
    TARGETS,
    YARDSTICK_STEPS,
    Results,
)


def bench(
    *,
    quick: bool = False,
    yardstick: str | None = None,
    yardstick_steps: int | None = None,
    threads: int | None = None,
    json_path: str | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """The chain benchmark; prints the table and returns the results dict."""
    threads_all = int(threads) if threads else harness.available_cores()
    saved_threads = harness.default_threads()
    res = Results("nemm chain benchmark" + (" (quick)" if quick else ""))
    res.meta.update(quick=quick, threads_all=threads_all)
    X = harness.digits()
    try:
        # -- yardstick
        res.section("yardstick: chain_limit.cpp, g++ -O3 -march=native, D=784, L=6 one-hot")
        steps = (
            (QUICK_YARDSTICK_STEPS if quick else YARDSTICK_STEPS)
            if yardstick_steps is None
            else yardstick_steps
        )
        ys = (
            harness.run_yardstick(harness.find_yardstick(yardstick), steps)
            if steps > 0
            else {"steps_per_s": None, "steps": 0, "reason": "skipped (--yardstick-steps 0)"}
        )
        res.extra["yardstick"] = ys
        y = ys["steps_per_s"]
        res.add("yardstick", "yardstick: 1 chain, 1 core", y, "steps/s", note=harness.yardstick_note(ys))

        # -- paper protocol (also gives the realistic one-hot parameters)
        res.section("paper protocol: Machine(6).fit(2980 digits), 120 epochs x 30 steps, T=48, 1 thread")
        epochs = 12 if quick else 120
        pinfo: dict[str, float] = {}
        sec, m6, ll = harness.paper_protocol(X, n_epochs=epochs, repeats=1 if quick else 3, info=pinfo)
        res.add(
            "paper_protocol_s",
            f"training run ({epochs} epochs), 1 thread",
            sec,
            "s",
            note=f"CPU {pinfo['cpu']:.3f} s; LL {ll:.2f} nats/digit"
            + ("; quick: 1/10 of the epochs" if quick else ""),
        )
        res.add(
            "paper_protocol_cpu_s",
            "  CPU seconds of that run",
            pinfo["cpu"],
            "s",
            note="one thread: what the wall time would be on a quiet machine",
        )
        res.add("paper_protocol_step_s", "  per gradient step", sec / (epochs * 30), "s")

        # -- chains
        total = 20_000 if quick else 200_000
        reps = 1 if quick else 3
        counts = (1, 2, 8) if quick else CHAIN_COUNTS
        res.section(
            f"chain throughput, D=784, realistic parameters, double steps/s ({total:,} steps per point)"
        )
        s6 = harness.measure_chains(
            res,
            m6,
            "L=6 one-hot",
            "chain.onehot6",
            threads_all=threads_all,
            total_steps=total,
            repeats=reps,
            counts=counts,
            yardstick=y,
            yardstick_cpu=ys.get("steps_per_cpu_s"),
        )
        m8 = harness.trained_machine(X, 8, hidden="binary", n_epochs=3 if quick else 30)
        s8 = harness.measure_chains(
            res,
            m8,
            "L=8 binary",
            "chain.binary8",
            threads_all=threads_all,
            total_steps=total,
            repeats=reps,
            counts=counts,
            yardstick=y,
            yardstick_cpu=ys.get("steps_per_cpu_s"),
        )
        res.extra["chain_series"] = {"onehot6": s6, "binary8": s8}

        # -- targets
        one = res.value("chain.onehot6.one_chain")
        rc = s6.get("ratio_per_cpu_s")
        res.target(
            "1 chain vs yardstick, per core",
            None if y is None else one / y,
            TARGETS["chain_vs_yardstick"],
            note="L=6 one-hot" + (f"; per CPU-second {rc:.2f}" if rc else ""),
        )
        eff = s6.get("efficiency")
        res.target(
            f"{threads_all}-core efficiency, {counts[-1]} chains",
            None if eff is None else eff[-1],
            TARGETS["two_core_efficiency"],
            note="L=6 one-hot" if eff else "one core only",
        )
        res.target(
            "paper protocol, 1 thread (s)",
            None if quick else sec,
            TARGETS["paper_protocol_s"],
            at_most=True,
            note="quick mode: not measured" if quick else f"CPU seconds {pinfo['cpu']:.3f}",
        )
    finally:
        harness.set_threads(saved_threads)
    data = res.to_dict()
    if verbose:
        print(res.table())
    if json_path:
        p = harness.write_json(json_path, data)
        if verbose:
            print(f"results written to {p}")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a few seconds, for smoke tests")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON (atomically)")
    parser.add_argument(
        "--yardstick",
        metavar="PATH",
        help=f"chain_limit.cpp (default: $NEMM_YARDSTICK, else {harness.DEFAULT_YARDSTICK})",
    )
    parser.add_argument(
        "--yardstick-steps",
        type=int,
        default=None,
        metavar="T",
        help=f"double steps the yardstick runs (default {YARDSTICK_STEPS:,}; "
        f"{QUICK_YARDSTICK_STEPS:,} with --quick; 0 skips it)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help=f"threads of the 'all cores' runs (default: the {harness.available_cores()} available cores)",
    )
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    bench(
        quick=args.quick,
        yardstick=args.yardstick,
        yardstick_steps=args.yardstick_steps,
        threads=args.threads,
        json_path=args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
