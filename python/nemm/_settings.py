"""The settings of every estimator, declared once: name, type, default, allowed values, one line of help.

Each estimator's table (:data:`MACHINE_SETTINGS`, :data:`RBM_SETTINGS`) is the one place a
default is written. From it come

* the validation at the start of ``fit`` (:func:`check_settings`: every message names the setting),
* the keys of a sweep configuration's ``[model]`` and ``[train]`` tables (:attr:`Setting.table`),
* the options of the command line (:attr:`Setting.flag`, :func:`add_options`, :func:`given_settings`),
* the settings tables of the documentation (:func:`markdown_table`, docs/settings.md).

``Machine.__init__`` and ``RBM.__init__`` keep explicit keyword signatures (scikit-learn reads
them); a test asserts that their defaults are the table's. The shared defaults that are not an
estimator's setting (the data selection, the lengths of the measuring chains) are the named
constants below.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nemm._checks import INT32_MAX, as_bool, as_float, as_int, as_seed, shown

__all__ = [
    "Setting",
    "MACHINE_SETTINGS",
    "RBM_SETTINGS",
    "DIAGNOSTICS_SETTINGS",
    "HIDDEN",
    "NORMALIZATION",
    "check_settings",
    "defaults",
    "setting",
    "add_options",
    "given_settings",
    "markdown_table",
    "settings_document",
    "DIGITS",
    "PER_CLASS",
    "THRESHOLD",
    "DIAGNOSTIC_STEPS",
    "TRACK_STEPS",
    "MIXING_STEPS",
]

#: The MNIST digits, examples per digit and binarization threshold (pixel > 127 -> 1) of the paper's data.
DIGITS = (0, 1, 2)
PER_CLASS = 1000
THRESHOLD = 127
#: Steps of the chain that measures a trained model (the spec's 1e5).
DIAGNOSTIC_STEPS = 100_000
#: Steps of each training-time tracking chain (``diagnostics.epoch_tracker``).
TRACK_STEPS = 5000
#: Samples of a model's class-mixing chain.
MIXING_STEPS = 20_000

HIDDEN = ("onehot", "binary")
NORMALIZATION = ("softmax", "sigmoid")
RECIPES = ("auto", "paper")
GRADIENTS = ("auto", "sampled", "rao_blackwell")
RBM_SAMPLERS = ("gibbs", "pt", "exact")
_WHY_INT32 = " (the C++ core counts it in a 32-bit int)"


@dataclass(frozen=True)
class Setting:
    """One setting of an estimator.

    Attributes
    ----------
    name : str
        The constructor keyword.
    type : {"int", "float", "bool", "choice", "seed", "batch", "optional_bool"}
        ``batch``: a positive integer or a pair (start, end) of them; ``optional_bool``: True,
        False or None; ``seed``: None or a non-negative integer.
    default
        The value the constructor takes when the keyword is not given.
    help : str
        One line, for the docstring tables and the command line.
    low, high : number, optional
        Bounds: inclusive for integers; for floats open unless ``closed`` names the side.
    closed : str
        ``"low"``, ``"high"`` or ``"both"``: which float bounds are inclusive.
    choices : tuple of str
        The values of a ``choice``.
    why_max : str
        Why the upper bound (shown in the message).
    table : str, optional
        The table of a sweep configuration that takes the setting (``"model"`` or ``"train"``);
        None: not a configuration key (seeds come from ``[sweep] seeds``).
    flag : str, optional
        The option of ``nemm train`` and ``nemm reproduce`` that sets it (None: no option).
        A ``bool`` whose default is True is switched off by its flag (``--no-centering``).
    optional : bool
        None is a value: the training recipe (``nemm.recipes``) chooses it.
    """

    name: str
    type: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    closed: str = ""
    choices: tuple[str, ...] = ()
    why_max: str = ""
    table: str | None = None
    flag: str | None = None
    optional: bool = False

    def check(self, value: Any) -> Any:
        """``value`` checked and converted to a plain Python value; TypeError/ValueError name the setting."""
        name = self.name
        if self.optional and value is None:  # left to the training recipe (nemm.recipes)
            return None
        if self.type == "int":
            return as_int(
                value,
                name,
                minimum=None if self.low is None else int(self.low),
                maximum=None if self.high is None else int(self.high),
                why_max=self.why_max,
            )
        if self.type == "float":
            return as_float(
                value,
                name,
                lower=self.low,
                upper=self.high,
                lower_open=self.closed not in ("low", "both"),
                upper_open=self.closed not in ("high", "both"),
            )
        if self.type == "bool":
            return as_bool(value, name)
        if self.type == "optional_bool":
            return None if value is None else as_bool(value, name)
        if self.type == "seed":
            return as_seed(value, name)
        if self.type == "choice":
            if not isinstance(value, str):
                raise TypeError(
                    f"{name} must be a string, one of {self.choices}, got {shown(value)} of type "
                    f"{type(value).__name__}"
                )
            if value not in self.choices:
                raise ValueError(f"{name} must be one of {self.choices}, got {value!r}")
            return str(value)
        if self.type == "batch":
            b = value
            if isinstance(b, (int, np.integer)) and not isinstance(b, (bool, np.bool_)):
                b = (b, b)
            if not isinstance(b, (tuple, list, np.ndarray)) or len(b) != 2:
                raise TypeError(
                    f"{name} must be a positive integer or a pair (start, end) of them, got {shown(value)}"
                )
            return (as_int(b[0], f"{name}[0]", minimum=1), as_int(b[1], f"{name}[1]", minimum=1))
        raise AssertionError(f"unknown setting type {self.type!r}")  # pragma: no cover - a table typo

    def accepts(self, value: Any) -> bool:
        """Whether :meth:`check` takes ``value``."""
        try:
            self.check(value)
        except (TypeError, ValueError):
            return False
        return True

    def describe(self) -> str:
        """What a value must be, in words (the documentation's and the configuration's messages)."""
        if self.optional:
            return self._describe_value() + ", or none: the recipe's choice"
        return self._describe_value()

    def _describe_value(self) -> str:
        if self.type == "choice":
            return " or ".join(f'"{c}"' for c in self.choices)
        if self.type in ("bool", "optional_bool"):
            return "true or false" + (" (none: see the help)" if self.type == "optional_bool" else "")
        if self.type == "seed":
            return "none or an integer >= 0"
        if self.type == "batch":
            return "a positive integer or a pair [start, end]"
        if self.type == "int":
            if self.high is not None:
                return f"an integer in [{int(self.low or 0)}, {int(self.high)}]"
            return "a positive integer" if self.low == 1 else f"an integer >= {int(self.low or 0)}"
        lo = "[" if self.closed in ("low", "both") else "("
        hi = "]" if self.closed in ("high", "both") else ")"
        if self.high is None:
            return "a positive number" if self.low == 0 and lo == "(" else f"a number >= {self.low}"
        return f"a number in {lo}{self.low}, {self.high}{hi}"


#: The most hidden states the RBM's exact ln Z enumerates (beyond: nemm.estimate_loglik's AIS).
RBM_SCORE_MAX_STATES = 2**24


def _int(
    name: str,
    default: int | None,
    help: str,
    *,
    low: int = 1,
    high: int | None = None,
    why_max: str = "",
    table: str | None = None,
    flag: str | None = None,
) -> Setting:
    return Setting(
        name,
        "int",
        default,
        help,
        low=low,
        high=high,
        why_max=why_max,
        table=table,
        flag=flag,
        optional=default is None,
    )


def _float(
    name: str,
    default: float | None,
    help: str,
    *,
    low: float = 0.0,
    high: float | None = None,
    closed: str = "",
    table: str | None = None,
    flag: str | None = None,
) -> Setting:
    return Setting(
        name,
        "float",
        default,
        help,
        low=low,
        high=high,
        closed=closed,
        table=table,
        flag=flag,
        optional=default is None,
    )


#: The settings of :class:`nemm.Machine`, in the constructor's order.
MACHINE_SETTINGS: tuple[Setting, ...] = (
    _int(
        "n_hidden",
        6,
        "L, the number of hidden states (one-hot) or units (binary)",
        high=INT32_MAX,
        why_max=_WHY_INT32,
        table="model",
        flag="--hidden",
    ),
    Setting(
        "hidden",
        "choice",
        "onehot",
        "one-hot hidden states or L factorized bits",
        choices=HIDDEN,
        table="model",
        flag="--hidden-type",
    ),
    Setting(
        "normalization",
        "choice",
        "softmax",
        "one-hot x -> z normalization: softmax or the sigmoid ratio of eq. 19",
        choices=NORMALIZATION,
        table="model",
        flag="--normalization",
    ),
    Setting(
        "centered",
        "bool",
        True,
        "subtract the data mean inside the x -> z kernel (eq. 17)",
        table="model",
        flag="--no-centering",
    ),
    Setting(
        "tied",
        "bool",
        False,
        "wbar = w^T, trained by eqs. 16-17 (a studied variant; the equilibrium baseline is nemm.RBM)",
        table="model",
        flag="--tied",
    ),
    Setting(
        "recipe",
        "choice",
        "auto",
        "the training recipe that chooses the settings left at None: the paper's "
        "protocol or the one that reaches the EM ceiling at scale (nemm.recipes)",
        choices=RECIPES,
        table="train",
        flag="--recipe",
    ),
    Setting(
        "gradient",
        "choice",
        "auto",
        "sampled (eqs. 16-17), rao_blackwell (one-hot: every state weighted by "
        "Abar(z|x')), or auto: the recipe's",
        choices=GRADIENTS,
        table="train",
        flag="--gradient",
    ),
    _float("learning_rate", None, "RMSprop learning rate (paper 0.1, auto 0.03)", table="train", flag="--lr"),
    _float(
        "rho", 0.9, "RMSprop decay of the squared-gradient average", high=1.0, closed="low", table="train"
    ),
    _float("eps", 1e-8, "RMSprop regularizer of the step", table="train"),
    _int(
        "n_epochs",
        None,
        "epochs of training (paper 120; auto: passes over the data, about 7200 steps)",
        table="train",
        flag="--epochs",
    ),
    _int(
        "steps_per_epoch",
        None,
        "gradient steps per epoch (paper 30; auto: one pass over the data)",
        table="train",
        flag="--steps-per-epoch",
    ),
    Setting(
        "batch_size",
        "batch",
        None,
        "minibatch size, growing linearly from START to END over the epochs "
        "(paper 16 to 160; auto: min(N, 500))",
        table="train",
        flag="--batch-size",
        optional=True,
    ),
    _int(
        "chain_steps",
        None,
        "T, double steps of every persistent chain per gradient step (48)",
        high=INT32_MAX,
        why_max=_WHY_INT32,
        table="train",
        flag="--chain-steps",
    ),
    _int(
        "n_chains",
        None,
        "persistent chains, advanced in parallel (1)",
        high=INT32_MAX,
        why_max=_WHY_INT32,
        table="train",
        flag="--chains",
    ),
    Setting(
        "freeze_visible_bias",
        "optional_bool",
        None,
        "keep a fixed; none: frozen (at 0) for one-hot, trained for binary",
        table="model",
    ),
    # No option: `nemm train --seed` defaults to 0, so that a run from the command line is repeatable.
    Setting(
        "random_state", "seed", None, "seed; the same seed gives the same numbers whatever the thread count"
    ),
    Setting("verbose", "bool", False, "show a progress bar during fit"),
)

#: The settings of :class:`nemm.RBM`, in the constructor's order.
RBM_SETTINGS: tuple[Setting, ...] = (
    _int("n_hidden", 6, "L, hidden states (one-hot) or units (binary); one-hot needs 2, binary any number"),
    Setting(
        "hidden", "choice", "onehot", "one Potts hidden unit with L states, or L binary units", choices=HIDDEN
    ),
    Setting("optimizer", "choice", "adam", "ascent rule", choices=("adam", "rmsprop")),
    _float("learning_rate", 0.02, "step size of the optimizer"),
    _int("n_epochs", 100, "passes over the data"),
    _int("batch_size", 100, "rows per gradient step"),
    Setting(
        "centered",
        "optional_bool",
        None,
        "Montavon-Mueller centering of the gradient; none: on under PCD, off under the exact gradient",
    ),
    Setting(
        "gradient",
        "choice",
        "auto",
        "exact (enumerated hidden layer), PCD-k, or auto: exact up to 2**16 states",
        choices=("auto", "exact", "pcd"),
    ),
    Setting(
        "lr_decay",
        "float",
        None,
        "rate learning_rate / (1 + t / lr_decay) after t gradient steps (per epoch); 0: constant; "
        "none: 200 under PCD, 0 exact",
        low=0.0,
        closed="low",
        optional=True,
    ),
    _int(
        "monitor_every",
        1,
        "PCD: the exact ln p of the training data every this many epochs into history_ (0: never)",
        low=0,
    ),
    _int(
        "monitor_ais_temperatures",
        1000,
        "PCD beyond 2^24 hidden states: AIS temperatures of the likelihood monitor (0: no monitor there)",
        low=0,
    ),
    _int("pcd_steps", 1, "k, Gibbs double steps of the persistent chains per gradient step (PCD only)"),
    _int("n_chains", 100, "persistent chains (PCD only)"),
    _float("beta1", 0.9, "Adam's decay of the gradient average", high=1.0, closed="low"),
    _float("beta2", 0.999, "Adam's decay of the squared-gradient average", high=1.0, closed="low"),
    _float("rho", 0.9, "RMSprop's decay of the squared-gradient average", high=1.0, closed="low"),
    _float("eps", 1e-8, "regularizer of the optimizer's step"),
    Setting(
        "random_state", "seed", None, "seed; the same seed gives the same numbers whatever the thread count"
    ),
    Setting("verbose", "bool", False, "show a progress bar during fit"),
    Setting(
        "sampler",
        "choice",
        "gibbs",
        "sampler of sample(): the Gibbs chain, parallel tempering, or exact i.i.d. draws (enumerable h)",
        choices=RBM_SAMPLERS,
    ),
    _int("pt_temperatures", 16, "parallel tempering: rungs of the geometric ladder of temperatures", low=2),
    _float("pt_beta_min", 0.2, "parallel tempering: the smallest inverse temperature, in (0, 1)", high=1.0),
)


#: The ``[diagnostics]`` numbers of a sweep configuration: the chain that measures each trained model.
#: (``diagnostic_steps`` is the measuring chain's length; ``[train] chain_steps`` is the Machine's T.)
DIAGNOSTICS_SETTINGS: tuple[Setting, ...] = (
    _int(
        "diagnostic_steps",
        DIAGNOSTIC_STEPS,
        "hidden steps of each measuring chain (the spec's 1e5)",
        table="diagnostics",
    ),
    _int("n_chains", 1, "measuring chains", table="diagnostics"),
    _float(
        "pseudocount",
        0.5,
        "pseudo-count of the pairs seen in one direction only (eq. 21)",
        table="diagnostics",
    ),
    _int(
        "rao_blackwell_draws",
        0,
        'draws per state of the Rao-Blackwell M (report = "reproduce")',
        low=0,
        table="diagnostics",
    ),
    _int(
        "track_every",
        0,
        'track the measures every N epochs of training, 0: never (report = "reproduce")',
        low=0,
        table="diagnostics",
    ),
    _int(
        "track_steps", TRACK_STEPS, 'steps of each tracking chain (report = "reproduce")', table="diagnostics"
    ),
    _int(
        "mixing_steps",
        0,
        "length of each model's mixing chain (0: min(diagnostic_steps, "
        f"{MIXING_STEPS}) for the mixing measure; none in a reproduce record)",
        low=0,
        table="diagnostics",
    ),
)


def setting(table: Sequence[Setting], name: str) -> Setting:
    """The setting ``name`` of ``table``."""
    for s in table:
        if s.name == name:
            return s
    raise KeyError(name)


def defaults(table: Sequence[Setting]) -> dict[str, Any]:
    """Every setting's default, in table order."""
    return {s.name: s.default for s in table}


def check_settings(table: Sequence[Setting], params: Mapping[str, Any]) -> dict[str, Any]:
    """Every setting of ``params`` checked against ``table`` (in table order) as plain Python values."""
    return {s.name: s.check(params[s.name]) for s in table}


# --------------------------------------------------------------------------- the command line


def add_options(parser: argparse.ArgumentParser, table: Sequence[Setting], names: Sequence[str]) -> None:
    """The options of the settings ``names``: not given unless given (their defaults live in the table)."""
    for name in names:
        s = setting(table, name)
        assert s.flag is not None, name
        shown = s.default if not isinstance(s.default, tuple) else " ".join(map(str, s.default))
        if s.default is None and s.optional:
            shown = "the recipe's"
        if s.type == "bool":
            # The flag changes the default: --tied sets True, --no-centering sets False.
            what = f"switch off: {s.help}" if s.default else f"{s.help} (default off)"
            parser.add_argument(
                s.flag,
                dest=name,
                action="store_const",
                const=not s.default,
                default=argparse.SUPPRESS,
                help=what,
            )
        elif s.type == "choice":
            parser.add_argument(
                s.flag,
                dest=name,
                choices=s.choices,
                default=argparse.SUPPRESS,
                help=f"{s.help} (default {shown})",
            )
        elif s.type == "batch":
            parser.add_argument(
                s.flag,
                dest=name,
                type=int,
                nargs=2,
                metavar=("START", "END"),
                default=argparse.SUPPRESS,
                help=f"{s.help} (default {shown})",
            )
        else:
            kind = {"int": int, "float": float, "seed": int}[s.type]
            parser.add_argument(
                s.flag,
                dest=name,
                type=kind,
                default=argparse.SUPPRESS,
                metavar=s.flag.lstrip("-").replace("-", "_").upper(),
                help=f"{s.help} (default {shown})",
            )


def given_settings(args: argparse.Namespace, table: Sequence[Setting]) -> dict[str, Any]:
    """The settings of ``table`` given on the command line (a batch size pair as a tuple)."""
    out = {s.name: getattr(args, s.name) for s in table if s.flag is not None and hasattr(args, s.name)}
    if "batch_size" in out:
        out["batch_size"] = tuple(out["batch_size"])
    return out


# --------------------------------------------------------------------------- the documentation


def markdown_table(table: Sequence[Setting]) -> str:
    """The settings as a Markdown table: name, default, allowed values, configuration table, option, help."""
    lines = ["| setting | default | values | TOML table | option | meaning |", "|---|---|---|---|---|---|"]
    for s in table:
        default = "None" if s.default is None else repr(s.default)
        lines.append(
            f"| `{s.name}` | `{default}` | {s.describe()} | {f'[{s.table}]' if s.table else '-'} | "
            f"{f'`{s.flag}`' if s.flag else '-'} | {s.help} |"
        )
    return "\n".join(lines) + "\n"


def settings_document() -> str:
    """docs/settings.md: the settings tables of the Machine, the RBM and a sweep's ``[diagnostics]``."""
    return f"""# Settings

Generated from the settings tables of `python/nemm/_settings.py`, the one place their defaults
are written (`tests/test_settings.py` checks that this file matches them; regenerate it with
`python -c "import nemm._settings as s; print(s.settings_document(), end='')" > docs/settings.md`). Each setting is checked when a model is fitted
(the message names it); the TOML table is where a sweep configuration (`docs/sweeps.md`) takes
it, the option where `nemm train` (and, for the machines of a reproduction, `nemm reproduce`)
takes it.

## `nemm.Machine`

{markdown_table(MACHINE_SETTINGS)}
## `nemm.RBM`

{markdown_table(RBM_SETTINGS)}
## `[diagnostics]` of a sweep configuration

The chain that measures every trained model. `diagnostic_steps` was called `chain_steps` before
(a configuration with `[diagnostics] chain_steps` is refused, naming the new key):
`chain_steps` is the Machine's T, in `[train]`.

{markdown_table(DIAGNOSTICS_SETTINGS)}"""
