"""Sweep and training configurations read from TOML files.

A configuration has up to six tables::

    [model]        # Machine keywords (n_hidden, hidden, normalization, centered, tied, ...)
    n_hidden = [3, 4]                  # a list is a grid axis
    [train]        # training keywords (n_epochs, learning_rate, steps_per_epoch, batch_size, ...)
    n_epochs = 8
    [sweep]
    seeds = 3                          # seeds 0, 1, 2 (or an explicit list)
    max_runs = 100000                  # refuse a larger grid (the default: MAX_RUNS)
    [data]         # default: the embedded digits 0, 1, 2
    path = "digits.npz"                # .npy/.npz file or MNIST IDX directory (relative to this file)
    digits = "all"                     # or a list; per_class = "all" or a count
    [diagnostics]
    diagnostic_steps = 100000          # the measuring chain's length ([train] chain_steps is T)
    measures = ["loglik", "sigma", "tau", "trace", "class_kl"]
    [baselines]
    mixture = true                     # the EM ceiling beside every run

With ``[diagnostics] report = "reproduce"`` every run records what ``nemm reproduce``
measures (Rao-Blackwell sigma, mixing, regime, ...; :mod:`nemm.reproduce.records`),
the sweep writes the reproduction's report and figures, and ``[baselines]`` can add
runs of other kinds: ``rbm_seeds`` (the equilibrium RBM), ``tied_seeds`` (the tied
machine) and ``mixture_restarts`` (the EM mixture). ``nemm reproduce --print-config``
prints such a file.

The keys of ``[model]``, ``[train]`` and ``[diagnostics]`` and what their values may be
come from the settings tables of :mod:`nemm._settings` (the Machine's own, and the
measuring chain's). Every key is checked when the file is read: an unknown key or a bad
value raises :class:`ConfigError`, whose message names the file, the table and the key.
Each grid point is validated as a :class:`~nemm.Machine` at load time, so a bad
combination (e.g. ``hidden = "binary"`` with ``normalization = "sigmoid"``)
fails before any training starts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from nemm._settings import DIAGNOSTICS_SETTINGS, MACHINE_SETTINGS, THRESHOLD, Setting, defaults

__all__ = [
    "ConfigError",
    "SweepConfig",
    "DataConfig",
    "DiagnosticsConfig",
    "BaselinesConfig",
    "load_config",
    "parse_config",
    "MEASURES",
    "DEFAULT_MEASURES",
    "MODEL_KEYS",
    "TRAIN_KEYS",
    "REPORT_MODULES",
    "MAX_RUNS",
    "MIN_CHAIN_STEPS",
]


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


# --------------------------------------------------------------------------- key tables


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_batch_size(v: Any) -> bool:
    if _is_int(v):
        return v >= 1
    return isinstance(v, list) and len(v) == 2 and all(_is_int(b) and b >= 1 for b in v)


def _keys(table: str) -> dict[str, Setting]:
    return {s.name: s for s in MACHINE_SETTINGS if s.table == table}


#: The Machine settings each table takes, from the Machine's settings table. The sweep sets
#: random_state from [sweep] seeds, and verbose is not a setting of a result.
MODEL_KEYS: dict[str, Setting] = _keys("model")
TRAIN_KEYS: dict[str, Setting] = _keys("train")
_DIAGNOSTICS_NUMBERS = {s.name: s for s in DIAGNOSTICS_SETTINGS}
_DIAGNOSTICS_DEFAULTS = defaults(DIAGNOSTICS_SETTINGS)

#: Measures a run can compute; ``trace`` is Tr(M)/L (eq. 24), ``mixing`` the class-mixing measures.
MEASURES = ("loglik", "sigma", "tau", "trace", "class_kl", "mixing")
#: Measures computed when ``[diagnostics] measures`` is not given.
DEFAULT_MEASURES = ("loglik", "sigma", "tau", "trace", "class_kl")

_DATA_KEYS = ("path", "digits", "per_class", "threshold", "split", "binarize", "binarize_seed")
_DIAGNOSTICS_KEYS = (*_DIAGNOSTICS_NUMBERS, "measures", "report")
# Keys of [diagnostics] that have another name now -> the name.
_RENAMED_DIAGNOSTICS = {"chain_steps": "diagnostic_steps"}
#: The report kinds ``[diagnostics] report`` may name, and the module that registers each with
#: :func:`nemm.sweep.register_report_kind` (the sweep imports it by name when a configuration names it).
REPORT_MODULES = {"sweep": "nemm.sweep", "reproduce": "nemm.reproduce"}
_BASELINES_KEYS = ("mixture", "rbm", "rbm_seeds", "tied_seeds", "mixture_restarts")
_SWEEP_KEYS = ("seeds", "max_runs")
#: The most runs a configuration may have unless ``[sweep] max_runs`` allows more: the grid's size is
#: computed before it is expanded, so that a typo (``seeds = 1000000000``) is refused in a moment
#: instead of filling memory.
MAX_RUNS = 100_000
#: The shortest chains the measures can use: the error bars cut ``diagnostic_steps`` into 10 time
#: windows of at least 2 steps (:func:`nemm.diagnostics.diagnose`), a tracking chain into 2 or more.
MIN_CHAIN_STEPS = {"diagnostic_steps": 20, "track_steps": 4}
_TABLES = ("model", "train", "sweep", "data", "diagnostics", "baselines")


# --------------------------------------------------------------------------- the parsed form


@dataclass(frozen=True)
class DataConfig:
    """``[data]``: where the training data come from.

    ``path`` None means the embedded MNIST test-split digits; otherwise a ``.npy``/``.npz``
    file of 0/1 rows (an ``.npz`` may carry labels as ``y``) or an MNIST IDX directory.
    ``digits`` and ``per_class`` select labelled data (None: ``nemm._settings.DIGITS`` and
    ``PER_CLASS``, 0, 1, 2 and 1000, for MNIST, everything for a file); ``per_class = "all"`` in the file gives None here with
    ``all_per_class`` set, and ``digits = "all"`` gives None with ``all_digits`` set
    (the ten MNIST digits; every label of a labelled file).
    """

    path: Path | None = None
    digits: tuple[int, ...] | None = None
    per_class: int | None = None
    all_per_class: bool = False
    all_digits: bool = False
    threshold: float | None = float(THRESHOLD)
    split: str | None = None
    binarize: str = "threshold"
    binarize_seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "path": None if self.path is None else str(self.path),
            "digits": "all" if self.all_digits else (None if self.digits is None else list(self.digits)),
            "per_class": "all" if self.all_per_class else self.per_class,
            "threshold": self.threshold,
            "split": self.split,
        }
        if (
            self.binarize != "threshold"
        ):  # (absent for the threshold: the tables of older sweeps stay the same)
            d.update(binarize=self.binarize, binarize_seed=self.binarize_seed)
        return d

    def binarization(self) -> dict[str, Any]:
        """The keywords of the datasets' loaders for this binarization."""
        return {"threshold": self.threshold, "binarize": self.binarize, "seed": self.binarize_seed}


@dataclass(frozen=True)
class DiagnosticsConfig:
    """``[diagnostics]``: the chain that measures each trained machine, and which measures.

    The numbers and their defaults are :data:`nemm._settings.DIAGNOSTICS_SETTINGS`:
    ``diagnostic_steps`` hidden steps per chain (the spec's 1e5), ``n_chains`` chains,
    ``pseudocount`` for pairs seen in one direction (eq. 21); with ``report = "reproduce"``
    the Rao-Blackwell draws per state and the training-time tracking; ``mixing_steps``
    the length of each model's mixing chain. ``measures_given`` is False when the file did
    not list measures (then ``class_kl`` is dropped quietly for unlabelled data instead of
    being an error).
    """

    diagnostic_steps: int = _DIAGNOSTICS_DEFAULTS["diagnostic_steps"]
    n_chains: int = _DIAGNOSTICS_DEFAULTS["n_chains"]
    pseudocount: float = _DIAGNOSTICS_DEFAULTS["pseudocount"]
    measures: tuple[str, ...] = DEFAULT_MEASURES
    measures_given: bool = False
    rao_blackwell_draws: int = _DIAGNOSTICS_DEFAULTS["rao_blackwell_draws"]
    track_every: int = _DIAGNOSTICS_DEFAULTS["track_every"]
    track_steps: int = _DIAGNOSTICS_DEFAULTS["track_steps"]
    mixing_steps: int = _DIAGNOSTICS_DEFAULTS["mixing_steps"]
    #: "sweep" (the measures' columns and the grid summary) or "reproduce" (nemm reproduce's records and report).
    report: str = "sweep"

    def as_dict(self) -> dict[str, Any]:
        """The settings that name a run (its id hashes them)."""
        d: dict[str, Any] = {
            "diagnostic_steps": self.diagnostic_steps,
            "n_chains": self.n_chains,
            "pseudocount": self.pseudocount,
            "measures": list(self.measures),
        }
        # The later keys only when set, so that the run ids of configurations without them stay the same.
        for f in dataclasses.fields(self):
            if f.name not in d and f.name != "measures_given" and getattr(self, f.name) != f.default:
                d[f.name] = getattr(self, f.name)
        return d


@dataclass(frozen=True)
class BaselinesConfig:
    """``[baselines]``: the EM mixture ceiling and the equilibrium RBM beside every run."""

    mixture: bool = False
    rbm: bool = False
    #: Runs of other kinds (``report = "reproduce"``): RBM and tied-machine seeds, EM restarts (0: none).
    rbm_seeds: tuple[int, ...] = ()
    tied_seeds: tuple[int, ...] = ()
    mixture_restarts: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The settings that change the rows of the runs of kind nemm (their ``mixture``/``rbm`` columns)."""
        return {"mixture": self.mixture, "rbm": self.rbm}


@dataclass(frozen=True)
class SweepConfig:
    """A parsed configuration.

    Attributes
    ----------
    model, train : dict
        The ``[model]`` and ``[train]`` tables as written (a list value is a grid axis,
        except a ``batch_size`` pair).
    seeds : tuple of int
    data, diagnostics, baselines
        The other tables, with defaults filled in.
    source : str
        The file it was read from (for messages), or ``"<string>"``.
    """

    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    data: DataConfig = field(default_factory=DataConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    source: str = "<string>"

    @property
    def axes(self) -> list[tuple[str, list[Any]]]:
        """The grid axes, ``(key, values)`` in file order ([model] first, then [train])."""
        out = []
        for table in (self.model, self.train):
            for key, value in table.items():
                if _is_axis(key, value):
                    out.append((key, list(value)))
        return out

    def grid(self) -> list[dict[str, Any]]:
        """Machine keywords of every grid point (cartesian product of the axes, last axis fastest)."""
        fixed = {
            k: _fixed(k, v) for t in (self.model, self.train) for k, v in t.items() if not _is_axis(k, v)
        }
        axes = self.axes
        points = []
        for combo in itertools.product(*(values for _, values in axes)):
            point = dict(fixed)
            point.update({k: _fixed(k, v) for (k, _), v in zip(axes, combo)})
            points.append(point)
        return points

    @property
    def n_runs(self) -> int:
        return len(self.grid()) * len(self.seeds)


def _is_axis(key: str, value: Any) -> bool:
    if not isinstance(value, list):
        return False
    if key == "batch_size":
        # [16, 160] is one (start, end) pair; an axis lists values: [[16, 160], [32, 32]] or [16, 32, 64].
        return not _is_batch_size(value)
    return True


def _fixed(key: str, value: Any) -> Any:
    """A single setting as Machine takes it (pairs as tuples)."""
    if key == "batch_size" and isinstance(value, list):
        return tuple(value)
    return value


# --------------------------------------------------------------------------- reading


def load_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read and check a TOML configuration file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    SweepConfig

    Raises
    ------
    ConfigError
        The file is missing, is not TOML, or has an unknown key or a bad value
        (the message names the file and the key).
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such configuration file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read the configuration: {exc}") from exc
    return parse_config(text, source=str(p), base_dir=p.resolve().parent)


def parse_config(
    text: str, *, source: str = "<string>", base_dir: str | os.PathLike[str] | None = None
) -> SweepConfig:
    """Parse configuration text (TOML); see :func:`load_config`.

    ``base_dir`` is the directory that a relative ``[data] path`` is taken from
    (default: the current directory).
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc

    def err(where: str, msg: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: {msg}")

    for table, value in doc.items():
        if table not in _TABLES:
            raise err(table, f"unknown table or top-level key; expected the tables [{'], ['.join(_TABLES)}]")
        if not isinstance(value, dict):
            raise err(table, f"must be a table ([{table}]), got {value!r}")

    model = _check_settings(doc.get("model", {}), "model", MODEL_KEYS, TRAIN_KEYS, err)
    train = _check_settings(doc.get("train", {}), "train", TRAIN_KEYS, MODEL_KEYS, err)
    seeds = _parse_seeds(doc.get("sweep", {}), err)
    data = _parse_data(doc.get("data", {}), err, Path(base_dir) if base_dir is not None else Path.cwd())
    diagnostics = _parse_diagnostics(doc.get("diagnostics", {}), err)
    baselines = _parse_baselines(
        doc.get("baselines", {}), err, diagnostics.report, _max_runs(doc.get("sweep", {}), err)
    )
    cfg = SweepConfig(
        model=model,
        train=train,
        seeds=seeds,
        data=data,
        diagnostics=diagnostics,
        baselines=baselines,
        source=source,
    )
    n_points = math.prod(len(values) for _, values in cfg.axes)
    _check_size(n_points * len(seeds), _max_runs(doc.get("sweep", {}), err), "[model] [train] [sweep]", err)
    _validate_grid(cfg, err)
    return cfg


def _check_settings(
    table: Mapping[str, Any],
    name: str,
    keys: Mapping[str, Setting],
    other: Mapping[str, Setting],
    err: Callable[[str, str], ConfigError],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    other_name = "train" if name == "model" else "model"
    for key, value in table.items():
        where = f"[{name}] {key}"
        if key not in keys:
            if key in other:
                raise err(where, f"belongs in the [{other_name}] table")
            if key in ("random_state", "seed"):
                raise err(where, "seeds are set in [sweep] seeds")
            raise err(where, f"unknown key; [{name}] takes {', '.join(keys)}")
        values = value if _is_axis(key, value) else [value]
        if isinstance(value, list) and not values:
            raise err(where, "an empty list gives no grid point")
        for v in values:
            if not keys[key].accepts(v):
                raise err(
                    where, f"must be {keys[key].describe()} (or a list of them, a grid axis), got {v!r}"
                )
        if isinstance(value, list) and _is_axis(key, value):
            seen = [repr(v) for v in values]
            if len(set(seen)) != len(seen):
                raise err(where, f"repeated value in the grid axis {value!r}")
        out[key] = value
    return out


def _parse_seeds(table: Mapping[str, Any], err: Callable[[str, str], ConfigError]) -> tuple[int, ...]:
    for key in table:
        if key not in _SWEEP_KEYS:
            raise err(f"[sweep] {key}", f"unknown key; [sweep] takes {', '.join(_SWEEP_KEYS)}")
    seeds = table.get("seeds", 1)
    if _is_int(seeds):
        if seeds < 1:
            raise err(
                "[sweep] seeds", f"must be a positive number of seeds or a list of seeds, got {seeds!r}"
            )
        _check_size(seeds, _max_runs(table, err), "[sweep] seeds", err)
        return tuple(range(seeds))
    if isinstance(seeds, list) and seeds and all(_is_int(s) and s >= 0 for s in seeds):
        if len(set(seeds)) != len(seeds):
            raise err("[sweep] seeds", f"repeated seed in {seeds!r}")
        return tuple(seeds)
    raise err(
        "[sweep] seeds",
        f"must be N (seeds 0..N-1) or a non-empty list of non-negative integers, got {seeds!r}",
    )


def _max_runs(table: Mapping[str, Any], err: Callable[[str, str], ConfigError]) -> int:
    """``[sweep] max_runs``: the most runs the file may ask for (default :data:`MAX_RUNS`)."""
    value = table.get("max_runs", MAX_RUNS)
    if not (_is_int(value) and value >= 1):
        raise err("[sweep] max_runs", f"must be a positive integer, got {value!r}")
    return int(value)


def _check_size(n_runs: int, max_runs: int, where: str, err: Callable[[str, str], ConfigError]) -> None:
    if n_runs > max_runs:
        raise err(
            where,
            f"the configuration asks for {n_runs:,} runs, more than the limit of {max_runs:,}; "
            "if that is meant, raise it with [sweep] max_runs",
        )


def _parse_data(table: Mapping[str, Any], err: Callable[[str, str], ConfigError], base: Path) -> DataConfig:
    for key in table:
        if key not in _DATA_KEYS:
            raise err(f"[data] {key}", f"unknown key; [data] takes {', '.join(_DATA_KEYS)}")
    path = None
    if "path" in table:
        if not isinstance(table["path"], str) or not table["path"]:
            raise err("[data] path", f"must be a file or directory name, got {table['path']!r}")
        path = Path(table["path"]).expanduser()
        if not path.is_absolute():
            path = base / path
        if not path.exists():
            raise err("[data] path", f"no such file or directory: {path}")
    digits = table.get("digits")
    all_digits = digits == "all"
    if all_digits:
        digits = None
    elif digits is not None:
        if not (
            isinstance(digits, list)
            and digits
            and all(_is_int(d) and d >= 0 for d in digits)
            and len(set(digits)) == len(digits)
        ):
            raise err(
                "[data] digits",
                f'must be "all" or a non-empty list of distinct labels (e.g. [0, 1, 2]), got {digits!r}',
            )
        digits = tuple(digits)
    per_class = table.get("per_class")
    all_per_class = per_class == "all"
    if all_per_class:
        per_class = None
    elif per_class is not None and not (_is_int(per_class) and per_class >= 1):
        raise err("[data] per_class", f'must be a positive integer or "all", got {per_class!r}')
    binarize = table.get("binarize", "threshold")
    if binarize not in ("threshold", "stochastic"):
        raise err("[data] binarize", f'must be "threshold" or "stochastic", got {binarize!r}')
    if binarize == "stochastic" and "threshold" in table:
        raise err(
            "[data] threshold",
            'applies to binarize = "threshold" only (stochastic: on with probability gray/255)',
        )
    binarize_seed = table.get("binarize_seed", 0 if binarize == "stochastic" else None)
    if binarize == "threshold" and binarize_seed is not None:
        raise err("[data] binarize_seed", 'applies to binarize = "stochastic" only')
    if binarize_seed is not None and not (_is_int(binarize_seed) and binarize_seed >= 0):
        raise err("[data] binarize_seed", f"must be an integer >= 0, got {binarize_seed!r}")
    threshold = table.get("threshold", THRESHOLD) if binarize == "threshold" else None
    if threshold is not None and not (_is_number(threshold) and 0 <= threshold < 255):  # NaN fails too
        raise err(
            "[data] threshold", f"must be a gray level 0 <= t < 255 (pixel > t -> 1), got {threshold!r}"
        )
    split = table.get("split")
    if split is not None and split not in ("test", "train"):
        raise err("[data] split", f'must be "test" or "train", got {split!r}')
    return DataConfig(
        path=path,
        digits=digits,
        per_class=per_class,
        all_per_class=all_per_class,
        all_digits=all_digits,
        threshold=None if threshold is None else float(threshold),
        split=split,
        binarize=binarize,
        binarize_seed=None if binarize_seed is None else int(binarize_seed),
    )


def _parse_diagnostics(table: Mapping[str, Any], err: Callable[[str, str], ConfigError]) -> DiagnosticsConfig:
    for key in table:
        if key in _RENAMED_DIAGNOSTICS:
            raise err(
                f"[diagnostics] {key}",
                f"is now called {_RENAMED_DIAGNOSTICS[key]} (the measuring chain's "
                "length; chain_steps is the Machine's T, in [train])",
            )
        if key not in _DIAGNOSTICS_KEYS:
            raise err(
                f"[diagnostics] {key}", f"unknown key; [diagnostics] takes {', '.join(_DIAGNOSTICS_KEYS)}"
            )
    kw: dict[str, Any] = {}
    for key, s in _DIAGNOSTICS_NUMBERS.items():
        if key in table:
            if not s.accepts(table[key]):
                raise err(f"[diagnostics] {key}", f"must be {s.describe()}, got {table[key]!r}")
            kw[key] = s.check(table[key])
            if key in MIN_CHAIN_STEPS and kw[key] < MIN_CHAIN_STEPS[key]:
                raise err(
                    f"[diagnostics] {key}",
                    f"must be at least {MIN_CHAIN_STEPS[key]} (the error bars cut the chain into time "
                    f"windows of 2 steps or more), got {kw[key]}",
                )
    if "report" in table:
        if table["report"] not in REPORT_MODULES:
            raise err(
                "[diagnostics] report",
                f"must be one of {', '.join(map(repr, REPORT_MODULES))}, got {table['report']!r}",
            )
        kw["report"] = table["report"]
    if kw.get("report", "sweep") == "sweep":
        for key in ("rao_blackwell_draws", "track_every", "track_steps"):
            if key in table:
                raise err(f"[diagnostics] {key}", 'applies to the records of report = "reproduce" only')
    if "measures" in table:
        m = table["measures"]
        if not isinstance(m, list) or not all(isinstance(x, str) for x in m):
            raise err(
                "[diagnostics] measures", f"must be a list of names among {', '.join(MEASURES)}, got {m!r}"
            )
        for x in m:
            if x not in MEASURES:
                raise err(
                    "[diagnostics] measures", f"unknown measure {x!r}; choose among {', '.join(MEASURES)}"
                )
        if len(set(m)) != len(m):
            raise err("[diagnostics] measures", f"repeated measure in {m!r}")
        kw["measures"] = tuple(
            x for x in MEASURES if x in m
        )  # canonical order: the columns do not depend on it
        kw["measures_given"] = True
    return DiagnosticsConfig(**kw)


def _parse_baselines(
    table: Mapping[str, Any], err: Callable[[str, str], ConfigError], report: str, max_runs: int
) -> BaselinesConfig:
    kw: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _BASELINES_KEYS:
            raise err(f"[baselines] {key}", f"unknown key; [baselines] takes {', '.join(_BASELINES_KEYS)}")
        if key in ("mixture", "rbm"):
            if not isinstance(value, bool):
                raise err(f"[baselines] {key}", f"must be true or false, got {value!r}")
            kw[key] = value
            continue
        if report != "reproduce":
            raise err(
                f"[baselines] {key}", 'adds runs of another kind: needs [diagnostics] report = "reproduce"'
            )
        if key == "mixture_restarts":
            if not (_is_int(value) and value >= 0):
                raise err(
                    f"[baselines] {key}", f"must be a non-negative integer (0: no mixture), got {value!r}"
                )
            kw[key] = value
        elif _is_int(value) and value >= 0:
            _check_size(value, max_runs, f"[baselines] {key}", err)
            kw[key] = tuple(range(value))
        elif (
            isinstance(value, list)
            and all(_is_int(s) and s >= 0 for s in value)
            and len(set(value)) == len(value)
        ):
            kw[key] = tuple(value)
        else:
            raise err(
                f"[baselines] {key}", f"must be N (seeds 0..N-1) or a list of distinct seeds, got {value!r}"
            )
    return BaselinesConfig(**kw)


def _validate_grid(cfg: SweepConfig, err: Callable[[str, str], ConfigError]) -> None:
    """Build a Machine for every grid point now, so that a bad combination fails before training."""
    from nemm.machine import Machine

    for point in cfg.grid():
        m = Machine(**point)
        try:
            m._validate_settings()
        except (ValueError, TypeError) as exc:
            shown = (
                ", ".join(f"{k} = {v!r}" for k, v in point.items() if k in dict(cfg.axes)) or "the settings"
            )
            keys = [k for k in point if k in str(exc)] or list(point)
            tables = sorted({("model" if k in MODEL_KEYS else "train") for k in keys})
            raise err(f"[{'] ['.join(tables)}] {', '.join(keys)}", f"{exc} (at {shown})") from exc
