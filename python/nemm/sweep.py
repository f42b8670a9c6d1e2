"""Sweeps: many trainings from one configuration, on local cores or a Dask cluster, resumable.

``run_sweep(config, out)`` expands the grid of a :class:`~nemm.config.SweepConfig`
(the cartesian product of its list-valued keys, times the seeds) into
:class:`RunSpec` objects, trains and measures every run that is not finished yet,
and writes::

    DIR/runs/<run id>/model.npz     the trained machine
    DIR/runs/<run id>/result.json   settings, measures, timings (written last: it marks a finished run)
    DIR/results.csv                 one row per run, in grid order
    DIR/report.md, DIR/summary.png  a summary per grid point, each measure against each swept axis

A run id is a hash of everything that determines its result: the full Machine
settings, the seed, the diagnostics and baselines settings, the data's checksum
and the nemm version. Runs are independent tasks: workers compute and return the
result and the model file's bytes, and only the driver writes files, so a cluster
needs no shared file system, and a run is found either whole or not at all.

What a run measures and what the sweep writes belong to its report kind
(``[diagnostics] report``): ``"sweep"`` (the measures' columns, report.md and
summary.png) is defined here; an application above the sweep registers its own
with :func:`register_report_kind` (``"reproduce"``: :mod:`nemm.reproduce`), as models
register their file formats with :func:`nemm.model_file.register_format`. The sweep
never imports an application: a configuration naming a kind that is not registered
yet imports the module :data:`nemm.config.REPORT_MODULES` lists for it.

A run that raises is recorded (``status = "error"`` and its ``error``; this is
final, like a success: delete its folder to retry it). A run whose worker died
(a killed process, a lost Dask worker) is run again once on new workers; lost
twice, it appears as an error in the table but writes no ``result.json``, so the
next invocation runs it again.

One sweep at a time runs in a directory: a second one waits for the first's lock
(:data:`LOCK_FILE`), then skips the runs it finished. Ctrl-C, SIGTERM or SIGHUP (as
``nemm`` installs them) stop the workers at once, keep every finished run, write
results.csv of those and raise :class:`SweepInterrupted`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nemm._backends import run_dask, run_local, worker_pool
from nemm._io import atomic_open
from nemm._seeds import derive_seed
from nemm._settings import DIGITS, MIXING_STEPS, PER_CLASS
from nemm._sweep_report import report_markdown as _report
from nemm._sweep_report import summary_figure as _summary_figure
from nemm.config import REPORT_MODULES, DataConfig, SweepConfig
from nemm.machine import ENUMERATION_LIMIT
from nemm.results import csv_text
from nemm.training import _data_checksum as data_checksum

__all__ = [
    "RunSpec",
    "RunList",
    "ReportKind",
    "SweepOutput",
    "SweepResult",
    "SweepInterrupted",
    "LOCK_FILE",
    "register_report_kind",
    "report_kind",
    "run_sweep",
    "run_one",
    "expand",
    "load_data",
    "data_checksum",
    "run_id",
    "result_columns",
    "machine_settings",
    "machine_kwargs",
    "measure",
    "baseline_values",
    "ENUMERABLE_STATES",
    "worker_pool",
]

#: Largest hidden space whose ln p is computed (exact given the chain's occupancy, appendix A3).
ENUMERABLE_STATES = ENUMERATION_LIMIT

# Columns each measure adds to results.csv, in this order.
_MEASURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "loglik": ("loglik",),
    # The headline sigma (nemm.diagnostics.entropy_production_rate) and the paper's counting estimator.
    "sigma": (
        "sigma",
        "sigma_err",
        "sigma_converged",
        "sigma_method",
        "sigma_counting",
        "sigma_counting_err",
        "n_one_way",
    ),
    "tau": ("tau", "tau_err"),
    "trace": ("trace", "trace_err"),
    "class_kl": ("class_kl",),
    "mixing": ("tau_int_class", "cover_time", "class_kl_samples"),
}
# Runs are submitted longest first (the EM mixture's restarts, then the tied machines, the seeds and the RBMs),
# so that the pool's tail is short; the rest in grid order.
_SUBMIT_ORDER = {"mixture": 0, "tied": 1, "nemm": 2, "rbm": 3}

# --------------------------------------------------------------------------- data


def load_data(data: DataConfig) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The training data of a ``[data]`` table: ``(X, y or None, description)``."""
    from nemm import datasets

    y: np.ndarray | None  # labels: the MNIST digits, or the "y" of an .npz (if any)

    if data.path is None or (data.path.is_dir() and any(data.path.glob("*-idx1-ubyte*"))):
        # "all": the ten digits (the full test split is 10,000 images, read from NEMM_DATA or the cache).
        digits = tuple(range(10)) if data.all_digits else (data.digits if data.digits is not None else DIGITS)
        per_class = (
            None if data.all_per_class else (data.per_class if data.per_class is not None else PER_CLASS)
        )
        if data.path is None:
            X, y = datasets.load_digits(digits, per_class, split=data.split or "test", **data.binarization())
            where = "embedded/cached MNIST"
        else:
            split = data.split or ("test" if any(data.path.glob("t10k-images*")) else "train")
            X, y = datasets.load_digits(
                digits, per_class, split=split, directory=data.path, download=False, **data.binarization()
            )
            where = f"MNIST {split} split in {data.path}"
        return X, y, f"{where}, digits {','.join(map(str, digits))} ({len(X)} images)"
    X = datasets.load_binary(data.path, **data.binarization())
    y = None
    if data.path.suffix.lower() == ".npz":
        with np.load(data.path, allow_pickle=False) as z:
            if "y" in z.files:
                y = np.asarray(z["y"])
                if y.shape != (len(X),):
                    raise ValueError(f"{data.path}: labels y have shape {y.shape}, expected ({len(X)},)")
    if data.digits is not None or data.per_class is not None or (data.all_digits and y is not None):
        if y is None:
            raise ValueError(
                f"{data.path}: [data] digits/per_class select by label, but the file has no labels y"
            )
        X, y = datasets.select_digits(
            X, y, data.digits if data.digits is not None else np.unique(y).tolist(), data.per_class
        )
    return (
        X,
        y,
        f"{data.path} ({X.shape[0]} rows of {X.shape[1]} bits{', labelled' if y is not None else ''})",
    )


# --------------------------------------------------------------------------- run specs


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep.

    Attributes
    ----------
    index : int
        Position in grid order (grid points in product order, seeds fastest).
    settings : dict
        Every Machine keyword of the run (defaults filled in), ``random_state`` included.
    swept : dict
        The values of the grid axes and ``seed`` (the leading columns of results.csv).
    seed : int
    diagnostics, baselines : dict
        The ``[diagnostics]`` and ``[baselines]`` settings.
    data_checksum : str
    run_id : str
    kind : str
        "nemm" (a grid point's machine), or, with ``report = "reproduce"``, "rbm", "tied"
        or "mixture" (``settings`` are then those of that model).
    """

    index: int
    settings: dict[str, Any]
    swept: dict[str, Any]
    seed: int
    diagnostics: dict[str, Any]
    baselines: dict[str, Any]
    data_checksum: str
    run_id: str = field(default="")
    kind: str = "nemm"


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def run_id(
    settings: Mapping[str, Any],
    diagnostics: Mapping[str, Any],
    baselines: Mapping[str, Any],
    checksum: str,
    version: str | None = None,
) -> str:
    """A 16-hex-digit hash of a run's full settings, the data's checksum and the nemm version."""
    if version is None:
        from nemm import __version__ as version
    doc = {
        "settings": {k: _jsonable(v) for k, v in settings.items()},
        "diagnostics": dict(diagnostics),
        "baselines": dict(baselines),
        "data": checksum,
        "nemm": version,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def machine_settings(point: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Every Machine setting of a grid point with the seed ``random_state`` (``verbose`` is no setting of a result)."""
    from nemm.machine import Machine

    settings = Machine(**point, random_state=int(seed)).get_params()
    settings.pop("verbose", None)
    return settings


class RunList:
    """The runs of a sweep being listed, in table order; a run found again by its id is listed once."""

    def __init__(self, config: SweepConfig, checksum: str) -> None:
        self.diagnostics = config.diagnostics.as_dict()
        self.checksum = checksum
        self.specs: list[RunSpec] = []
        self._seen: set[str] = set()

    def add(
        self,
        kind: str,
        settings: Mapping[str, Any],
        swept: dict[str, Any],
        seed: int,
        baselines: dict[str, Any],
    ) -> None:
        """List a run of ``kind`` (the id of a run of another kind than nemm hashes its kind too)."""
        plain = {k: _jsonable(v) for k, v in settings.items()}
        rid = run_id(
            plain if kind == "nemm" else {**plain, "kind": kind}, self.diagnostics, baselines, self.checksum
        )
        if rid not in self._seen:
            self._seen.add(rid)
            self.specs.append(
                RunSpec(
                    index=len(self.specs),
                    settings=plain,
                    swept=swept,
                    seed=int(seed),
                    diagnostics=self.diagnostics,
                    baselines=baselines,
                    data_checksum=self.checksum,
                    run_id=rid,
                    kind=kind,
                )
            )


def expand(config: SweepConfig, checksum: str) -> list[RunSpec]:
    """The run specs of a configuration, in table order, as its report kind lists them (:func:`report_kind`)."""
    return report_kind(config.diagnostics.report).expand(config, checksum)


def _grid_runs(config: SweepConfig, checksum: str) -> list[RunSpec]:
    """The runs of a plain sweep: every grid point (last axis fastest) times the seeds (fastest)."""
    axes = [k for k, _ in config.axes]
    runs = RunList(config, checksum)
    for point in config.grid():
        for seed in config.seeds:
            swept = {**{k: _jsonable(point[k]) for k in axes}, "seed": int(seed)}
            runs.add("nemm", machine_settings(point, seed), swept, seed, config.baselines.as_dict())
    return runs.specs


# --------------------------------------------------------------------------- one run


def _derived_seed(seed: int | None, stream: int) -> int:
    """An independent seed for a side computation of a run (hashed, never an offset)."""
    derived = derive_seed(0 if seed is None else int(seed), stream)
    assert derived is not None  # derive_seed is None only for a None first part
    return int(derived)


def measure(
    machine: Any, X: np.ndarray, y: np.ndarray | None, diagnostics_cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """The requested measures of one trained machine (the one call into the diagnostics).

    Up to :data:`~nemm.markov.DENSE_STATE_LIMIT` hidden states this is
    :func:`nemm.diagnostics.diagnose`; above (binary layers with L > 12) the chain's
    counts stay sparse (:func:`_measure_large`): nothing of size O(S^2) is made.

    Returns a flat dict of the columns of ``_MEASURE_COLUMNS`` for the requested measures.
    """
    from nemm import diagnostics
    from nemm.markov import DENSE_STATE_LIMIT

    measures = tuple(diagnostics_cfg["measures"])
    labelled = y if ("class_kl" in measures and y is not None) else None
    out: dict[str, Any] = {}
    if machine.n_states > DENSE_STATE_LIMIT:
        out.update(_measure_large(machine, X, labelled, diagnostics_cfg))
    else:
        d = diagnostics.diagnose(
            machine,
            X,
            labelled,
            n_steps=int(diagnostics_cfg["diagnostic_steps"]),
            n_chains=int(diagnostics_cfg["n_chains"]),
            pseudocount=float(diagnostics_cfg["pseudocount"]),
            seed=_derived_seed(machine.random_state, 1),
            rao_blackwell_draws=0,
            sigma_effort=_sigma_effort(diagnostics_cfg, measures),
        )
        loglik_exact = d.loglik_exact if machine.n_states <= ENUMERABLE_STATES else None
        out.update(
            loglik=float(loglik_exact) if loglik_exact is not None else math.nan,
            sigma=d.sigma,
            sigma_err=d.sigma_err,
            sigma_converged=d.sigma_converged,
            sigma_method=d.sigma_method,
            sigma_counting=d.sigma_counting,
            sigma_counting_err=d.sigma_counting_err,
            n_one_way=d.n_one_way,
            tau=d.tau,
            tau_err=d.tau_err,
            trace=d.self_transition,
            trace_err=d.self_transition_err,
            class_kl=d.class_kl.kl if d.class_kl is not None else math.nan,
        )
    keep = {c for m in measures if m != "mixing" for c in _MEASURE_COLUMNS[m]}
    out = {k: v for k, v in out.items() if k in keep}
    if "mixing" in measures:
        out.update(_mixing(machine, X, y, diagnostics_cfg))
    return out


# ------------------------------------------------------------ large hidden spaces (sparse counts)

#: Rows of X per block of log A in the class KL of a large hidden space (bounds the N x S table).
_LOG_A_BLOCK_BYTES = 64 << 20


def _class_kl_large(machine: Any, X: np.ndarray, y: np.ndarray, codes: np.ndarray, pbar: np.ndarray) -> float:
    """Class KL (eq. 22) over the visited states ``codes`` with occupancy ``pbar``, in blocks of rows.

    The rule of :func:`nemm.class_distribution.class_kl` (argmax assignment, majority class per state,
    ties to the smallest label, states given no point lose their mass), without the
    (N, S) table of log A: it is made ``_LOG_A_BLOCK_BYTES`` at a time.
    """
    from nemm._states import codes_to_bits
    from nemm.class_distribution import class_kl_from_assignment

    states = codes_to_bits(codes, machine.n_hidden)
    lp = np.log(pbar)
    S = codes.size
    block = max(1, _LOG_A_BLOCK_BYTES // (8 * S))
    assignment = np.empty(len(X), dtype=np.int64)
    for lo in range(0, len(X), block):
        LA = machine.log_A(X[lo : lo + block], states)
        assignment[lo : lo + block] = np.argmax(lp[None, :] + LA, axis=1)
    return class_kl_from_assignment(assignment, y, pbar)


def _sigma_effort(diagnostics_cfg: Mapping[str, Any], measures: tuple[str, ...]) -> float:
    """Effort of the headline sigma: ``[diagnostics] sigma_effort`` (default 1), 0 when sigma is not measured."""
    return float(diagnostics_cfg.get("sigma_effort", 1.0)) if "sigma" in measures else 0.0


def _measure_large(
    machine: Any, X: np.ndarray, y: np.ndarray | None, diagnostics_cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """The measures of a hidden space above DENSE_STATE_LIMIT states, from sparse counts.

    The chain is the one :func:`nemm.diagnostics.diagnose` runs (same seed, chains,
    burn-in and 10 time windows for the error bars), relabelled to its visited
    states; the numbers equal those of :func:`nemm.diagnostics.transition_statistics`
    wherever that can run. ``loglik`` uses the chain's occupancy over all states
    (a vector of ``n_states``, so only up to ENUMERABLE_STATES); tau is NaN above
    DENSE_EIG_LIMIT visited states.
    """
    from nemm.markov import segment_error, summarize_trajectory

    T, C = int(diagnostics_cfg["diagnostic_steps"]), int(diagnostics_cfg["n_chains"])
    pc = float(diagnostics_cfg["pseudocount"])
    n_segments = 10
    if T < 2 * n_segments:
        raise ValueError(f"[diagnostics] diagnostic_steps must be at least {2 * n_segments}, got {T}")
    traj = machine.hidden_trajectory(
        T, seed=_derived_seed(machine.random_state, 1), n_chains=C, burn_in=1000, codes=True
    )
    codes = np.asarray(traj).reshape(C, T).astype(np.uint64)
    uniq, inv = np.unique(codes, return_inverse=True)
    local = inv.reshape(codes.shape).astype(np.int64)
    S = int(uniq.size)
    Sf = int(machine.n_states)  # the labels number the visited states only: a stuck chain still has tau = inf
    sigma, n_one_way, tau, trace = summarize_trajectory(local, S, pc, Sf)
    bounds = np.linspace(0, T, n_segments + 1).astype(int)
    seg = np.array(
        [summarize_trajectory(local[:, lo:hi], S, pc, Sf) for lo, hi in zip(bounds[:-1], bounds[1:])]
    )
    out: dict[str, Any] = {
        "sigma_counting": sigma,
        "sigma_counting_err": segment_error(seg[:, 0])[1],
        "n_one_way": n_one_way,
        "tau": tau,
        "tau_err": segment_error(seg[:, 2])[1],
        "trace": trace,
        "trace_err": segment_error(seg[:, 3])[1],
    }
    effort = _sigma_effort(diagnostics_cfg, tuple(diagnostics_cfg["measures"]))
    if effort:
        from nemm.diagnostics import entropy_production_rate

        ep = entropy_production_rate(machine, effort=effort, seed=_derived_seed(machine.random_state, 2))
        out.update(
            sigma=ep.sigma, sigma_err=ep.sigma_err, sigma_converged=ep.converged, sigma_method=ep.method
        )
    occ = np.bincount(local.ravel(), minlength=S) / local.size
    if "loglik" not in diagnostics_cfg["measures"]:
        pass
    elif machine.n_states <= ENUMERABLE_STATES:
        pfull = np.zeros(machine.n_states)
        pfull[uniq.astype(np.int64)] = occ
        out["loglik"] = float(np.mean(machine.score_samples(X, pbar=pfull)))  # the one ln p path
    else:
        out["loglik"] = math.nan  # no vector over 2**L states: ln p is not computed (ENUMERABLE_STATES)
    out["class_kl"] = _class_kl_large(machine, X, y, uniq, occ) if y is not None else math.nan
    return out


def _mixing(
    machine: Any, X: np.ndarray, y: np.ndarray | None, diagnostics_cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """Class-mixing measures of the machine's own sampling chain (needs nemm.mixing and labels)."""
    from nemm.sample_mixing import mixing_of

    if y is None:
        return {"tau_int_class": math.nan, "cover_time": math.nan, "class_kl_samples": math.nan}
    # One chain of consecutive samples (the shared path of nemm reproduce), not 64 chains one after another.
    T = int(
        diagnostics_cfg.get("mixing_steps") or min(int(diagnostics_cfg["diagnostic_steps"]), MIXING_STEPS)
    )
    mm = mixing_of(machine, X, y, n_steps=T, seed=_derived_seed(machine.random_state, 2))
    return {
        "tau_int_class": mm.tau_int_class,
        "cover_time": mm.cover_time,
        "class_kl_samples": mm.class_kl_samples,
    }


def baseline_values(spec: RunSpec, X: np.ndarray) -> dict[str, Any]:
    """The ``[baselines]`` columns of a run of kind nemm: the EM ceiling and the equilibrium RBM's ln p."""
    out: dict[str, Any] = {}
    L, hidden = int(spec.settings["n_hidden"]), spec.settings["hidden"]
    if spec.baselines.get("mixture"):
        from nemm.baselines import fit_em_ceiling

        # The mixture of L product-Bernoullis is the ceiling of the one-hot family only.
        out["mixture_loglik"] = (
            fit_em_ceiling(X, L, n_init=3, random_state=spec.seed) if hidden == "onehot" else math.nan
        )
    if spec.baselines.get("rbm"):
        from nemm.rbm import RBM

        rbm = RBM(L, hidden=hidden, random_state=spec.seed).fit(X)
        out["rbm_loglik"] = float(np.mean(rbm.score_samples(X)))
    return out


def machine_kwargs(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings as Machine keywords (a batch_size pair back to a tuple; a single size stays an int)."""
    return {k: (tuple(v) if k == "batch_size" and isinstance(v, list) else v) for k, v in settings.items()}


def _model_bytes(model: Any) -> bytes | None:
    """The model's file (npz + JSON metadata), as bytes for the driver to write; None if it has no file."""
    from nemm._estimator import Estimator

    return model._file_bytes() if isinstance(model, Estimator) else None


def _run_grid_point(spec: RunSpec, X: np.ndarray, y: np.ndarray | None) -> tuple[dict[str, Any], Any]:
    """A run of a plain sweep: train its Machine, then the requested measures (:func:`measure`) and baselines."""
    from nemm.machine import Machine

    t0 = time.perf_counter()
    m = Machine(**machine_kwargs(spec.settings))
    m.fit(X)
    t1 = time.perf_counter()
    values = measure(m, X, y, spec.diagnostics)
    values.update(baseline_values(spec, X))
    values["train_seconds"] = t1 - t0
    values["measure_seconds"] = time.perf_counter() - t1
    return values, m


def _train_and_measure(
    spec: RunSpec, X: np.ndarray, y: np.ndarray | None
) -> tuple[dict[str, Any], bytes | None]:
    """Train one model, measure it as its report kind does, and return (values, model file bytes)."""
    values, model = report_kind(spec.diagnostics.get("report", "sweep")).run(spec, X, y)
    return values, _model_bytes(model)


def run_one(spec: RunSpec, X: np.ndarray, y: np.ndarray | None = None) -> dict[str, Any]:
    """Train and measure one run on one thread; never raises for a failure of the run itself.

    Returns
    -------
    dict
        ``result`` (what ``result.json`` holds: ``run_id``, ``status`` "ok" or "error",
        ``error``, ``swept``, ``settings``, the measures, timings, ``nemm_version``) and
        ``model`` (the bytes of ``model.npz``, or None after an error).
    """
    from threadpoolctl import threadpool_limits

    import nemm

    result: dict[str, Any] = {
        "run_id": spec.run_id,
        "index": spec.index,
        "swept": spec.swept,
        "settings": spec.settings,
        "diagnostics": spec.diagnostics,
        "baselines": spec.baselines,
        "data_checksum": spec.data_checksum,
        "nemm_version": nemm.__version__,
        "status": "ok",
        "error": None,
    }
    model: bytes | None = None
    t0 = time.perf_counter()
    try:
        if data_checksum(X, y) != spec.data_checksum:
            raise RuntimeError("the worker's data differ from the driver's (checksum mismatch)")
        # One thread per run (OpenMP of the core, BLAS of the baselines): N workers use N cores,
        # and the results do not depend on how many runs share a machine.
        with threadpool_limits(1):
            values, model = _train_and_measure(spec, X, y)
        result.update(values)
    except Exception as exc:  # a failing run is a result, and the sweep goes on
        result["status"] = "error"
        result["error"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    result["seconds"] = time.perf_counter() - t0
    return {"result": result, "model": model}


# --------------------------------------------------------------------------- report kinds


@dataclass(frozen=True)
class SweepOutput:
    """What a report kind writes from: the finished sweep's runs, results and rows, and where to write."""

    config: SweepConfig
    out: Path
    specs: Sequence[RunSpec]
    #: run id -> what its result.json holds (or the error of a lost worker).
    results: Mapping[str, Mapping[str, Any]]
    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[str]
    X: np.ndarray
    data_description: str
    n_jobs: int
    #: ``time.perf_counter()`` when the sweep started.
    started: float
    protocol: Mapping[str, Any] | None
    figures: bool
    #: ``map`` over the sweep's worker pool (or the builtin ``map``), for drawing figures in parallel.
    map_fn: Callable[..., Any]


@dataclass(frozen=True)
class ReportKind:
    """A kind of sweep report, named by ``[diagnostics] report``: its runs, their measures, its table and files.

    Attributes
    ----------
    name : str
    expand : callable ``(config, checksum) -> list of RunSpec``
        The runs of a configuration in table order (:class:`RunList` lists them).
    run : callable ``(spec, X, y) -> (values, model)``
        Train and measure one run in a worker: the values its ``result.json`` adds, and the
        trained model (written as ``model.npz``; None for none).
    columns : callable ``(config) -> list of str``
        The leading and measure columns of results.csv (the baselines' and the status columns follow).
    write : callable ``(SweepOutput) -> dict or None``
        Write the table, report and figures (only when the table changed, so that a finished
        sweep run again touches nothing); returns what :attr:`SweepResult.report` holds.
    """

    name: str
    expand: Callable[[SweepConfig, str], list[RunSpec]]
    run: Callable[[RunSpec, np.ndarray, np.ndarray | None], tuple[dict[str, Any], Any]]
    columns: Callable[[SweepConfig], list[str]]
    write: Callable[[SweepOutput], dict[str, Any] | None]


_REPORT_KINDS: dict[str, ReportKind] = {}


def register_report_kind(kind: ReportKind) -> None:
    """Make ``[diagnostics] report = kind.name`` run with ``kind`` (a second registration replaces the first)."""
    _REPORT_KINDS[kind.name] = kind


def report_kind(name: str) -> ReportKind:
    """The registered report kind ``name``, importing the module that registers it if needed.

    Raises
    ------
    ValueError
        No such kind is registered or known.
    """
    if name not in _REPORT_KINDS and name in REPORT_MODULES:
        importlib.import_module(REPORT_MODULES[name])  # registers it: the sweep knows its name, not its code
    if name not in _REPORT_KINDS:
        raise ValueError(f"unknown report kind {name!r}; registered: {', '.join(sorted(_REPORT_KINDS))}")
    return _REPORT_KINDS[name]


def _grid_columns(config: SweepConfig) -> list[str]:
    cols = [k for k, _ in config.axes] + ["seed"]
    for m in config.diagnostics.measures:
        cols += _MEASURE_COLUMNS[m]
    return cols


def _write_grid_report(o: SweepOutput) -> None:
    """results.csv, report.md (mean ± standard deviation per grid point) and summary.png of a plain sweep."""
    text = csv_text(o.rows, o.columns)
    csv_path = o.out / "results.csv"
    old = csv_path.read_text(encoding="utf-8") if csv_path.exists() else None
    if old != text or not (o.out / "report.md").exists():
        _write_bytes(csv_path, text.encode())
        report = _report(o.config, o.specs, o.rows, o.results, o.columns, o.X)
        _write_bytes(o.out / "report.md", report.encode())
        if o.figures:
            _summary_figure(o.config, o.rows, o.out / "summary.png", o.columns)


register_report_kind(
    ReportKind(
        "sweep", expand=_grid_runs, run=_run_grid_point, columns=_grid_columns, write=_write_grid_report
    )
)


# --------------------------------------------------------------------------- the sweep


@dataclass
class SweepResult:
    """What :func:`run_sweep` did: every run's row (grid order) and the counts."""

    out: Path
    rows: list[dict[str, Any]]
    columns: list[str]
    n_skipped: int
    n_run: int
    n_errors: int
    seconds: float
    #: Wall time of the execution phase only (runs on the backend, their files written).
    run_seconds: float = 0.0
    #: What the report kind's ``write`` returned (``report = "reproduce"``: the report's results dictionary).
    report: dict[str, Any] | None = None


def result_columns(config: SweepConfig) -> list[str]:
    """The columns of results.csv: the report kind's (swept settings, seed, measures), baselines, status."""
    cols = report_kind(config.diagnostics.report).columns(config)
    if config.baselines.mixture:
        cols.append("mixture_loglik")
    if config.baselines.rbm:
        cols.append("rbm_loglik")
    return cols + ["status", "error", "run_id"]


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _row(spec: RunSpec, result: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    row = dict(spec.swept)
    for c in columns:
        if c not in row:
            row[c] = result.get(c, math.nan if c not in ("status", "error", "run_id") else None)
    row["run_id"] = spec.run_id
    return row


def _sweep_data(
    config: SweepConfig, data: tuple[np.ndarray, np.ndarray | None] | None
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The data of a sweep: given ones, or the ``[data]`` table's; and their description."""
    if data is None:
        X, y, desc = load_data(config.data)
    else:
        X, y = np.ascontiguousarray(data[0], dtype=np.uint8), data[1]
        desc = f"{X.shape[0]} rows of {X.shape[1]} bits{', labelled' if y is not None else ''}"
    if y is None and "class_kl" in config.diagnostics.measures and config.diagnostics.measures_given:
        raise ValueError(f"{config.source}: [diagnostics] measures: class_kl needs labelled data")
    return X, y, desc


def _execute(
    todo: list[RunSpec],
    n_total: int,
    X: np.ndarray,
    y: np.ndarray | None,
    out: Path,
    results: dict[str, dict[str, Any]],
    *,
    workers: int | None,
    scheduler: Any,
    executor: Executor | None,
    progress: bool,
    on_run: Callable[[Mapping[str, Any]], None] | None,
) -> int:
    """Run ``todo`` on the backend, writing each finished run's files and result; returns the local job count."""
    from nemm import __version__ as version

    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(
            total=n_total, initial=n_total - len(todo), desc="sweep", unit="run", file=sys.stderr, leave=True
        )

    def on_done(spec: RunSpec, got: dict[str, Any] | BaseException) -> None:
        if not isinstance(got, BaseException) and got["result"].get("nemm_version") != version:
            got = RuntimeError(
                f"the worker runs nemm {got['result'].get('nemm_version')}, the driver nemm {version}"
            )
        if isinstance(got, BaseException):  # the worker died: reported, not written, run again next time
            results[spec.run_id] = {"status": "error", "error": f"worker lost: {type(got).__name__}: {got}"}
        else:
            res = got["result"]
            run_dir = out / "runs" / spec.run_id
            run_dir.mkdir(parents=True, exist_ok=True)
            if got["model"] is not None:
                _write_bytes(run_dir / "model.npz", got["model"])
            # result.json last: its presence marks a finished run.
            _write_bytes(run_dir / "result.json", json.dumps(res, indent=1, sort_keys=True).encode())
            results[spec.run_id] = res
            if on_run is not None:
                on_run(res)
        if bar is not None:
            bar.update(1)

    n_jobs = 1
    try:
        if todo:
            # The slow kinds first, so that the pool's tail is short (the rows keep grid order).
            todo = sorted(todo, key=lambda s: (_SUBMIT_ORDER.get(s.kind, 2), s.index))
            if scheduler is not None:
                run_dask(todo, X, y, scheduler, on_done, run_one)
            else:
                n = (
                    (
                        len(os.sched_getaffinity(0))
                        if hasattr(os, "sched_getaffinity")
                        else os.cpu_count() or 1
                    )
                    if workers is None
                    else int(workers)
                )
                if n < 0:
                    raise ValueError(f"workers must be >= 0, got {n}")
                n_jobs = max(1, n)
                run_local(todo, X, y, n, on_done, run_one, executor)
    finally:
        if bar is not None:
            bar.close()
    return n_jobs


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C, SIGTERM or SIGHUP; its finished runs are kept and listed in results.csv.

    The message says what stopped it and how many runs finished; the sweep run again
    continues with the others.
    """


#: The lock file of a sweep directory: one sweep at a time runs there, a second one waits for it.
LOCK_FILE = ".nemm-sweep.lock"


# Why a lock cannot be taken where a sweep may still go on without one: a directory this process
# cannot write (a finished sweep read again), a file system without locks.
_NO_LOCK_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
)


@contextlib.contextmanager
def _sweep_lock(out: Path, progress: bool) -> Iterator[None]:
    """Hold ``out``'s lock (``flock``, released by the kernel however the holder ends) while the runs go on.

    A second sweep into the same directory waits here, then finds the first one's runs
    finished and skips them: no run is computed twice.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        try:
            # "a": opening leaves the file's content and time alone (a finished sweep run again touches nothing).
            fh = stack.enter_context(open(out / LOCK_FILE, "a", encoding="utf-8"))
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress:
                    print(
                        f"nemm sweep: another sweep is running in {out}; waiting for it to end "
                        "(the runs it finishes are then skipped)",
                        file=sys.stderr,
                        flush=True,
                    )
                fcntl.flock(fh, fcntl.LOCK_EX)  # interruptible: Ctrl-C ends the wait
        except OSError as exc:
            if exc.errno not in _NO_LOCK_ERRNOS:
                raise
        yield


def _interrupted(
    exc: KeyboardInterrupt,
    out: Path,
    specs: Sequence[RunSpec],
    results: Mapping[str, Mapping[str, Any]],
    columns: Sequence[str],
) -> SweepInterrupted:
    """Write results.csv of the runs finished so far; returns the interruption that says so."""
    # A run whose result.json was written just before the signal may not be in ``results`` yet.
    results = {**_finished_results(out, [s for s in specs if s.run_id not in results]), **results}
    rows = [_row(s, results[s.run_id], columns) for s in specs if s.run_id in results]
    _write_bytes(out / "results.csv", csv_text(rows, columns).encode())
    return SweepInterrupted(
        f"{str(exc) or 'interrupted'}; {len(rows)} of {len(specs)} runs finished, listed in "
        f"{out / 'results.csv'}; run the same command again to finish the others"
    )


def _finished_results(out: Path, specs: Sequence[RunSpec]) -> dict[str, dict[str, Any]]:
    """The results of the runs of ``specs`` that a former sweep into ``out`` finished, by run id."""
    results: dict[str, dict[str, Any]] = {}
    for s in specs:
        r = _read_result(out / "runs" / s.run_id / "result.json")
        if r is not None:
            results[s.run_id] = r
    return results


def run_sweep(
    config: SweepConfig,
    out: str | os.PathLike[str],
    *,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    data: tuple[np.ndarray, np.ndarray | None] | None = None,
    executor: Executor | None = None,
    on_run: Callable[[Mapping[str, Any]], None] | None = None,
    protocol: Mapping[str, Any] | None = None,
    figures: bool = True,
) -> SweepResult:
    """Run every unfinished run of ``config`` and write the sweep's files under ``out``.

    Parameters
    ----------
    config : SweepConfig
    out : path
        The sweep directory (created if needed). Finished runs found there are skipped and
        their files are not touched; the table, report and figure are rewritten only when
        the table changes.
    workers : int, optional
        Local worker processes (default: all cores; 0 runs in this process). Ignored with
        ``scheduler``.
    scheduler : str or distributed.Client, optional
        Address of a running Dask scheduler (``tcp://host:8786``), or a Client.
    progress : bool
        Show a tqdm progress bar on stderr.
    data : (X, y), optional
        Data to use instead of the ``[data]`` table (for callers that have them already).
    executor : optional
        A :func:`worker_pool` holding the same data, to run on (instead of a new pool;
        the caller can use its warm workers afterwards).
    on_run : callable, optional
        Called with the result of every run finished now (a dict: what ``result.json`` holds).
    protocol : dict, optional
        What the report states beside the configuration (``report = "reproduce"``: ``mode``,
        ``data``, ...; see :func:`nemm.reproduce.report.assemble_sweep`).
    figures : bool
        Draw the figures (summary.png; the reproduction's figures with ``report = "reproduce"``).

    Returns
    -------
    SweepResult
    """
    t_start = time.perf_counter()
    out = Path(out)
    if out.exists() and not out.is_dir():  # before the data are read and the runs start
        raise NotADirectoryError(errno.ENOTDIR, f"the sweep directory {out} exists and is not a directory")
    kind = report_kind(config.diagnostics.report)
    X, y, desc = _sweep_data(config, data)
    specs = kind.expand(config, data_checksum(X, y))
    columns = result_columns(config)
    with _sweep_lock(out, progress):
        results = _finished_results(out, specs)
        todo = [s for s in specs if s.run_id not in results]
        t_runs = time.perf_counter()
        backend = dict(workers=workers, scheduler=scheduler, executor=executor, progress=progress)
        try:
            n_jobs = _execute(todo, len(specs), X, y, out, results, on_run=on_run, **backend)
        except KeyboardInterrupt as exc:
            raise _interrupted(exc, out, specs, results, columns) from exc
        run_seconds = time.perf_counter() - t_runs
        rows = [_row(s, results[s.run_id], columns) for s in specs]
        report = kind.write(
            SweepOutput(
                config=config,
                out=out,
                specs=specs,
                results=results,
                rows=rows,
                columns=columns,
                X=X,
                data_description=desc,
                n_jobs=n_jobs,
                started=t_start,
                protocol=protocol,
                figures=figures,
                map_fn=executor.map if executor is not None else map,
            )
        )
    n_err = sum(r.get("status") != "ok" for r in rows)
    return SweepResult(
        out=out,
        rows=rows,
        columns=columns,
        n_skipped=len(specs) - len(todo),
        n_run=len(todo),
        n_errors=n_err,
        seconds=time.perf_counter() - t_start,
        run_seconds=run_seconds,
        report=report,
    )
