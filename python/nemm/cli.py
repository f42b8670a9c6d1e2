"""The ``nemm`` command line: train, sample, diagnose, reproduce, sweep, bench."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from nemm._settings import (
    DIAGNOSTIC_STEPS,
    DIGITS,
    MACHINE_SETTINGS,
    PER_CLASS,
    THRESHOLD,
    add_options,
    given_settings,
)
from nemm.machine import ENUMERATION_LIMIT

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.diagnostics import Diagnosis
    from nemm.machine import Machine
    from nemm.reproduce import ReproduceOptions


_KEY_HELP = "the array of an .npz data file to use (default: X, x or data, or its only array)"

#: Most hidden states for which `nemm train` prints ln p (appendix A3): the core enumerates up
#: to 2^16 binary states in about a second; `--max-states` changes it.
LNP_MAX_STATES = ENUMERATION_LIMIT


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the usage itself is in ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _digits(text: str) -> tuple[int, ...]:
    """``--digits``: distinct MNIST digits 0-9, checked here so that a typo never starts a download."""
    try:
        values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--digits takes a comma-separated list of digits, got {text!r}"
        ) from exc
    bad = [d for d in values if not 0 <= d <= 9]
    if bad or not values or len(set(values)) != len(values):
        why = (
            f"{bad[0]} is not a digit 0-9" if bad else ("no digit given" if not values else "a digit repeats")
        )
        raise argparse.ArgumentTypeError(
            f"--digits takes distinct digits 0-9 such as 0,1,2; {why} in {text!r}"
        )
    return values


def _threshold(text: str) -> float:
    """``--threshold``: a gray level 0 <= t < 255 (pixel > t -> 1), checked before any data are read."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--threshold takes a gray level, got {text!r}") from exc
    if not 0.0 <= value < 255.0:  # NaN fails too
        raise argparse.ArgumentTypeError(
            f"--threshold must be a gray level with 0 <= t < 255 (pixel > t -> 1), got {text}"
        )
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _writable_directory(path: Path, shown: str) -> None:
    """Refuse ``path`` (a directory to write into, or to be created) unless this process can write there.

    Missing parents are created by the writers (``atomic_open``, ``mkdir(parents=True)``), so the
    nearest existing ancestor is what must be a writable directory.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"cannot write {shown}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES, f"cannot write {shown}: no write permission in the directory {existing}"
        )
    # os.access trusts the mode bits (and root passes them), but /proc, a read-only mount or a
    # full quota refuse the file itself: create and remove one now, naming the user's path.
    try:
        fd, probe = tempfile.mkstemp(prefix=".nemm-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {shown}: {exc.strerror or exc} in {existing}") from exc


def _refuse_directory(path: str, example: str, option: str = "--out") -> None:
    if Path(path).is_dir():
        raise IsADirectoryError(
            errno.EISDIR, f"{option} {path} is a directory; give a file name such as {Path(path) / example}"
        )


def _check_output_file(path: str | os.PathLike[str], option: str = "--out") -> None:
    """Refuse, before any work, an output file that ``_io.atomic_open`` could not write."""
    from nemm._io import writable_target

    shown = f"{option} {os.fspath(path)}"
    _writable_directory(Path(os.path.realpath(os.fspath(path))).parent, shown)
    writable_target(path)  # a directory, FIFO, device or socket: refused with the reason


def _model_path(out: str) -> Path:
    """The file ``Machine.save(out)`` writes: ``.npz`` is appended to any other suffix."""
    path = Path(out)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _load_training_data(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    """DATA: omitted (embedded digits), a .npy/.npz array, an IDX directory or a PNG folder."""
    from nemm import datasets

    bz = _binarization(args)
    if args.data is None:
        X, _ = datasets.load_digits(args.digits, args.per_class, **bz)
        return X, f"embedded MNIST test-split digits {','.join(map(str, args.digits))} ({len(X)} images)"
    path = Path(args.data)
    if path.is_dir() and any(path.glob("*-idx3-ubyte*")):
        split = (
            "train"
            if any(path.glob("train-images-idx3-ubyte*")) and not any(path.glob("t10k-images*"))
            else "test"
        )
        X, _ = datasets.load_digits(args.digits, args.per_class, split=split, directory=path, **bz)
        return X, f"MNIST {split} digits {','.join(map(str, args.digits))} from {path} ({len(X)} images)"
    X = datasets.load_binary(path, key=args.key, **bz)
    return X, f"{path} ({X.shape[0]} rows of {X.shape[1]} bits)"


def _binarization(args: argparse.Namespace) -> dict[str, Any]:
    """The keywords of the datasets' binarization from ``--threshold``, ``--binarize`` and ``--binarize-seed``."""
    method = getattr(args, "binarize", "threshold")
    threshold, seed = getattr(args, "threshold", None), getattr(args, "binarize_seed", None)
    if method == "stochastic":
        if threshold is not None:
            raise ValueError(
                "--threshold applies to --binarize threshold only (stochastic: on with probability gray/255)"
            )
        return {"threshold": None, "binarize": "stochastic", "seed": 0 if seed is None else seed}
    if seed is not None:
        raise ValueError("--binarize-seed applies to --binarize stochastic only")
    return {"threshold": THRESHOLD if threshold is None else threshold, "binarize": "threshold", "seed": None}


#: The Machine settings that ``nemm train`` has options for (``--hidden``, ...: the table's flags).
_TRAIN_SETTINGS = [s.name for s in MACHINE_SETTINGS if s.flag is not None]
#: Those ``nemm reproduce`` passes on to its machines.
_REPRODUCE_SETTINGS = [
    "n_hidden",
    "hidden",
    "normalization",
    "centered",
    "n_chains",
    "chain_steps",
    "learning_rate",
]


def _given_options(
    args: argparse.Namespace, parser: argparse.ArgumentParser, allowed: Sequence[str]
) -> list[str]:
    """The options given on the command line apart from ``allowed`` (settings options are absent unless given)."""
    return [
        a.option_strings[0]
        for a in parser._actions
        if a.option_strings
        and a.dest not in allowed
        and a.dest in vars(args)
        and (a.default is argparse.SUPPRESS or getattr(args, a.dest) != a.default)
    ]


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a machine on binary data",
        description="Train a nonequilibrium Markov machine; the settings left out are chosen by its "
        "training recipe (--recipe: auto by default, or the paper's protocol).",
    )
    p.add_argument(
        "data",
        nargs="?",
        help=".npy/.npz of 0/1 rows, an MNIST IDX directory or a folder of PNGs "
        "(default: the embedded digits 0, 1, 2)",
    )
    p.add_argument("--key", default=None, help=_KEY_HELP)
    add_options(p, MACHINE_SETTINGS, _TRAIN_SETTINGS)
    p.add_argument("--seed", type=int, default=0, help="random_state of the machine (default 0)")
    p.add_argument(
        "--digits",
        type=_digits,
        default=DIGITS,
        help=f"digits for MNIST data (default {','.join(map(str, DIGITS))})",
    )
    p.add_argument(
        "--per-class", type=int, default=PER_CLASS, help=f"first N of each digit (default {PER_CLASS})"
    )
    p.add_argument(
        "--threshold",
        type=_threshold,
        default=None,
        help=f"binarization threshold for images: pixel > threshold -> 1 (default {THRESHOLD})",
    )
    p.add_argument(
        "--binarize",
        choices=("threshold", "stochastic"),
        default="threshold",
        help="how gray images become bits: the threshold (default) or stochastic, each pixel on with "
        "probability gray/255 (the binarized-MNIST convention of the literature)",
    )
    p.add_argument(
        "--binarize-seed",
        type=int,
        default=None,
        help="seed of the stochastic binarization (default 0)",
    )
    p.add_argument("--out", default="model.npz", help="model file to write (default model.npz)")
    p.add_argument("--no-ceiling", action="store_true", help="skip the EM mixture log-likelihood ceiling")
    p.add_argument(
        "--max-states",
        type=_positive_int,
        default=LNP_MAX_STATES,
        metavar="N",
        help=f"print ln p only for at most N hidden states (default {LNP_MAX_STATES})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="TOML file with [model], [train], [data], [diagnostics], "
        "[baselines] tables (one grid point, one seed); replaces the settings options",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="K",
        help="save the whole training state to --out every K epochs (atomically), so that "
        "--resume can continue the run exactly after a crash (default 0: only at the end)",
    )
    p.add_argument(
        "--resume",
        metavar="MODEL",
        help="continue the run saved in MODEL (a checkpoint or a finished "
        "model) to the number of epochs it was started with, on the data and with the settings "
        "recorded in it, bit for bit as if it had never stopped; writes the result back to MODEL",
    )
    p.set_defaults(func=_run_train, train_parser=p)


# Options that may accompany --resume: the rest are recorded in the model file.
_RESUME_OPTIONS = ("help", "resume", "quiet", "no_ceiling", "checkpoint_every", "max_states")


def _train_in_pieces(m: Machine, X: np.ndarray, out: str, every: int) -> None:
    """Train m to its n_epochs, saving the whole training state to out after every K-th epoch.

    Interrupted (Ctrl-C, SIGTERM, SIGHUP), the engine stops at the end of the last complete
    epoch; with checkpoints that state is saved to out, so that ``--resume`` continues it.
    """
    n_epochs = m.training_settings(X.shape[0])["n_epochs"]
    while getattr(m, "epochs_done_", 0) < n_epochs:
        done = getattr(m, "epochs_done_", 0)
        k = n_epochs - done if every <= 0 else min(every - done % every, n_epochs - done)
        try:
            m.partial_fit(X, n_epochs=k)  # the same numbers as fit, continued exactly across pieces
        except KeyboardInterrupt as exc:
            if every <= 0 or not getattr(m, "epochs_done_", 0):
                raise
            m.save(out)
            raise KeyboardInterrupt(
                f"{exc or 'interrupted'}; the training state after epoch {m.epochs_done_} is saved in "
                f"{_model_path(out)}: continue it with nemm train --resume {_model_path(out)}"
            ) from exc
        if every > 0 and m.epochs_done_ < n_epochs:
            m.save(out)


def _resume_train(args: argparse.Namespace) -> int:
    from nemm.machine import _data_checksum, load

    given = _given_options(args, args.train_parser, _RESUME_OPTIONS)
    if args.data is not None or given:
        raise ValueError(
            f"--resume continues with the data and settings recorded in {args.resume}; "
            f"do not give {', '.join(given) or 'DATA'}"
        )
    if args.checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be at least 0, got {args.checkpoint_every}")
    m = load(args.resume)
    source = getattr(m, "_data_source", None)
    if not source or not hasattr(m, "_batches"):
        raise ValueError(
            f"{args.resume} holds no resumable training run (it was not written by nemm train "
            "with this version)"
        )
    data_args = argparse.Namespace(
        data=source.get("data"),
        digits=tuple(source.get("digits", DIGITS)),
        per_class=source.get("per_class", PER_CLASS),
        threshold=source.get("threshold"),
        binarize=source.get("binarize", "threshold"),
        binarize_seed=source.get("binarize_seed"),
        key=source.get("key"),
    )
    X, desc = _load_training_data(data_args)
    if _data_checksum(X) != m._train_data_sha:
        raise ValueError(
            f"the training data recorded in {args.resume} ({desc}) has changed since the run "
            "started: it cannot be resumed exactly"
        )
    every = args.checkpoint_every or int(source.get("checkpoint_every", 0))
    print(f"data: {desc}")
    print(
        f"resuming {args.resume} at epoch {m.epochs_done_} of {m.training_settings(X.shape[0])['n_epochs']}"
    )
    m.set_params(verbose=not args.quiet)
    t0 = time.perf_counter()
    _train_in_pieces(m, X, args.resume, every)
    return _report_training(m, X, args.resume, time.perf_counter() - t0, args.no_ceiling, args.max_states)


def _run_train(args: argparse.Namespace) -> int:
    from nemm import Machine

    # Before the data are read and an hour is spent training: the model file must be writable.
    _refuse_directory(args.out, "model.npz")
    _check_output_file(_model_path(args.out))
    if args.config is not None:
        # The file holds every setting: an option beside it would be silently overridden.
        given = _given_options(args, args.train_parser, ("help", "config", "out", "quiet", "no_ceiling"))
        if args.data is not None or given:
            raise ValueError(
                f"--config holds the settings and the data; {', '.join(given) or 'DATA'} cannot be "
                "given beside it (put the setting in its tables)"
            )
        return _train_from_config(args.config, args.out, progress=not args.quiet)
    if args.resume is not None:
        return _resume_train(args)
    if args.checkpoint_every < 0:
        raise ValueError(f"--checkpoint-every must be at least 0, got {args.checkpoint_every}")
    X, desc = _load_training_data(args)
    print(f"data: {desc}")
    m = Machine(**given_settings(args, MACHINE_SETTINGS), random_state=args.seed, verbose=not args.quiet)
    # Recorded in the model file, so that --resume finds the same data again.
    m._data_source = {
        "data": None if args.data is None else str(Path(args.data).resolve()),
        "digits": list(args.digits),
        "per_class": args.per_class,
        "threshold": args.threshold,
        "binarize": args.binarize,
        "binarize_seed": args.binarize_seed,
        "key": args.key,
        "checkpoint_every": args.checkpoint_every,
    }
    t0 = time.perf_counter()
    if args.checkpoint_every > 0:
        _train_in_pieces(m, X, args.out, args.checkpoint_every)
    else:
        m.fit(X)
    return _report_training(m, X, args.out, time.perf_counter() - t0, args.no_ceiling, args.max_states)


def _train_from_config(path: str, out: str, *, progress: bool = True) -> int:
    """``nemm train --config FILE``: train the one grid point of FILE, save it, print its measures.

    Raises
    ------
    ConfigError
        If the file has grid axes or several seeds (that is a sweep: ``nemm sweep``).
    """
    from nemm.config import ConfigError, load_config
    from nemm.machine import Machine
    from nemm.sweep import baseline_values, data_checksum, expand, load_data, machine_kwargs, measure

    cfg = load_config(path)
    if cfg.axes or len(cfg.seeds) > 1:
        what = [f"{k} ({len(v)} values)" for k, v in cfg.axes] + (
            [f"{len(cfg.seeds)} seeds"] if len(cfg.seeds) > 1 else []
        )
        raise ConfigError(
            f"{cfg.source}: `nemm train --config` trains one machine, but the file has "
            f"{', '.join(what)}; run it with `nemm sweep`"
        )
    X, y, desc = load_data(cfg.data)
    print(f"data: {desc}")
    (spec,) = expand(cfg, data_checksum(X, y))
    m = Machine(**machine_kwargs(spec.settings), verbose=progress)
    t0 = time.perf_counter()
    m.fit(X)
    seconds = time.perf_counter() - t0
    saved = m.save(out)
    print(f"trained {m.training_settings_['n_epochs']} epochs in {seconds:.2f} s; model written to {saved}")
    values = measure(m, X, y if "class_kl" in spec.diagnostics["measures"] else None, spec.diagnostics)
    values.update(baseline_values(spec, X))
    for k, v in values.items():
        print(f"{k}: {v!r}")  # repr: the same digits as results.csv
    return 0


def _report_training(
    m: Machine, X: np.ndarray, out: str, seconds: float, no_ceiling: bool, max_states: int = LNP_MAX_STATES
) -> int:
    path = m.save(out)
    print(f"trained {m.epochs_done_} epochs in {seconds:.2f} s; model written to {path}")
    print(f"log-likelihood (on-the-fly estimate, last epoch): {m.history_['loglik'][-1]:.2f} nats/point")
    what = "log-likelihood (from a 1e5-step occupancy, appendix A3)"
    if m.n_states <= max_states:
        print(f"{what}: {m.score(X):.2f} nats/point")
    else:  # say why, never print nan
        print(
            f"{what}: skipped: 2^{m.n_hidden} = {m.n_states} hidden states exceed the limit of "
            f"{max_states} states summed over; raise it with --max-states"
        )
    if not no_ceiling and m.hidden == "onehot":
        ceiling = _em_ceiling(m, X, out, verbose=m.verbose)
        print(f"EM ceiling (mixture of {m.n_hidden} product-Bernoullis): {ceiling:.2f} nats/point")
    return 0


#: EM runs of the ceiling that ``nemm train`` prints.
_CEILING_RESTARTS = 3


def _em_ceiling(m: Machine, X: np.ndarray, out: str, *, verbose: bool) -> float:
    """The EM ceiling of m's training data: the one recorded with the run in ``out``, else fitted.

    A fitted ceiling is recorded with the training run (``m._data_source``) and the model saved
    again, so that ``--resume`` of a finished or checkpointed run does not fit it again.
    """
    from nemm.baselines import fit_em_ceiling

    key = {
        "n_components": m.n_hidden,
        "n_init": _CEILING_RESTARTS,
        "random_state": m.random_state,
        "data_sha256": m._train_data_sha,
    }
    source = m._data_source
    stored = source.get("em_ceiling") if source is not None else None
    if isinstance(stored, dict) and all(stored.get(k) == v for k, v in key.items()):
        return float(stored["log_likelihood"])
    ceiling = fit_em_ceiling(
        X, m.n_hidden, n_init=_CEILING_RESTARTS, random_state=m.random_state, verbose=verbose
    )
    if source is not None:
        source["em_ceiling"] = {**key, "log_likelihood": ceiling}
        m.save(out)
    return ceiling


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train and diagnose a grid of machines from a TOML config",
        description="Run every grid point x seed of CONFIG (resumable: finished runs are skipped).",
    )
    p.add_argument(
        "config",
        metavar="CONFIG",
        help="TOML file: [model], [train], [sweep], [data], [diagnostics], "
        "[baselines]; a list value is a grid axis",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR", help="sweep directory (runs/, results.csv, report.md)"
    )
    p.add_argument(
        "--workers", type=int, default=None, metavar="N", help="local worker processes (default: all cores)"
    )
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_sweep)


def _run_sweep(args: argparse.Namespace) -> int:
    from nemm.config import load_config
    from nemm.sweep import run_sweep

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        raise ValueError(
            "--workers sets local processes; with --scheduler the cluster's workers run the sweep"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():  # before the data are read and the runs start
        raise NotADirectoryError(
            errno.ENOTDIR, f"--out {out} exists and is not a directory; a sweep writes a directory there"
        )
    _writable_directory(out, f"--out {out}")
    res = run_sweep(
        load_config(args.config),
        args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet,
    )
    print(
        f"{len(res.rows)} runs ({res.n_skipped} already done, {res.n_run} run now) in {res.seconds:.1f} s; "
        f"table in {res.out / 'results.csv'}"
    )
    if res.n_errors:
        _fail(f"{res.n_errors} of {len(res.rows)} runs failed (see the error column of results.csv)")
        return 1
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="draw visible samples from a saved machine",
        description="Draw visible samples from the stationary state of a saved model's chain "
        "(independent chains in parallel, each burnt in, then thinned).",
    )
    p.add_argument("model", help="a model file written by Machine.save / nemm train")
    p.add_argument(
        "-n", "--n-samples", type=int, default=16, metavar="N", help="samples to draw (default 16)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling chains (default 0)")
    p.add_argument(
        "--burn-in",
        type=int,
        default=1000,
        metavar="STEPS",
        help="double steps (z -> x -> z) each chain discards before its first sample (default 1000)",
    )
    p.add_argument(
        "--thin",
        type=int,
        default=10,
        metavar="STEPS",
        help="double steps between two samples of one chain (default 10)",
    )
    p.add_argument(
        "--out", default="samples.npy", help=".npy file of 0/1 rows to write (default samples.npy)"
    )
    p.set_defaults(func=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from nemm import load
    from nemm._io import atomic_open

    _refuse_directory(args.out, "samples.npy")
    _check_output_file(args.out)
    m = load(args.model)
    X = m.sample(args.n_samples, burn_in=args.burn_in, thin=args.thin, seed=args.seed)
    out = Path(args.out)
    with atomic_open(out) as fh:
        np.save(fh, X)
    print(f"{len(X)} samples of {X.shape[1]} bits written to {out}")
    return 0


def _load_labelled(
    path: str, labels: str | None, key: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """--data (any format of nemm.datasets.load_binary) and --labels (.npy of integers)."""
    from nemm.datasets import load_binary, load_npy

    X = load_binary(path, key=key)
    return X, (load_npy(labels) if labels is not None else None)


# --------------------------------------------------------------------------- diagnose


def _add_diagnose(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diagnose",
        help="nonequilibrium diagnostics of a saved machine",
        description="Entropy production, decorrelation time, Tr(M)/L, class KL and ln p of a saved machine.",
    )
    p.add_argument("model", help="a model file written by Machine.save / nemm train")
    p.add_argument("--json", action="store_true", help="print the full diagnostics as JSON")
    p.add_argument(
        "--data",
        default=None,
        help="data for ln p and the class KL (.npy/.npz, IDX dir, PNG folder); default: the "
        "embedded digits 0, 1, 2 when the model has 784 visible units",
    )
    p.add_argument("--labels", default=None, help=".npy of integer labels for --data (class KL)")
    p.add_argument("--key", default=None, help=_KEY_HELP)
    p.add_argument("--no-data", action="store_true", help="chain diagnostics only")
    p.add_argument(
        "--steps",
        type=int,
        default=DIAGNOSTIC_STEPS,
        help=f"steps per chain (4 chains; default {DIAGNOSTIC_STEPS})",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the diagnostic chains")
    p.set_defaults(func=_run_diagnose)


def diagnosis_text(d: Diagnosis, path: str, data_desc: str | None) -> str:
    """The human-readable summary printed by ``nemm diagnose``."""
    from nemm.reproduce.regimes import classify_regime
    from nemm.reproduce.report import fmt, fmt_pm

    L = d.L
    what = (
        "RBM (equilibrium baseline, its Gibbs chain)"
        if d.kind == "rbm"
        else "tied machine"
        if d.machine.get("tied")
        else "untied"
    )
    lines = [f"model: {path} ({d.n_visible} visible, {d.n_states} hidden states, {what})"]
    sp = d.sampling
    lines.append(
        f"chains: {sp['n_chains']} x {sp['n_steps']} steps (burn-in {sp['burn_in']}), "
        f"error bars over {sp['n_segments']} time windows"
    )
    if d.sigma_method:
        conv = (
            "converged: a quarter of the effort agrees"
            if d.sigma_converged
            else f"NOT converged: about effort {fmt(d.sigma_effort_needed)} needed"
        )
        lines.append(
            f"entropy production sigma (eq. 21, the tiny entries of M by importance sampling, method "
            f"{d.sigma_method}, "
            f"effort {fmt(d.sigma_effort)}): {fmt_pm(d.sigma, d.sigma_err)} nats/step ({conv})"
        )
    lines.append(
        f"sigma_counting (the paper's estimator, counting transitions, {sp['n_chains']} x {sp['n_steps']} "
        f"steps): {fmt_pm(d.sigma_counting, d.sigma_counting_err)} nats/step "
        f"({d.n_one_way} one-way pair(s), pseudo-count {d.pseudocount}; "
        f"{fmt(d.sigma_two_way)} over two-way pairs only)"
    )
    if d.sigma_rao_blackwell is not None:
        conv = "converged" if d.sigma_rao_blackwell_converged else "NOT converged"
        lines.append(
            f"sigma_rao_blackwell (eq. 21 on the plain Rao-Blackwell M, biased high): "
            f"{fmt_pm(d.sigma_rao_blackwell, d.sigma_rao_blackwell_err)} nats/step "
            f"({d.rao_blackwell_draws} draws per state; {conv} against the number of draws)"
        )
    if d.dominant_cycle is not None:
        if d.dominant_cycle:
            cyc = " -> ".join(str(z) for z in d.dominant_cycle + d.dominant_cycle[:1])
            lines.append(
                f"dominant cycle: {cyc}; affinity ln prod M(fwd)/M(bwd) = {fmt(d.cycle_affinity)}, "
                f"current {fmt(d.cycle_current)} per step"
            )
        else:
            lines.append("dominant cycle: none (no probability current: detailed balance)")
    if d.currents is not None and d.n_states <= 16:
        lines.append(
            "probability currents J(z', z) = pbar(z') M(z', z) - pbar(z) M(z, z') (Rao-Blackwell M):"
        )
        for row in d.currents:
            lines.append("  " + " ".join(f"{v:+8.5f}" for v in row))
    lines.append(f"decorrelation time tau (eq. 23): {fmt_pm(d.tau, d.tau_err)} steps")
    lines.append(
        f"mean self-transition Tr(M)/L (eq. 24): {fmt_pm(d.self_transition, d.self_transition_err)} "
        f"(random: {d.random_self_transition:.3f})"
        + (
            f"; on the Rao-Blackwell M: {fmt(d.self_transition_rao_blackwell)}"
            if d.self_transition_rao_blackwell is not None
            else ""
        )
    )
    if d.n_states <= 16 and d.M is not None:
        lines.append("occupancy: " + " ".join(f"{p:.3f}" for p in d.occupancy))
        lines.append("M (row: state, column: next state):")
        for row, occ in zip(d.M, d.occupancy):
            if np.isnan(row).any():  # no transition out was seen: the row is unknown, not made up
                lines.append("  unknown (" + ("never left" if occ > 0 else "never visited") + ")")
            else:
                lines.append("  " + " ".join(f"{v:5.3f}" for v in row))
    if d.loglik_exact is not None:
        how = "exact, ln Z by enumeration" if d.kind == "rbm" else "exact given the occupancy"
        lines.append(f"log-likelihood on {data_desc}: {d.loglik_exact:.3f} nats/point ({how})")
    if d.loglik_on_the_fly is not None:
        lines.append(f"log-likelihood, last training epoch (on-the-fly estimate): {d.loglik_on_the_fly:.3f}")
    ck = d.class_kl
    if ck is not None:
        lines.append(
            f"class KL (eq. 22): {fmt(ck.kl)} nats; P_data {np.round(ck.p_data, 3).tolist()}, "
            f"P_model {np.round(ck.p_model, 3).tolist()}, lost mass {ck.lost_mass:.3g}"
        )
    if L == d.n_states and d.sigma_method:
        lines.append(f"regime: {classify_regime(d.sigma, d.sigma_err, d.tau, d.self_transition, L)}")
    return "\n".join(lines)


def _run_diagnose(args: argparse.Namespace) -> int:
    from nemm import load
    from nemm.diagnostics import diagnose
    from nemm.results import to_json

    if args.steps < 4:  # two time windows of two steps: the fewest that give error bars
        raise ValueError(
            f"--steps must be at least 4 (the error bars need 2 time windows of 2 steps); "
            f"got {args.steps}, the paper uses 100000"
        )
    m = load(args.model)
    X = y = None
    desc = None
    if not args.no_data:
        if args.data is not None:
            X, y = _load_labelled(args.data, args.labels, args.key)
            desc = str(args.data)
        elif m.n_visible_ == 784:
            from nemm.datasets import embedded_digits

            X, y = embedded_digits()
            desc = "the embedded digits 0, 1, 2"
    # Ten windows for the error bars, fewer for short runs (each window needs 2 steps).
    d = diagnose(m, X, y, n_steps=args.steps, seed=args.seed, n_segments=min(10, args.steps // 2))
    print(to_json(d, indent=1) if args.json else diagnosis_text(d, args.model, desc))
    return 0


# --------------------------------------------------------------------------- reproduce


def _add_reproduce_chain_options(p: argparse.ArgumentParser) -> None:
    """The lengths of the chains that measure the reproduction's models (absent unless given)."""
    from nemm.reproduce.driver import ReproduceOptions

    no, o = argparse.SUPPRESS, ReproduceOptions()
    for flag, what, value in (
        ("--track-every", "track sigma/tau/ln p every N epochs during training (0: off", o.track_every),
        ("--track-steps", "chain steps per tracking point (", o.track_steps),
        ("--diag-steps", "chain steps of the final diagnostics, over 2 chains (", o.diag_steps),
    ):
        sep = "; " if what.endswith("off") else ""
        p.add_argument(flag, type=int, default=no, help=f"{what}{sep}default {value})")


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    from nemm.reproduce.driver import PROTOCOL

    # Every option that sets a ReproduceOptions field is absent unless given: the defaults live there.
    no = argparse.SUPPRESS

    def default(name: str) -> str:
        full, quick = PROTOCOL[name]
        return f"default {full}; quick {quick}"

    p = sub.add_parser(
        "reproduce",
        help="reproduce the paper's section IV (table, figures, report)",
        description="Reproduce the paper's section IV (table, figures, report).",
    )
    p.add_argument("--out", default="nemm-report", help="output directory (default nemm-report)")
    p.add_argument(
        "--quick",
        action="store_true",
        default=no,
        help=f"demo: {PROTOCOL['seeds'][1]} seeds x {PROTOCOL['n_epochs'][1]} epochs, "
        f"{PROTOCOL['em_restarts'][1]} EM restarts, {PROTOCOL['rbm_seeds'][1]} RBM and "
        f"{PROTOCOL['tied_seeds'][1]} tied seed, shorter chains (under a minute on 2 cores)",
    )
    p.add_argument("--seeds", type=int, default=no, help=f"number of seeds ({default('seeds')})")
    p.add_argument(
        "--epochs",
        dest="n_epochs",
        type=int,
        default=no,
        metavar="EPOCHS",
        help=f"epochs per machine ({default('n_epochs')})",
    )
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    add_options(p, MACHINE_SETTINGS, _REPRODUCE_SETTINGS)
    p.add_argument(
        "--recipe",
        choices=("paper", "auto"),
        default=no,
        help="the machines' training recipe: the paper's protocol (default) or auto (nemm.recipes)",
    )
    p.add_argument(
        "--compare",
        choices=("normalization", "recipe"),
        default=no,
        help="run the machines once per value of this setting, side by side in one report",
    )
    p.add_argument(
        "--mixing-steps",
        type=int,
        default=no,
        help=f"samples of every model's mixing chain ({default('mixing_steps')})",
    )
    p.add_argument(
        "--data",
        default=None,
        help=".npy/.npz of 0/1 rows, an MNIST IDX directory or a PNG folder "
        "(default: the embedded digits 0, 1, 2)",
    )
    p.add_argument("--labels", default=None, help=".npy of integer labels for --data (for the class KL)")
    p.add_argument("--key", default=None, help=_KEY_HELP)
    _add_reproduce_chain_options(p)
    p.add_argument(
        "--em-restarts", type=int, default=no, help=f"EM restarts ({default('em_restarts')}; 0: none)"
    )
    p.add_argument(
        "--rbm-seeds",
        type=int,
        default=no,
        help=f"seeds of the equilibrium RBM, nemm.RBM with its defaults ({default('rbm_seeds')}; 0: none)",
    )
    p.add_argument(
        "--tied-seeds",
        type=int,
        default=no,
        help=f"seeds of the tied machine trained by eqs. 16-17 ({default('tied_seeds')}; 0: none)",
    )
    p.add_argument("--no-figures", action="store_true", help="skip the figures (no matplotlib needed)")
    p.add_argument("--quiet", action="store_true", help="no console output")
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the TOML configuration of this reproduction and exit: `nemm sweep FILE --out DIR` "
        "runs it into the same table",
    )
    p.set_defaults(func=_run_reproduce)


def _reproduce_options(args: argparse.Namespace) -> ReproduceOptions:
    """The ReproduceOptions of the options given (the others keep their defaults)."""
    import dataclasses

    from nemm.reproduce import ReproduceOptions

    return ReproduceOptions(
        **{
            f.name: getattr(args, f.name)
            for f in dataclasses.fields(ReproduceOptions)
            if hasattr(args, f.name)
        }
    )


def _check_reproduce_chains(args: argparse.Namespace) -> None:
    """``--diag-steps`` (over 2 chains) and ``--track-steps``: long enough for the error bars' time windows."""
    from nemm.config import MIN_CHAIN_STEPS

    for flag, dest, least in (
        ("--diag-steps", "diag_steps", 2 * MIN_CHAIN_STEPS["diagnostic_steps"]),
        ("--track-steps", "track_steps", MIN_CHAIN_STEPS["track_steps"]),
    ):
        if getattr(args, dest, least) < least:
            raise ValueError(
                f"{flag} must be at least {least} (the error bars cut the chains into time windows of "
                f"2 steps or more), got {getattr(args, dest)}"
            )


def _run_reproduce(args: argparse.Namespace) -> int:
    from nemm.reproduce import reproduce, reproduce_config

    _check_reproduce_chains(args)

    if args.print_config:
        if args.data is not None and (
            args.labels is not None or args.key is not None or not str(args.data).lower().endswith(".npy")
        ):
            raise ValueError(
                "--print-config writes --data as the [data] path of the sweep, which reads it the "
                "same way only for an .npy file of 0/1 rows without --labels/--key"
            )
        sys.stdout.write(reproduce_config(_reproduce_options(args), data_path=args.data))
        return 0

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            f"--out {out} exists and is not a directory; reproduce writes a report directory there",
        )
    _writable_directory(out, f"--out {out}")
    data = _load_labelled(args.data, args.labels, args.key) if args.data is not None else None
    reproduce(
        args.out,
        _reproduce_options(args),
        n_jobs=args.jobs,
        data=data,
        progress=not args.quiet,
        figures=not args.no_figures,
    )
    return 0


# --------------------------------------------------------------------------- bench


def _add_bench(sub: argparse._SubParsersAction) -> None:
    from nemm import _bench

    p = sub.add_parser(
        "bench",
        help="a short measurement of the installed engine",
        description="a short measurement of the installed engine (bench/ holds the full suite)",
    )
    _bench.add_arguments(p)
    p.set_defaults(func=_bench.run)


def _fail(message: str) -> int:
    print(f"nemm: error: {message}", file=sys.stderr)
    return 2


#: What bad input, a missing or unwritable file, or an environment lacking something raises: one
#: line, no traceback. Anything else (AssertionError, KeyError, ...) would be a bug and stays loud.
_USER_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    MemoryError,
    FloatingPointError,  # training diverged: the message names the step and what to lower
    EOFError,
    RuntimeError,
    ImportError,
    zipfile.BadZipFile,
)


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line, without Python's ``[Errno N]`` prefix."""
    if isinstance(exc, OSError) and exc.strerror:
        names = [os.fsdecode(f) for f in (exc.filename, exc.filename2) if f is not None]
        text = f"{' -> '.join(names)}: {exc.strerror}" if names else exc.strerror
    elif isinstance(exc, MemoryError) and not str(exc):
        text = "out of memory (ask for less: fewer samples, steps, chains or hidden units)"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def build_parser() -> argparse.ArgumentParser:
    """The ``nemm`` argument parser with every subcommand."""
    from nemm import __version__

    parser = _Parser(
        prog="nemm", description="The nonequilibrium Markov machine (Baiesi and Rosso, arXiv:2512.11415)."
    )
    parser.add_argument("--version", action="version", version=f"nemm {__version__}")
    parser.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of an error instead of one line (also NEMM_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_sample(sub)
    _add_sweep(sub)
    _add_diagnose(sub)
    _add_reproduce(sub)
    _add_bench(sub)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP turned into the interruption Ctrl-C gives, so that work stops the same way."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _termination_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP (batch schedulers, ``timeout``, a closed terminal) raise as Ctrl-C does.

    A sweep then stops its workers and keeps its finished runs, training stops at the end
    of an epoch (saving its checkpoint with ``--checkpoint-every``); the exit is one line.
    A signal someone else already handles or ignores (``nohup``) is left alone.
    """
    old: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
                old[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _interrupt_status(exc: BaseException) -> int:
    """128 + the number of the signal that interrupted (SIGINT unless SIGTERM/SIGHUP), as shells report it."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, _Terminated):
            return 128 + seen.signum
        seen = seen.__cause__ or seen.__context__
    return 128 + int(signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nemm`` with ``argv`` (default: the process arguments); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed on one line)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 1
    debug = args.traceback or os.environ.get("NEMM_DEBUG", "") not in ("", "0")
    try:
        with _termination_interrupts():
            return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        if debug:
            raise
        _fail(_one_line(exc) if str(exc) else "interrupted")
        return _interrupt_status(exc)
    except BrokenPipeError:  # `nemm diagnose ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except _USER_ERRORS as exc:
        if debug:
            raise
        return _fail(_one_line(exc))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
