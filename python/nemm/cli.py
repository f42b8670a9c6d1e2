"""The ``nemm`` command line: train, sample, diagnose, reproduce, sweep, bench."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.diagnostics import Diagnosis


def _digits(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--digits takes a comma-separated list of digits, got {text!r}") from exc


def _load_training_data(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """DATA: omitted (embedded digits), a .npy/.npz array, an IDX directory or a PNG folder."""
    from nemm import datasets

    if args.data is None:
        X, _ = datasets.load_digits(args.digits, args.per_class)
        return X, f"embedded MNIST test-split digits {','.join(map(str, args.digits))} ({len(X)} images)"
    path = Path(args.data)
    if path.is_dir() and any(path.glob("*-idx3-ubyte*")):
        split = "train" if any(path.glob("train-images-idx3-ubyte*")) and not any(path.glob("t10k-images*")) else "test"
        X, _ = datasets.load_digits(args.digits, args.per_class, split=split, directory=path, threshold=args.threshold)
        return X, f"MNIST {split} digits {','.join(map(str, args.digits))} from {path} ({len(X)} images)"
    X = datasets.load_binary(path, threshold=args.threshold)
    return X, f"{path} ({X.shape[0]} rows of {X.shape[1]} bits)"


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a machine on binary data",
                       description="Train a nonequilibrium Markov machine with the paper's protocol.")
    p.add_argument("data", nargs="?", help=".npy/.npz of 0/1 rows, an MNIST IDX directory or a folder of PNGs "
                                           "(default: the embedded digits 0, 1, 2)")
    p.add_argument("--hidden", type=int, default=6, help="L, the number of hidden units/states (default 6)")
    p.add_argument("--hidden-type", choices=("onehot", "binary"), default="onehot")
    p.add_argument("--normalization", choices=("softmax", "sigmoid"), default="softmax")
    p.add_argument("--no-centering", action="store_true", help="switch off x - xbar in the x -> z kernel")
    p.add_argument("--tied", action="store_true", help="wbar = w^T: the equilibrium RBM baseline")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=120)
    p.add_argument("--steps-per-epoch", type=int, default=30)
    p.add_argument("--batch-size", type=int, nargs=2, default=(16, 160), metavar=("START", "END"))
    p.add_argument("--chain-steps", type=int, default=48, help="T, double steps per gradient step")
    p.add_argument("--chains", type=int, default=1, help="persistent chains (default 1, as the paper)")
    p.add_argument("--lr", type=float, default=0.1, help="RMSprop learning rate")
    p.add_argument("--digits", type=_digits, default=(0, 1, 2), help="digits for MNIST data (default 0,1,2)")
    p.add_argument("--per-class", type=int, default=1000, help="first N of each digit (default 1000)")
    p.add_argument("--threshold", type=float, default=127, help="binarization threshold for images")
    p.add_argument("--out", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the EM mixture log-likelihood ceiling")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--config", metavar="FILE", help="TOML file with [model], [train], [data], [diagnostics], "
                   "[baselines] tables (one grid point, one seed); replaces the settings options")
    p.set_defaults(func=_run_train, train_parser=p)


def _run_train(args: argparse.Namespace) -> int:
    from nemm import Machine

    if args.config is not None:
        from nemm.sweep import train_from_config

        # The file holds every setting: an option beside it would be silently overridden.
        given = [a.option_strings[0] for a in args.train_parser._actions if a.option_strings and a.dest not in
                 ("help", "config", "out", "quiet", "no_ceiling") and getattr(args, a.dest) != a.default]
        if args.data is not None or given:
            raise ValueError(f"--config holds the settings; give {', '.join(given) or 'DATA'} in its tables instead")
        return train_from_config(args.config, args.out, progress=not args.quiet)
    X, desc = _load_training_data(args)
    print(f"data: {desc}")
    m = Machine(args.hidden, hidden=args.hidden_type, normalization=args.normalization,
                centered=not args.no_centering, tied=args.tied, learning_rate=args.lr, n_epochs=args.epochs,
                steps_per_epoch=args.steps_per_epoch, batch_size=tuple(args.batch_size),
                chain_steps=args.chain_steps, n_chains=args.chains, random_state=args.seed,
                verbose=not args.quiet)
    t0 = time.perf_counter()
    m.fit(X)
    seconds = time.perf_counter() - t0
    path = m.save(args.out)
    print(f"trained {args.epochs} epochs in {seconds:.2f} s; model written to {path}")
    print(f"log-likelihood (on-the-fly estimate, last epoch): {m.history_['loglik'][-1]:.2f} nats/point")
    from nemm.machine import ENUMERATION_LIMIT

    exact = m.score(X) if m.n_states <= ENUMERATION_LIMIT else float("nan")
    print(f"log-likelihood (from a 1e5-step occupancy, appendix A3): {exact:.2f} nats/point")
    if not args.no_ceiling and args.hidden_type == "onehot":
        from nemm.baselines import fit_em_ceiling

        ceiling = fit_em_ceiling(X, args.hidden, n_init=3, random_state=args.seed)
        print(f"EM ceiling (mixture of {args.hidden} product-Bernoullis): {ceiling:.2f} nats/point")
    return 0


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="train and diagnose a grid of machines from a TOML config",
                       description="Run every grid point x seed of CONFIG (resumable: finished runs are skipped).")
    p.add_argument("config", metavar="CONFIG", help="TOML file: [model], [train], [sweep], [data], [diagnostics], "
                                                     "[baselines]; a list value is a grid axis")
    p.add_argument("--out", required=True, metavar="DIR", help="sweep directory (runs/, results.csv, report.md)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="local worker processes (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_sweep)


def _run_sweep(args: argparse.Namespace) -> int:
    from nemm.config import load_config
    from nemm.sweep import run_sweep

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise ValueError("--workers sets local processes; with --scheduler the cluster's workers run the sweep")
    res = run_sweep(load_config(args.config), args.out, workers=args.workers, scheduler=args.scheduler,
                    progress=not args.quiet)
    print(f"{len(res.rows)} runs ({res.n_skipped} already done, {res.n_run} run now) in {res.seconds:.1f} s; "
          f"table in {res.out / 'results.csv'}")
    if res.n_errors:
        _fail(f"{res.n_errors} of {len(res.rows)} runs failed (see the error column of results.csv)")
        return 1
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="draw visible samples from a saved machine")
    p.add_argument("model")
    p.add_argument("-n", "--n-samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--burn-in", type=int, default=1000)
    p.add_argument("--thin", type=int, default=10)
    p.add_argument("--out", default="samples.npy", help=".npy file of 0/1 rows")
    p.set_defaults(func=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from nemm import load
    from nemm._io import atomic_open

    m = load(args.model)
    X = m.sample(args.n_samples, burn_in=args.burn_in, thin=args.thin, seed=args.seed)
    out = Path(args.out)
    with atomic_open(out) as fh:
        np.save(fh, X)
    print(f"{len(X)} samples of {X.shape[1]} bits written to {out}")
    return 0


def _load_labelled(path: str, labels: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """--data (any format of nemm.datasets.load_binary) and --labels (.npy of integers)."""
    from nemm.datasets import load_binary

    X = load_binary(path)
    return X, (np.load(labels, allow_pickle=False) if labels is not None else None)


# --------------------------------------------------------------------------- diagnose


def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diagnose", help="nonequilibrium diagnostics of a saved machine",
                       description="Entropy production, decorrelation time, Tr(M)/L, class KL and ln p of a "
                                   "saved machine.")
    p.add_argument("model", help="a model file written by Machine.save / nemm train")
    p.add_argument("--json", action="store_true", help="print the full diagnostics as JSON")
    p.add_argument("--data", default=None,
                   help="data for ln p and the class KL (.npy/.npz, IDX dir, PNG folder); default: the "
                        "embedded digits 0, 1, 2 when the model has 784 visible units")
    p.add_argument("--labels", default=None, help=".npy of integer labels for --data (class KL)")
    p.add_argument("--no-data", action="store_true", help="chain diagnostics only")
    p.add_argument("--steps", type=int, default=100_000, help="steps per chain (4 chains; default 1e5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the diagnostic chains")
    p.set_defaults(func=_run_diagnose)


def diagnosis_text(d: Diagnosis, path: str, data_desc: str | None) -> str:
    """The human-readable summary printed by ``nemm diagnose``."""
    from nemm.reproduce.regimes import classify_regime
    from nemm.reproduce.report import fmt, fmt_pm

    L = d.L
    lines = [f"model: {path} ({d.n_visible} visible, {d.n_states} hidden states, "
             f"{'tied RBM' if d.machine.get('tied') else 'untied'})"]
    sp = d.sampling
    lines.append(f"chains: {sp['n_chains']} x {sp['n_steps']} steps (burn-in {sp['burn_in']}), "
                 f"error bars over {sp['n_segments']} time windows")
    lines.append(f"entropy production sigma (eq. 21): {fmt_pm(d.sigma, d.sigma_err)} nats/step "
                 f"({d.n_one_way} one-way pair(s), pseudo-count {d.pseudocount}; "
                 f"{fmt(d.sigma_two_way)} over two-way pairs only)")
    if d.sigma_rao_blackwell is not None:
        lines.append(f"  from the Rao-Blackwell M: {fmt(d.sigma_rao_blackwell)} nats/step")
    lines.append(f"decorrelation time tau (eq. 23): {fmt_pm(d.tau, d.tau_err)} steps")
    lines.append(f"mean self-transition Tr(M)/L (eq. 24): {fmt_pm(d.self_transition, d.self_transition_err)} "
                 f"(random: {d.random_self_transition:.3f})")
    if d.n_states <= 16 and d.M is not None:
        lines.append("occupancy: " + " ".join(f"{p:.3f}" for p in d.occupancy))
        lines.append("M (row: state, column: next state):")
        for row in d.M:
            lines.append("  " + " ".join(f"{v:5.3f}" for v in row))
    if d.loglik_exact is not None:
        lines.append(f"log-likelihood on {data_desc}: {d.loglik_exact:.3f} nats/point (exact given the occupancy)")
    if d.loglik_on_the_fly is not None:
        lines.append(f"log-likelihood, last training epoch (on-the-fly estimate): {d.loglik_on_the_fly:.3f}")
    ck = d.class_kl
    if ck is not None:
        lines.append(f"class KL (eq. 22): {fmt(ck.kl)} nats; P_data {np.round(ck.p_data, 3).tolist()}, "
                     f"P_model {np.round(ck.p_model, 3).tolist()}, lost mass {ck.lost_mass:.3g}")
    if L == d.n_states:
        lines.append(f"regime: {classify_regime(d.sigma, d.sigma_err, d.tau, d.self_transition, L)}")
    return "\n".join(lines)


def _run_diagnose(args: argparse.Namespace) -> int:
    from nemm import load
    from nemm.diagnostics import diagnose
    from nemm.results import to_json

    m = load(args.model)
    X = y = None
    desc = None
    if not args.no_data:
        if args.data is not None:
            X, y = _load_labelled(args.data, args.labels)
            desc = str(args.data)
        elif m.n_visible_ == 784:
            from nemm.datasets import embedded_digits

            X, y = embedded_digits()
            desc = "the embedded digits 0, 1, 2"
    d = diagnose(m, X, y, n_steps=args.steps, seed=args.seed)
    print(to_json(d, indent=1) if args.json else diagnosis_text(d, args.model, desc))
    return 0


# --------------------------------------------------------------------------- reproduce


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reproduce", help="reproduce the paper's section IV (table, figures, report)",
                       description="Reproduce the paper's section IV (table, figures, report).")
    p.add_argument("--out", default="nemm-report", help="output directory (default nemm-report)")
    p.add_argument("--quick", action="store_true",
                   help="demo: 6 seeds x 60 epochs, 2 EM restarts, 1 RBM seed (under a minute on 2 cores)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 36; quick 6)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per machine (default 120; quick 60)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--hidden", type=int, default=6, help="L, one-hot hidden states (default 6)")
    p.add_argument("--data", default=None,
                   help=".npy/.npz of 0/1 rows, an MNIST IDX directory or a PNG folder "
                        "(default: the embedded digits 0, 1, 2)")
    p.add_argument("--labels", default=None, help=".npy of integer labels for --data (for the class KL)")
    p.add_argument("--track-every", type=int, default=10,
                   help="track sigma/tau/ln p every N epochs during training (0: off; default 10)")
    p.add_argument("--track-steps", type=int, default=5000, help="chain steps per tracking point")
    p.add_argument("--diag-steps", type=int, default=100_000,
                   help="chain steps of the final diagnostics, over 2 chains (default 1e5)")
    p.add_argument("--em-restarts", type=int, default=None, help="EM restarts (default 5; quick 2)")
    p.add_argument("--rbm-seeds", type=int, default=None, help="tied RBM seeds (default 3; quick 1)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures (no matplotlib needed)")
    p.add_argument("--quiet", action="store_true", help="no console output")
    p.set_defaults(func=_run_reproduce)


def _run_reproduce(args: argparse.Namespace) -> int:
    from nemm.reproduce import reproduce

    data = _load_labelled(args.data, args.labels) if args.data is not None else None
    reproduce(args.out, seeds=args.seeds, n_epochs=args.epochs, quick=args.quick, n_jobs=args.jobs, data=data,
              track_every=args.track_every, progress=not args.quiet, n_hidden=args.hidden,
              track_steps=args.track_steps, diag_steps=args.diag_steps, em_restarts=args.em_restarts,
              rbm_seeds=args.rbm_seeds, figures=not args.no_figures)
    return 0


# --------------------------------------------------------------------------- bench


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from nemm import _bench

    p = sub.add_parser("bench", help="a short measurement of the installed engine",
                       description="a short measurement of the installed engine (bench/ holds the full suite)")
    _bench.add_arguments(p)
    p.set_defaults(func=_bench.run)


def _fail(message: str) -> int:
    print(f"nemm: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The ``nemm`` argument parser with every subcommand."""
    from nemm import __version__

    parser = argparse.ArgumentParser(prog="nemm", description="The nonequilibrium Markov machine "
                                     "(Baiesi and Rosso, arXiv:2512.11415).")
    parser.add_argument("--version", action="version", version=f"nemm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_sweep(sub)
    _add_diagnose(sub)
    _add_reproduce(sub)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nemm`` with ``argv`` (default: the process arguments); return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, RuntimeError, ImportError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted")
    except BrokenPipeError:  # `nemm diagnose ... | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
