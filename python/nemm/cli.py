"""The ``nemm`` command line: train, sample, diagnose, reproduce, sweep, bench."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np


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
    exact = m.score(X) if m.n_states <= 4096 else float("nan")
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


def _add_delegated(sub: argparse._SubParsersAction, name: str, help_text: str, module: str, add: str,
                   run: str) -> None:
    """Subcommands whose arguments and work live in their own module."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:  # optional pieces (e.g. plotting) report themselves at run time
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=lambda args, exc=exc: _fail(f"`nemm {name}` is unavailable: {exc}"))
        return
    p = sub.add_parser(name, help=help_text, description=help_text)
    getattr(mod, add)(p)
    p.set_defaults(func=getattr(mod, run))


def _fail(message: str) -> int:
    print(f"nemm: error: {message}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    from nemm import __version__

    parser = argparse.ArgumentParser(prog="nemm", description="The nonequilibrium Markov machine "
                                     "(Baiesi and Rosso, arXiv:2512.11415).")
    parser.add_argument("--version", action="version", version=f"nemm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_sweep(sub)
    _add_delegated(sub, "diagnose", "nonequilibrium diagnostics of a saved machine", "nemm.reproduce",
                   "add_diagnose_arguments", "run_diagnose")
    _add_delegated(sub, "reproduce", "reproduce the paper's section IV (table, figures, report)",
                   "nemm.reproduce", "add_reproduce_arguments", "run_reproduce")
    _add_delegated(sub, "bench", "a short measurement of the installed engine", "nemm._bench",
                   "add_arguments", "run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
