"""The driver of ``nemm reproduce``: a built-in sweep, then the reproduction's report.

``reproduce(out_dir)`` trains the paper protocol (L = 6 one-hot hidden states,
120 epochs of 30 RMSprop steps, T = 48) for 36 seeds in parallel on the embedded
MNIST digits 0, 1, 2, and beside them the models it must be compared with
(spec, "The equilibrium baseline" and "Mixing at equal likelihood"), one row
per model with its ``kind``:

* ``nemm``: the nonequilibrium machine (the seeds);
* ``rbm``: the equilibrium baseline, :class:`nemm.RBM` trained by its own exact
  gradient (its defaults), sampled by its Gibbs chain;
* ``tied``: the studied variant with ``wbar = w^T`` trained by eqs. 16-17 (not
  an RBM's learning rule; never "the RBM baseline");
* ``mixture``: the EM mixture of L product-Bernoullis, the ceiling of the
  one-hot family's likelihood, sampled by i.i.d. ancestral draws (the ideal mixer).

It is a sweep: :func:`reproduce_config` writes the arguments as a TOML configuration
(``nemm reproduce --print-config``) with ``[diagnostics] report = "reproduce"``, and
:func:`nemm.sweep.run_sweep` runs it (every run measured by
:func:`nemm.reproduce.records.run_record`, the table, report and figures written by
:mod:`nemm.reproduce.report`), so ``nemm sweep`` on the printed file gives the same
table. ``compare="normalization"`` is a grid axis: the softmax and sigmoid variants of
eq. 19 side by side in one report; ``compare="recipe"`` likewise trains the machines by the
paper's protocol and by the auto recipe (:mod:`nemm.recipes`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from nemm._settings import DIAGNOSTIC_STEPS, MACHINE_SETTINGS, MIXING_STEPS, TRACK_STEPS, defaults
from nemm.recipes import PAPER
from nemm.reproduce.records import KINDS, RECORD_DIAGNOSTICS, RECORD_MIXING
from nemm.reproduce.report import describe_result, table_text

__all__ = [
    "COMPARABLE",
    "KINDS",
    "MIXING_STEPS",
    "PROTOCOL",
    "QUICK_EPOCHS",
    "QUICK_SEEDS",
    "RECORD_DIAGNOSTICS",
    "RECORD_MIXING",
    "ReproduceOptions",
    "reproduce",
    "reproduce_config",
]

#: ``--quick``: seeds and epochs per machine (the full protocol: 36 and the Machine's 120).
QUICK_SEEDS = 6
QUICK_EPOCHS = 60
#: Settings that ``compare`` can vary, with the values it runs side by side.
COMPARABLE = {"normalization": ("softmax", "sigmoid"), "recipe": ("paper", "auto")}
_MACHINE = defaults(MACHINE_SETTINGS)
#: The values of the options left at None: (the full protocol, ``quick``).
PROTOCOL: dict[str, tuple[int, int]] = {
    "seeds": (36, QUICK_SEEDS),
    "n_epochs": (PAPER["n_epochs"], QUICK_EPOCHS),
    "em_restarts": (5, 2),
    "rbm_seeds": (2, 1),
    "tied_seeds": (3, 1),
    "mixing_steps": (MIXING_STEPS, MIXING_STEPS // 2),
}


@dataclasses.dataclass(frozen=True)
class ReproduceOptions:
    """What a reproduction runs: the options of :func:`reproduce` and :func:`reproduce_config`, declared once.

    None means the protocol's value (the quick one with ``quick``); explicit values win over ``quick``.

    Attributes
    ----------
    seeds : int or sequence of int, optional
        Number of nemm seeds (0, 1, ...) or the seeds themselves. Default 36 (quick: 6).
    n_epochs : int, optional
        Epochs per machine (nemm and tied). Default the Machine's 120 (quick: 60).
    quick : bool
        Demo settings: 6 seeds, 60 epochs, 2 EM restarts, 1 RBM and 1 tied seed, shorter
        chains (well under a minute on two cores).
    n_hidden, hidden, normalization, centered, n_chains, chain_steps, learning_rate
        Settings of the machines, defaults those of :class:`nemm.Machine` (the training ones:
        those of ``recipe``); ``hidden`` and ``n_hidden`` are also the RBM's and the mixture's.
    recipe : {"paper", "auto"}
        The machines' training recipe (:mod:`nemm.recipes`): the paper's protocol (default), or
        the one that reaches the EM ceiling at scale, whose epochs are passes over the data (then
        ``n_epochs`` and ``quick`` change its number of epochs only when ``n_epochs`` is given).
    track_every, track_steps : int
        Track sigma, tau and the exact log-likelihood every ``track_every`` epochs
        (0: no tracking) on chains of ``track_steps`` steps.
    diag_steps : int
        Steps of the final diagnostics of every chain model, split over 2 chains (the paper: 1e5).
    em_restarts : int, optional
        EM restarts of the mixture (default 5; quick 2; 0 for no mixture).
    rbm_seeds : int or sequence of int, optional
        Seeds of the equilibrium RBM (:class:`nemm.RBM`, its defaults): default 2 (quick 1; 0 for none).
    tied_seeds : int or sequence of int, optional
        Seeds of the tied machine trained by eqs. 16-17: default 3 (quick 1; 0 for none).
    compare : {"normalization", "recipe"}, optional
        Run the machines once per value of that setting (softmax and sigmoid, eq. 19; or the
        recipes paper and auto), side by side in one report. The RBM and the mixture do not
        depend on it and run once; so does the tied machine under ``normalization`` (always
        softmax: eq. 19's sigmoid ratio does not apply to the tied sampler), while under
        ``recipe`` it trains by each recipe. Comparing recipes, every recipe chooses the
        training settings not given explicitly (``quick`` then keeps the paper's 120 epochs).
    mixing_steps : int, optional
        Length of each model's mixing chain (default 20000; quick 10000).
    rao_blackwell_draws : int
        Draws per hidden state of the Rao-Blackwell M (the headline sigma).
    """

    seeds: int | Sequence[int] | None = None
    n_epochs: int | None = None
    quick: bool = False
    n_hidden: int = _MACHINE["n_hidden"]
    track_every: int = 10
    track_steps: int = TRACK_STEPS
    diag_steps: int = DIAGNOSTIC_STEPS
    em_restarts: int | None = None
    rbm_seeds: int | Sequence[int] | None = None
    tied_seeds: int | Sequence[int] | None = None
    normalization: str = _MACHINE["normalization"]
    hidden: str = _MACHINE["hidden"]
    centered: bool = _MACHINE["centered"]
    n_chains: int | None = None
    chain_steps: int | None = None
    learning_rate: float | None = None
    recipe: str = "paper"
    compare: str | None = None
    mixing_steps: int | None = None
    rao_blackwell_draws: int = 1000

    @classmethod
    def of(cls, options: ReproduceOptions | None, settings: Mapping[str, Any]) -> ReproduceOptions:
        """``options`` (default: the defaults) with ``settings`` replaced; an unknown name is refused by name."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise TypeError(
                f"unknown reproduce option(s) {', '.join(unknown)}; the options are {', '.join(names)}"
            )
        return dataclasses.replace(options or cls(), **settings)


def _resolve_data(data: Any) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(X or None for the embedded digits, y, description)."""
    if data is None:
        return None, None, "the embedded MNIST test-split digits 0, 1, 2 (2980 images, 784 pixels)"
    if isinstance(data, tuple):
        X, y = data
    else:
        X, y = data, None
    from nemm._checks import as_binary_matrix

    X = as_binary_matrix(X)
    if y is not None:
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"labels must have shape ({X.shape[0]},), got {y.shape}")
    return X, y, f"user data ({X.shape[0]} rows of {X.shape[1]} bits{', labelled' if y is not None else ''})"


def _seed_list(value: int | Sequence[int]) -> list[int]:
    """Seeds 0..N-1 for a number N, else the seeds given."""
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise ValueError(f"a number of seeds must be >= 0, got {value}")
        return list(range(int(value)))
    return [int(s) for s in value]


def _toml(v: Any) -> str:
    """A TOML value: bools, numbers (floats keep a decimal point or exponent), strings, lists."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def _seeds_toml(seeds: list[int]) -> str:
    return _toml(len(seeds)) if seeds == list(range(len(seeds))) else _toml(seeds)


def _protocol(o: ReproduceOptions) -> tuple[list[int], int, int, list[int], list[int], int]:
    """The resolved protocol of ``o``: nemm seeds, epochs, EM restarts, RBM seeds, tied seeds, mixing steps."""

    def value(name: str) -> Any:
        given = getattr(o, name)
        return PROTOCOL[name][1 if o.quick else 0] if given is None else given

    seed_list = _seed_list(value("seeds"))
    epochs, n_em, mix_steps = int(value("n_epochs")), int(value("em_restarts")), int(value("mixing_steps"))
    rbm_list, tied_list = _seed_list(value("rbm_seeds")), _seed_list(value("tied_seeds"))
    if not seed_list:
        raise ValueError("reproduce needs at least one seed")
    if epochs < 1 or o.n_hidden < 2:
        raise ValueError("need n_epochs >= 1 and n_hidden >= 2")
    if o.normalization not in ("softmax", "sigmoid"):
        raise ValueError(f"normalization must be 'softmax' or 'sigmoid', got {o.normalization!r}")
    if o.hidden not in ("onehot", "binary"):
        raise ValueError(f"hidden must be 'onehot' or 'binary', got {o.hidden!r}")
    if o.recipe not in ("paper", "auto"):
        raise ValueError(f"recipe must be 'paper' or 'auto', got {o.recipe!r}")
    if o.compare is not None and o.compare not in COMPARABLE:
        raise ValueError(f"compare must be one of {sorted(COMPARABLE)}, got {o.compare!r}")
    return seed_list, epochs, n_em, rbm_list, tied_list, mix_steps


def _train_table(o: ReproduceOptions, epochs: int) -> dict[str, Any]:
    """The ``[train]`` table: the recipe and the training settings it does not choose by itself.

    The paper's protocol writes its numbers (the quick run's epochs among them); the auto recipe
    chooses its own from the data, so only what was given explicitly is written.
    """
    given = {
        "n_epochs": o.n_epochs,
        "chain_steps": o.chain_steps,
        "n_chains": o.n_chains,
        "learning_rate": o.learning_rate,
    }
    if o.compare == "recipe":  # a grid axis: each recipe chooses what is not given
        return {"recipe": list(COMPARABLE["recipe"]), **{k: v for k, v in given.items() if v is not None}}
    if o.recipe == "paper":
        given["n_epochs"] = epochs
        given.update({k: PAPER[k] for k in ("chain_steps", "n_chains", "learning_rate") if given[k] is None})
    table: dict[str, Any] = {"recipe": o.recipe}
    table.update({k: v for k, v in given.items() if v is not None})
    if "learning_rate" in table:
        table["learning_rate"] = float(table["learning_rate"])
    return table


def reproduce_config(
    options: ReproduceOptions | None = None,
    *,
    data_path: str | os.PathLike[str] | None = None,
    **settings: Any,
) -> str:
    """The TOML configuration of a reproduction (``nemm reproduce --print-config``).

    Takes a :class:`ReproduceOptions` and/or its fields as keywords (``data_path``: a
    ``.npy``/``.npz`` file for ``[data] path``; default the embedded digits 0, 1, 2) and returns
    a file that ``nemm sweep FILE --out DIR`` runs into the same table as :func:`reproduce`.
    """
    o = ReproduceOptions.of(options, settings)
    seed_list, epochs, n_em, rbm_list, tied_list, mix_steps = _protocol(o)
    model: dict[str, Any] = {
        "n_hidden": int(o.n_hidden),
        "hidden": o.hidden,
        "normalization": o.normalization,
        "centered": bool(o.centered),
    }
    if o.compare == "normalization":
        model[o.compare] = list(COMPARABLE[o.compare])  # a grid axis: one variant per value
    mode = "quick (demo)" if o.quick else "full"
    lines = [
        f"# nemm reproduce, {mode} run: the paper's section IV beside its baselines, as a sweep.",
        "# Run it with `nemm sweep THIS_FILE --out DIR`: the same table as `nemm reproduce` with these options.",
        "",
        "[model]",
    ]
    lines += [f"{k} = {_toml(v)}" for k, v in model.items()]
    lines += (
        ["", "[train]"]
        + [f"{k} = {_toml(v)}" for k, v in _train_table(o, epochs).items()]
        + ["", "[sweep]", f"seeds = {_seeds_toml(seed_list)}", ""]
    )
    if data_path is None:
        lines += [
            "[data]                                   # the embedded MNIST test-split digits 0, 1, 2",
            "",
        ]
    else:
        lines += ["[data]", f"path = {_toml(str(Path(data_path).resolve()))}", ""]
    lines += [
        "[diagnostics]",
        'report = "reproduce"                     # records, report and figures of nemm reproduce',
        f"diagnostic_steps = {max(2, int(o.diag_steps) // 2)}                 # per chain: the final "
        f"diagnostics ({int(o.diag_steps)} steps) over 2 chains",
        "n_chains = 2",
        f"rao_blackwell_draws = {int(o.rao_blackwell_draws)}",
        f"mixing_steps = {mix_steps}",
        f"track_every = {int(o.track_every)}",
        f"track_steps = {int(o.track_steps)}",
        "",
        "[baselines]",
        f"rbm_seeds = {_seeds_toml(rbm_list)}",
        f"tied_seeds = {_seeds_toml(tied_list)}",
        f"mixture_restarts = {n_em}",
    ]
    return "\n".join(lines) + "\n"


def _announce(config: Any, o: ReproduceOptions, data_desc: str, jobs: int, out: Path, say: Any) -> None:
    """The two lines that say what a reproduction is about to run."""
    mode = "quick (demo)" if o.quick else "full"
    bl = config.baselines
    axis = dict(config.axes)
    norms = axis.get("normalization", [o.normalization])
    recipes = axis.get("recipe", [o.recipe])
    epochs = config.grid()[0].get("n_epochs") or "the recipe's"
    say(
        f"nemm reproduce — {mode} run: {len(config.seeds)} nemm seed(s) × {epochs} epochs "
        f"({' and '.join(recipes)} recipe), L = {o.n_hidden} {o.hidden}, {' and '.join(norms)} normalization, "
        f"on {data_desc}"
    )
    say(
        f"  beside them: equilibrium RBM ({len(bl.rbm_seeds)} seed(s)), tied machine ({len(bl.tied_seeds)} seed(s)), "
        f"EM mixture ({bl.mixture_restarts} restarts); {jobs} worker process(es); writing to {out.resolve()}"
    )


def reproduce(
    out_dir: str | os.PathLike[str],
    options: ReproduceOptions | None = None,
    *,
    n_jobs: int | None = None,
    data: Any = None,
    progress: bool = True,
    figures: bool = True,
    **settings: Any,
) -> dict[str, Any]:
    """Run the paper's section IV beside its baselines and write a report.

    Parameters
    ----------
    out_dir : path-like
        Output directory (created), a sweep directory: ``results.csv`` (one row per
        model, ``kind`` in nemm, rbm, tied, mixture), ``results.json``, ``fig2.png``,
        ``fig3_best.png``, ``fig3_worst.png``, ``fig4.png``, ``fig5_mixing.png``,
        ``fig6_sigma.png``, ``report.md``, ``runs/<run id>/`` (each model and its record).
        Runs already finished there are not run again.
    options : ReproduceOptions, optional
        What to run (seeds, epochs, the machines' settings, the baselines, the chains).
    n_jobs : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in this process.
    data : optional
        ``None`` (the embedded digits 0, 1, 2 with labels), an (N, D) 0/1 array, or a
        pair ``(X, y)`` with integer labels (for the class KL and the mixing measures).
    progress : bool
        Print what is being done and one line per finished model.
    figures : bool
        Draw the figures (needs matplotlib).
    **settings
        Fields of :class:`ReproduceOptions` (``seeds=6, quick=True, ...``), over ``options``.

    Returns
    -------
    dict
        ``protocol``, ``models`` (one record per model), ``seeds`` (the nemm records of the
        first variant), ``baselines`` (``em``, ``rbm``, ``tied``), ``variants`` (per-variant
        summaries), ``summary``, ``files`` (written paths), ``seconds`` (the wall time of the
        call: the runs, the figures and the files) and ``figure_seconds``.
    """
    from nemm.config import parse_config
    from nemm.sweep import load_data, run_sweep, worker_pool

    t_start = time.perf_counter()
    o = ReproduceOptions.of(options, settings)
    out = Path(out_dir)
    config = parse_config(reproduce_config(o), source="nemm reproduce")
    jobs = int(n_jobs or os.cpu_count() or 1)
    X, y, data_desc = _resolve_data(data)
    if X is None:
        X, y, _ = load_data(config.data)
    out.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        if progress:
            tqdm.write(line, file=sys.stdout)

    if figures and importlib.util.find_spec("matplotlib") is None:
        # Say so before the long part, and still write the tables and the report.
        print(
            "nemm reproduce: matplotlib is not installed, so no figures will be drawn "
            "(pip install 'nemm[plots]' for them); the tables and the report are still written.",
            file=sys.stderr,
        )
        figures = False
    _announce(config, o, data_desc, jobs, out, say)
    n_done = [0]

    def on_run(result: Mapping[str, Any]) -> None:
        n_done[0] += 1
        if result.get("status") == "ok":
            say(
                f"  [{n_done[0]}] {time.perf_counter() - t_start:6.1f} s  {describe_result({**result, **result['swept']})}"
            )

    protocol = {"mode": "quick (demo)" if o.quick else "full", "data": data_desc}
    kw: dict[str, Any] = dict(progress=False, data=(X, y), on_run=on_run, protocol=protocol, figures=figures)
    if jobs == 1:
        res = run_sweep(config, out, workers=0, **kw)
    else:
        # One pool for the runs and the figures: the warm workers draw them in parallel.
        with worker_pool(min(jobs, config.n_runs + 4), X, y) as pool:
            res = run_sweep(config, out, workers=jobs, executor=pool, **kw)
    if res.n_errors:
        failed = [r for r in res.rows if r.get("status") != "ok"]
        raise RuntimeError(
            f"{res.n_errors} of {len(res.rows)} runs failed (table in {out / 'results.csv'}): "
            f"{failed[0].get('error')}"
        )
    report = res.report
    assert report is not None  # the report kind "reproduce" always returns its results
    # The wall time of the whole command: the worker pool's start, the runs, the figures, the files.
    report["seconds"] = time.perf_counter() - t_start
    if progress:
        print(table_text(report))
    return report
