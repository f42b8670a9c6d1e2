"""Validation of the headline entropy production rate on trained digit machines (docs/entropy-production.md).

Trains ``Machine(6, random_state=s).fit(X)`` on the embedded digits for the given seeds (or loads the
parameters of tests/fixtures/trained_digits_L6.npz with ``--fixture``), then runs
``nemm.diagnostics.entropy_production_rate`` at effort 1 and at a long effort, times effort 1 on one
core, and prints a Markdown table beside the plain Rao-Blackwell and counting estimators::

    OPENBLAS_NUM_THREADS=1 python bench/sigma_validation.py --fixture --long 16
    OPENBLAS_NUM_THREADS=1 python bench/sigma_validation.py --recipe paper --long 16
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import nemm
from nemm import diagnostics as diag

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "trained_digits_L6.npz"


def machines(seeds: list[int], fixture: bool, recipe: str) -> list[nemm.Machine]:
    """The trained machines of the seeds: from the fixture file, or trained here on the embedded digits."""
    if fixture:
        f = np.load(FIXTURE)
        return [
            nemm.Machine.from_params(
                f[f"w{s}"],
                f[f"a{s}"],
                f[f"wbar{s}"],
                f[f"abar{s}"],
                f[f"xbar{s}"],
                n_hidden=6,
                random_state=s,
            )
            for s in seeds
        ]
    from nemm.datasets import embedded_digits

    X, _ = embedded_digits()
    return [nemm.Machine(6, recipe=recipe, random_state=s).fit(X) for s in seeds]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--fixture", action="store_true", help="use the parameters saved in tests/fixtures")
    ap.add_argument("--recipe", default="auto", help="training recipe when not --fixture (auto or paper)")
    ap.add_argument("--long", type=float, default=16.0, help="effort of the long run (default 16)")
    ap.add_argument(
        "--rb-draws", type=int, default=2000, help="draws per state of the plain Rao-Blackwell sigma"
    )
    args = ap.parse_args()
    nemm.set_num_threads(1)
    rows = []
    for seed, m in zip(args.seeds, machines(args.seeds, args.fixture, args.recipe)):
        t0 = time.process_time()  # CPU seconds: the machine may be shared
        one = diag.entropy_production_rate(m, effort=1.0)
        t_one = time.process_time() - t0
        long = diag.entropy_production_rate(m, effort=args.long)
        rb = diag.rao_blackwell_sigma(m, args.rb_draws, seed=0)
        ts = diag.transition_statistics(m, 100_000, n_chains=1, seed=0)
        gap = abs(one.sigma - long.sigma) / float(np.hypot(one.sigma_err, long.sigma_err))
        assert one.log_M is not None
        rows.append(
            f"| {seed} | {one.sigma:.2f} ± {one.sigma_err:.2f} | {one.converged} | {t_one:.1f} | "
            f"{long.sigma:.2f} ± {long.sigma_err:.2f} | {long.converged} | {gap:.1f} | "
            f"{np.exp(one.log_M.min()):.1e} | {rb.sigma:.1f} ± {rb.sigma_err:.1f} | {ts.sigma:.2f} ({ts.n_one_way}) |"
        )
        print(rows[-1], flush=True)
    print()
    print(
        f"| seed | sigma, effort 1 | converged | CPU seconds (with its check) | sigma, effort {args.long:g} "
        "| converged | gap / combined error | smallest M entry | sigma_rao_blackwell "
        f"({args.rb_draws} draws) | sigma_counting, 1e5 steps (one-way pairs) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
