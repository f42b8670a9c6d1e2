"""Reproduce the paper's section IV: many seeds, diagnostics, baselines, figures and a report.

``reproduce(out_dir)`` trains the paper protocol (L = 6 one-hot hidden states,
120 epochs of 30 RMSprop steps, T = 48) for 36 seeds in parallel on the embedded
MNIST digits 0, 1, 2, tracks the entropy production during training, runs the
final diagnostics of section IV.B on every seed, fits the two baselines (the EM
Bernoulli mixture, the ceiling of the one-hot model's likelihood, and the tied
RBM, the equilibrium variant trained by the same engine and protocol), and
writes ``results.csv``, ``results.json``, ``fig2.png``, ``fig3_best.png``,
``fig3_worst.png``, ``fig4.png`` and ``report.md`` into ``out_dir``.

The command line: ``nemm reproduce [--quick] [--out DIR]`` and
``nemm diagnose MODEL [--json]`` (also ``python -m nemm.reproduce``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from nemm._io import atomic_open

__all__ = [
    "CYCLE_SIGMA",
    "NEAR_EQ_SIGMA",
    "add_diagnose_arguments",
    "add_reproduce_arguments",
    "classify_regime",
    "regime_rules",
    "reproduce",
    "run_diagnose",
    "run_reproduce",
]

# --------------------------------------------------------------------------- regimes

#: Below this entropy production (nats per step), or within 3 error bars of 0: near equilibrium.
NEAR_EQ_SIGMA = 0.5
#: At or above this entropy production a machine can be called cycling (with the tau and Tr(M)/L rules).
CYCLE_SIGMA = 1.0
REGIMES = ("near-equilibrium", "intermediate", "cycling")

#: ``--quick``: seeds and epochs per machine (the full protocol: 36 and 120).
QUICK_SEEDS = 6
QUICK_EPOCHS = 60


def classify_regime(sigma: float, sigma_err: float, tau: float, self_transition: float, L: int) -> str:
    """The regime of one machine from its hidden-chain diagnostics.

    * ``"near-equilibrium"``: ``sigma < 0.5`` nats/step, or ``sigma`` within
      three error bars of zero (no measurable arrow of time).
    * ``"cycling"``: a latent cycle: ``sigma >= 1`` nats/step **and** the
      hidden state almost never repeats, ``Tr(M)/L < 1/(2L)`` (half the random
      value), **and** the chain remembers its phase for at least a turn of an
      L-state cycle, ``tau >= L`` steps.
    * ``"intermediate"``: everything else (irreversible, but the hidden state
      lingers or the cycle loses its phase within fewer than L steps).

    Parameters
    ----------
    sigma, sigma_err : float
        Entropy production rate (eq. 21) and its error bar.
    tau : float
        Decorrelation time (eq. 23); ``inf`` for a deterministic cycle.
    self_transition : float
        ``Tr(M)/L`` (eq. 24).
    L : int
        Number of hidden states.
    """
    s, e = float(sigma), float(sigma_err)
    if s < NEAR_EQ_SIGMA or (math.isfinite(e) and s <= 3.0 * e):
        return "near-equilibrium"
    if s >= CYCLE_SIGMA and float(self_transition) < 0.5 / L and float(tau) >= L:
        return "cycling"
    return "intermediate"


def regime_rules(L: int) -> dict[str, str]:
    """The regime thresholds in words, for reports."""
    return {
        "near-equilibrium": f"σ < {NEAR_EQ_SIGMA} nats/step, or σ within 3 error bars of 0",
        "cycling": f"σ ≥ {CYCLE_SIGMA} nats/step and Tr(M)/L < 1/(2L) = {0.5 / L:.3f} and τ ≥ L = {L} steps",
        "intermediate": "all other machines (irreversible, but lingering or losing the cycle's phase in < L steps)",
    }


# --------------------------------------------------------------------------- small helpers


def _atomic_write(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_open(path) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _f(v: Any) -> float:
    """Float from a number, None (NaN) or a JSON string like "inf"."""
    if v is None:
        return float("nan")
    return float(v)


def _fmt(v: Any, spec: str = ".3g") -> str:
    x = _f(v)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(x, spec)


def _pm(v: Any, e: Any, spec: str = ".3g") -> str:
    if math.isfinite(_f(e)):
        return f"{_fmt(v, spec)} ± {_fmt(e, '.2g')}"
    return _fmt(v, spec)


def _median(vals: Sequence[float]) -> float:
    a = np.array([_f(v) for v in vals], dtype=float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


# --------------------------------------------------------------------------- the workers

_WORKER_DATA: tuple[np.ndarray, np.ndarray | None] | None = None


def _init_worker(X: np.ndarray | None, y: np.ndarray | None, single_thread: bool) -> None:
    """Pool initializer: the data (None: the embedded digits) and one engine thread per worker."""
    global _WORKER_DATA
    if single_thread:
        import nemm

        nemm.set_num_threads(1)
    if X is None:
        from nemm.datasets import embedded_digits

        X, y = embedded_digits()
    _WORKER_DATA = (X, y)


def _train_and_diagnose(task: Mapping[str, Any]) -> dict[str, Any]:
    """Train one machine with per-epoch tracking, run the final diagnostics, save the model."""
    from nemm import Machine
    from nemm import diagnostics as diag

    assert _WORKER_DATA is not None, "worker data not initialized"
    X, y = _WORKER_DATA
    seed = int(task["seed"])
    t0 = time.perf_counter()
    m = Machine(int(task["n_hidden"]), tied=bool(task["tied"]), n_epochs=int(task["n_epochs"]), random_state=seed)
    callback = None
    if task["track_every"]:
        callback = diag.epoch_tracker(X, y, every=int(task["track_every"]), n_steps=int(task["track_steps"]))
    m.fit(X, callback=callback)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    # diag_steps steps in all (the spec's 1e5), as two parallel chains, and 1000 Rao-Blackwell
    # draws per state: the error bars of the report stay small, and 36 seeds stay within seconds.
    d = diag.diagnose(m, X, y, n_steps=max(2, int(task["diag_steps"]) // 2), seed=seed + 1_000_003,
                      n_chains=2, rao_blackwell_draws=1000)
    diag_s = time.perf_counter() - t1
    model = None
    if task.get("model_path"):
        model = str(m.save(task["model_path"]))
    ck = d["class_kl"] or {}
    L = int(task["n_hidden"])
    rec = {
        "kind": "rbm" if task["tied"] else "nemm",
        "seed": seed,
        "tied": bool(task["tied"]),
        "n_epochs": int(task["n_epochs"]),
        "loglik": d["loglik_exact"],
        "loglik_on_the_fly": d["loglik_on_the_fly"],
        "sigma": d["sigma"],
        "sigma_err": d["sigma_err"],
        "n_one_way": d["n_one_way"],
        "pseudocount": d["pseudocount"],
        "sigma_two_way": d["sigma_two_way"],
        "tau": d["tau"],
        "tau_err": d["tau_err"],
        "self_transition": d["self_transition"],
        "self_transition_err": d["self_transition_err"],
        "random_self_transition": d["random_self_transition"],
        "class_kl": ck.get("kl"),
        "class_p_model": ck.get("p_model"),
        "class_p_data": ck.get("p_data"),
        "state_class": ck.get("state_class"),
        "sigma_rao_blackwell": d["sigma_rao_blackwell"],
        "tau_rao_blackwell": d["tau_rao_blackwell"],
        "occupancy": d["occupancy"],
        "M": d["M"],
        "regime": classify_regime(d["sigma"], d["sigma_err"], d["tau"], d["self_transition"], L),
        "train_seconds": train_s,
        "diag_seconds": diag_s,
        "model": model,
        "history": {k: list(v) for k, v in m.history_.items() if k != "batch_size"},
        "sampling": d["sampling"],
    }
    return rec


def _em_baseline(task: Mapping[str, Any]) -> dict[str, Any]:
    """The EM Bernoulli-mixture ceiling (several restarts)."""
    from nemm.baselines import fit_em_ceiling

    assert _WORKER_DATA is not None, "worker data not initialized"
    X, _ = _WORKER_DATA
    t0 = time.perf_counter()
    ll = fit_em_ceiling(X, int(task["n_hidden"]), n_init=int(task["n_init"]), random_state=int(task["seed"]))
    return {"kind": "em", "loglik": float(ll), "n_components": int(task["n_hidden"]),
            "n_init": int(task["n_init"]), "seconds": time.perf_counter() - t0}


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


class _single_threaded_children:
    """Context manager: thread-count variables set to 1 for processes started inside it."""

    def __enter__(self) -> None:
        self.saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        for k in _THREAD_VARS:
            os.environ[k] = "1"

    def __exit__(self, *exc: Any) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    return _em_baseline(task) if task["kind"] == "em" else _train_and_diagnose(task)


def _draw_figure(job: Mapping[str, Any]) -> tuple[str, str]:
    """One figure (a job for the worker pool): returns (name, path)."""
    from nemm import load, plots

    if job["kind"] == "fig2":
        path = plots.fig2(job["seeds"], job["path"], em_ceiling=job["em"], baselines=job["rbm"])
    elif job["kind"] == "fig4":
        path = plots.fig4(job["seeds"], job["path"], L=job["L"])
    else:
        rec = job["rec"]
        path = plots.fig3(load(job["model"]), job["path"], occupancy=rec["occupancy"], M=rec["M"],
                          seed=rec["seed"], title=job["title"])
    return job["name"], str(path)


# --------------------------------------------------------------------------- progress


class _Console:
    """Friendly console output: messages and one line per finished task."""

    def __init__(self, enabled: bool, stream: Any = None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.t0 = time.perf_counter()

    def say(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def _describe_result(r: Mapping[str, Any]) -> str:
    if r["kind"] == "em":
        return f"EM ceiling ({r['n_init']} restarts): ln p = {r['loglik']:.2f}"
    what = "tied RBM" if r["kind"] == "rbm" else "seed"
    return (f"{what} {r['seed']:>2}: ln p = {_fmt(r['loglik'], '.2f')}, σ = {_pm(r['sigma'], r['sigma_err'])}, "
            f"τ = {_fmt(r['tau'])}, {r['regime']}")


# --------------------------------------------------------------------------- outputs

_CSV_COLUMNS = (
    "kind", "seed", "loglik", "loglik_on_the_fly", "em_ceiling", "gap_to_em", "sigma", "sigma_err", "n_one_way",
    "pseudocount", "sigma_two_way", "tau", "tau_err", "self_transition", "self_transition_err", "random_self_transition",
    "class_kl", "regime", "sigma_rao_blackwell", "tau_rao_blackwell", "occupancy", "n_epochs", "train_seconds",
    "model",
)


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return " ".join(_csv_value(x) for x in v)
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)
    return str(v)


def _results_csv(rows: Sequence[Mapping[str, Any]], em: float | None) -> str:
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(_CSV_COLUMNS)
    for r in rows:
        full = dict(r)
        full["em_ceiling"] = em
        full["gap_to_em"] = (_f(r["loglik"]) - em) if em is not None else None
        full["occupancy"] = [round(float(p), 6) for p in r["occupancy"]]
        wr.writerow([_csv_value(full.get(c)) for c in _CSV_COLUMNS])
    return buf.getvalue()


def _summary(seeds: Sequence[Mapping[str, Any]], rbms: Sequence[Mapping[str, Any]], em: float | None,
             L: int) -> dict[str, Any]:
    ll = [_f(r["loglik"]) for r in seeds]
    counts = {k: [int(r["seed"]) for r in seeds if r["regime"] == k] for k in REGIMES}
    s = {
        "n_seeds": len(seeds),
        "loglik_median": _median(ll),
        "loglik_min": float(np.nanmin(ll)) if ll else float("nan"),
        "loglik_max": float(np.nanmax(ll)) if ll else float("nan"),
        "loglik_q25": float(np.nanpercentile(ll, 25)) if ll else float("nan"),
        "loglik_q75": float(np.nanpercentile(ll, 75)) if ll else float("nan"),
        "sigma_median": _median([r["sigma"] for r in seeds]),
        "sigma_min": float(np.nanmin([_f(r["sigma"]) for r in seeds])) if seeds else float("nan"),
        "sigma_max": float(np.nanmax([_f(r["sigma"]) for r in seeds])) if seeds else float("nan"),
        "tau_median": _median([r["tau"] for r in seeds]),
        "self_transition_median": _median([r["self_transition"] for r in seeds]),
        "class_kl_median": _median([r["class_kl"] for r in seeds]),
        "n_one_way_median": _median([r["n_one_way"] for r in seeds]),
        "em_ceiling": em,
        "gap_to_em_median": (_median(ll) - em) if em is not None else None,
        "regimes": {k: {"count": len(v), "seeds": v} for k, v in counts.items()},
        "regime_rules": regime_rules(L),
        "rbm_loglik_median": _median([r["loglik"] for r in rbms]) if rbms else None,
        "rbm_sigma_median": _median([r["sigma"] for r in rbms]) if rbms else None,
    }
    if seeds:
        best = max(seeds, key=lambda r: _f(r["loglik"]) if math.isfinite(_f(r["loglik"])) else -math.inf)
        worst = min(seeds, key=lambda r: _f(r["loglik"]) if math.isfinite(_f(r["loglik"])) else math.inf)
        s["best_seed"], s["worst_seed"] = int(best["seed"]), int(worst["seed"])
    return s


def _report_md(res: Mapping[str, Any]) -> str:
    s = res["summary"]
    p = res["protocol"]
    L = p["n_hidden"]
    seeds = res["seeds"]
    rbms = res["baselines"]["rbm"]
    em = res["baselines"]["em"]
    lines: list[str] = []
    add = lines.append
    add("# nemm reproduction of Baiesi & Rosso, section IV")
    add("")
    add(f"*{p['mode']} run* on {p['data']}: L = {L} one-hot hidden states, {p['n_epochs']} epochs × "
        f"{p['steps_per_epoch']} RMSprop steps (lr {p['learning_rate']}), minibatch {p['batch_size'][0]} → "
        f"{p['batch_size'][1]}, T = {p['chain_steps']} chain steps, {s['n_seeds']} seeds; "
        f"{res['seconds']:.1f} s on {p['n_jobs']} process(es).")
    add("")
    add("## Summary")
    add("")
    add(f"- **Log-likelihood** (exact ln p(x) given a long-chain occupancy, appendix A3): median "
        f"**{_fmt(s['loglik_median'], '.2f')}** nats/digit (quartiles {_fmt(s['loglik_q25'], '.2f')} to "
        f"{_fmt(s['loglik_q75'], '.2f')}; best {_fmt(s['loglik_max'], '.2f')} = seed {s.get('best_seed')}, "
        f"worst {_fmt(s['loglik_min'], '.2f')} = seed {s.get('worst_seed')}).")
    if em is not None:
        add(f"- **EM ceiling** (mixture of {L} product-Bernoullis, {em['n_init']} restarts): "
            f"**{em['loglik']:.2f}** nats/digit; the median machine is "
            f"{abs(s['gap_to_em_median']):.2f} nats/digit {'below' if s['gap_to_em_median'] < 0 else 'above'} it.")
    if rbms:
        for r in rbms:
            add(f"- **Tied RBM baseline** (wbar = wᵀ, same engine and protocol, seed {r['seed']}): ln p = "
                f"{_fmt(r['loglik'], '.2f')}, σ = {_pm(r['sigma'], r['sigma_err'])} nats/step "
                f"({r['n_one_way']} one-way pairs), τ = {_fmt(r['tau'])}: {r['regime']}.")
    add(f"- **Entropy production** σ: median {_fmt(s['sigma_median'])} nats/step (range {_fmt(s['sigma_min'])} "
        f"to {_fmt(s['sigma_max'])}); decorrelation time τ: median {_fmt(s['tau_median'])} steps; "
        f"mean self-transition Tr(M)/L: median {_fmt(s['self_transition_median'])} (random: 1/L = {1 / L:.3f}); "
        f"class KL: median {_fmt(s['class_kl_median'])} nats.")
    add("")
    add("## Regimes")
    add("")
    add("Every seed is classified from its final σ, τ and Tr(M)/L (`nemm.reproduce.classify_regime`):")
    add("")
    for k in REGIMES:
        info = s["regimes"][k]
        listed = ", ".join(str(x) for x in info["seeds"]) or "none"
        add(f"- **{k}** — {s['regime_rules'][k]}: **{info['count']}** of {s['n_seeds']} seeds ({listed}).")
    add("")
    found = [k for k in REGIMES if s["regimes"][k]["count"]]
    add("Regimes found: " + (", ".join(f"{k} ({s['regimes'][k]['count']})" for k in found) or "none") + ".")
    add("")
    figs = res.get("files", {})
    if "fig2" in figs:
        add("## Figures")
        add("")
        add("![Fig. 2: log-likelihood and entropy production during training; final ln p against σ](fig2.png)")
        add("")
        add(f"![Fig. 3 (best seed {s.get('best_seed')}): weights w with occupancy, wbar, abar, M and a hidden "
            "trajectory (mean images and samples)](fig3_best.png)")
        add("")
        add(f"![Fig. 3 (worst seed {s.get('worst_seed')})](fig3_worst.png)")
        add("")
        add("![Fig. 4: class KL, decorrelation time and mean self-transition against σ](fig4.png)")
        add("")
    add("## All seeds")
    add("")
    add("| seed | ln p (exact) | ln p (on the fly) | σ (nats/step) | one-way pairs | σ two-way only | τ (steps) "
        "| Tr(M)/L | class KL | regime |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in sorted(seeds, key=lambda r: r["seed"]):
        add(f"| {r['seed']} | {_fmt(r['loglik'], '.2f')} | {_fmt(r['loglik_on_the_fly'], '.2f')} | "
            f"{_pm(r['sigma'], r['sigma_err'])} | {r['n_one_way']} | {_fmt(r['sigma_two_way'])} | "
            f"{_pm(r['tau'], r['tau_err'])} | "
            f"{_fmt(r['self_transition'])} | {_fmt(r['class_kl'])} | {r['regime']} |")
    add("")
    add("## How the numbers were obtained")
    add("")
    samp = seeds[0]["sampling"] if seeds else {}
    add(f"- Final diagnostics: {samp.get('n_chains')} fresh chains × {samp.get('n_steps')} steps after a burn-in "
        f"of {samp.get('burn_in')}; M is the row-normalized transition count, p̄ the occupancy. Error bars: "
        f"standard error over {samp.get('n_segments')} consecutive time windows.")
    add(f"- σ (eq. 21) from the counts; a pair of states seen in one direction only gets a pseudo-count of "
        f"{seeds[0]['pseudocount'] if seeds else 0.5} in both directions and is reported as a one-way pair. "
        "With one-way pairs the plug-in σ grows like ln(number of steps): it measures how irreversible the chain "
        "looks at this sample size; the Rao–Blackwell σ in `results.json` (`sigma_rao_blackwell`) uses the "
        "estimated M without counting noise and is larger still for nearly deterministic cycles.")
    add("- τ = −1/ln|λ₂| of the empirical M (eq. 23); Tr(M)/L (eq. 24). Class KL (eq. 22): every digit goes to "
        "its most probable hidden state, a state takes the majority label of its digits.")
    add(f"- Training-time σ (Fig. 2b) is tracked every {p['track_every']} epochs from {p['track_steps']}-step "
        "chains, so it is noisier and smaller (shorter chains) than the final value.")
    add("- For comparison, the reference figures of the project spec (an independent implementation, paper "
        "protocol, 36 seeds): EM ceiling ≈ −146.8, trained models −147 to −152 nats/digit, σ ≈ 1 to 4, τ ≈ 2 to "
        f"20 steps. Here: ln p {_fmt(s['loglik_min'], '.1f')} to {_fmt(s['loglik_max'], '.1f')}, σ "
        f"{_fmt(s['sigma_min'])} to {_fmt(s['sigma_max'])} with a median of {_fmt(s['n_one_way_median'], '.0f')} "
        f"one-way pairs (of {L * (L - 1) // 2}) per machine. σ values differ between estimators when pairs are "
        "one-way: compare them only at equal chain length and pseudo-count.")
    add("")
    add("Files: `results.csv` (one row per machine), `results.json` (everything, including per-epoch histories, "
        "M and the baselines), `models/` (the trained machines: `nemm diagnose models/seed_000.npz`).")
    add("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the driver


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


def reproduce(
    out_dir: str | os.PathLike[str],
    *,
    seeds: int | Sequence[int] | None = None,
    n_epochs: int | None = None,
    quick: bool = False,
    n_jobs: int | None = None,
    data: Any = None,
    track_every: int = 10,
    progress: bool = True,
    n_hidden: int = 6,
    track_steps: int = 5000,
    diag_steps: int = 100_000,
    em_restarts: int | None = None,
    rbm_seeds: int | Sequence[int] | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Run the paper's section IV and write a report.

    Parameters
    ----------
    out_dir : path-like
        Output directory (created): ``results.csv``, ``results.json``, ``fig2.png``,
        ``fig3_best.png``, ``fig3_worst.png``, ``fig4.png``, ``report.md``, ``models/``.
    seeds : int or sequence of int, optional
        Number of seeds (0, 1, ...) or the seeds themselves. Default 36 (quick: 6).
    n_epochs : int, optional
        Epochs per machine. Default 120 (quick: 60).
    quick : bool
        Demo settings: 6 seeds, 60 epochs, 2 EM restarts, 1 RBM seed (well under a
        minute on two cores). Explicit ``seeds``/``n_epochs``/... still win.
    n_jobs : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in this process.
    data : optional
        ``None`` (the embedded digits 0, 1, 2 with labels), an (N, D) 0/1 array, or a
        pair ``(X, y)`` with integer labels (for the class KL).
    track_every : int
        Track sigma, tau and the exact log-likelihood every this many epochs
        during training (0: no tracking). The cost is ``track_steps`` chain steps each time.
    progress : bool
        Print what is being done and one line per finished machine.
    n_hidden : int
        L, one-hot hidden states (the paper: 6).
    track_steps : int
        Chain length of the per-epoch tracking.
    diag_steps : int
        Steps of the final diagnostics, split over 2 chains (the paper: 1e5).
    em_restarts : int, optional
        EM restarts of the ceiling (default 5; quick 2).
    rbm_seeds : int or sequence of int, optional
        Tied RBM baseline seeds (default 3; quick 1; 0 for none).
    figures : bool
        Draw the figures (needs matplotlib).

    Returns
    -------
    dict
        ``protocol``, ``seeds`` (one record per seed), ``baselines`` (``em``, ``rbm``),
        ``summary`` (medians, regimes), ``files`` (written paths) and ``seconds``.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    from nemm import diagnostics as diag

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds if seeds is not None else (QUICK_SEEDS if quick else 36))) if not isinstance(
        seeds, (list, tuple, range, np.ndarray)) else [int(s) for s in seeds]
    epochs = int(n_epochs if n_epochs is not None else (QUICK_EPOCHS if quick else 120))
    n_em = int(em_restarts if em_restarts is not None else (2 if quick else 5))
    rb = rbm_seeds if rbm_seeds is not None else (1 if quick else 3)
    rbm_list = list(range(rb)) if isinstance(rb, (int, np.integer)) else [int(s) for s in rb]
    jobs = int(n_jobs or os.cpu_count() or 1)
    if not seed_list:
        raise ValueError("reproduce needs at least one seed")
    if epochs < 1 or n_hidden < 2:
        raise ValueError("need n_epochs >= 1 and n_hidden >= 2")
    X, y, data_desc = _resolve_data(data)
    con = _Console(progress)
    if figures and importlib.util.find_spec("matplotlib") is None:
        # Say so before the long part, and still write the tables and the report.
        print("nemm reproduce: matplotlib is not installed, so no figures will be drawn "
              "(pip install 'nemm[plots]' for them); the tables and the report are still written.",
              file=sys.stderr)
        figures = False
    mode = "quick (demo)" if quick else "full"
    con.say(f"nemm reproduce — {mode} run: {len(seed_list)} seed(s) × {epochs} epochs, L = {n_hidden} one-hot, "
            f"on {data_desc}")
    con.say(f"  baselines: EM mixture ceiling ({n_em} restarts)"
            + (f", tied RBM ({len(rbm_list)} seed(s))" if rbm_list else "")
            + f"; {jobs} worker process(es); writing to {out.resolve()}")

    models = out / "models"
    models.mkdir(exist_ok=True)
    common = dict(n_hidden=int(n_hidden), n_epochs=epochs, track_every=int(track_every),
                  track_steps=int(track_steps), diag_steps=int(diag_steps))
    tasks: list[dict[str, Any]] = []
    if n_em > 0:
        tasks.append({"kind": "em", "n_hidden": int(n_hidden), "n_init": n_em, "seed": 0})
    for s in seed_list:
        tasks.append({"kind": "machine", "seed": s, "tied": False, **common,
                      "model_path": str(models / f"seed_{s:03d}.npz")})
    for s in rbm_list:
        tasks.append({"kind": "machine", "seed": s, "tied": True, **common,
                      "model_path": str(models / f"rbm_seed_{s:03d}.npz")})

    results: list[dict[str, Any]] = []
    total = len(tasks)

    def done(r: dict[str, Any]) -> None:
        results.append(r)
        con.say(f"  [{len(results):>{len(str(total))}}/{total}] {con.elapsed():6.1f} s  {_describe_result(r)}")

    con.say(f"training {len(seed_list)} machine(s) and the baselines ({total} jobs)...")
    with contextlib.ExitStack() as stack:
        pool = None
        if jobs == 1:
            global _WORKER_DATA
            saved = _WORKER_DATA
            try:
                _init_worker(X, y, single_thread=False)
                for t in tasks:
                    done(_run_task(t))
            finally:
                _WORKER_DATA = saved
        else:
            # spawn, not fork: the parent may hold OpenMP threads, which a forked child cannot use.
            ctx = mp.get_context("spawn")
            pool = stack.enter_context(cf.ProcessPoolExecutor(
                max_workers=min(jobs, total), mp_context=ctx, initializer=_init_worker, initargs=(X, y, True)))
            # One BLAS/OpenMP thread per worker (the processes are the parallelism): the workers read
            # these variables when they start, which happens while the tasks are submitted.
            with _single_threaded_children():
                futures = [pool.submit(_run_task, t) for t in tasks]
            try:
                for fut in cf.as_completed(futures):
                    done(fut.result())
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        train_seconds = con.elapsed()

        seeds_res = sorted((r for r in results if r["kind"] == "nemm"), key=lambda r: r["seed"])
        rbm_res = sorted((r for r in results if r["kind"] == "rbm"), key=lambda r: r["seed"])
        em_res = next((r for r in results if r["kind"] == "em"), None)
        em_ll = em_res["loglik"] if em_res else None
        for r in seeds_res + rbm_res:
            if r["model"]:
                r["model"] = os.path.relpath(r["model"], out)
        protocol = {
            "mode": mode, "data": data_desc, "n_hidden": int(n_hidden), "hidden": "onehot", "n_epochs": epochs,
            "steps_per_epoch": 30, "batch_size": [16, 160], "chain_steps": 48, "learning_rate": 0.1,
            "seeds": seed_list, "rbm_seeds": rbm_list, "em_restarts": n_em, "n_jobs": jobs,
            "track_every": int(track_every), "track_steps": int(track_steps), "diag_steps": int(diag_steps),
        }
        res: dict[str, Any] = {
            "protocol": protocol,
            "seeds": seeds_res,
            "baselines": {"em": em_res, "rbm": rbm_res},
            "summary": _summary(seeds_res, rbm_res, em_ll, int(n_hidden)),
            "seconds": 0.0,
            "files": {},
        }

        files: dict[str, str] = {}
        if figures:
            con.say("drawing figures...")
            fig_jobs: list[dict[str, Any]] = [
                {"kind": "fig2", "name": "fig2", "path": str(out / "fig2.png"), "seeds": seeds_res, "em": em_ll,
                 "rbm": rbm_res},
                {"kind": "fig4", "name": "fig4", "path": str(out / "fig4.png"), "seeds": seeds_res,
                 "L": int(n_hidden)},
            ]
            for tag, key in (("best", "best_seed"), ("worst", "worst_seed")):
                rec = next(r for r in seeds_res if r["seed"] == res["summary"][key])
                fig_jobs.append({
                    "kind": "fig3", "name": f"fig3_{tag}", "path": str(out / f"fig3_{tag}.png"),
                    "model": str(out / rec["model"]), "rec": rec,
                    "title": f"Fig. 3 — {tag} seed {rec['seed']}: ln p = {_fmt(rec['loglik'], '.2f')}, "
                             f"σ = {_pm(rec['sigma'], rec['sigma_err'])}, τ = {_fmt(rec['tau'])} ({rec['regime']})"})
            # The warm workers draw the figures in parallel; without a pool, one after another.
            drawn = (pool.map(_draw_figure, fig_jobs) if pool is not None else map(_draw_figure, fig_jobs))
            for name, path in drawn:
                files[name] = path
            files = {k: files[k] for k in ("fig2", "fig3_best", "fig3_worst", "fig4") if k in files}
    res["seconds"] = time.perf_counter() - t_start
    res["training_seconds"] = train_seconds
    files["results_csv"] = str(_atomic_write(out / "results.csv", _results_csv(seeds_res + rbm_res, em_ll)))
    files["report"] = str(out / "report.md")
    files["results_json"] = str(out / "results.json")
    res["files"] = files
    _atomic_write(out / "report.md", _report_md(res))
    _atomic_write(out / "results.json", diag.to_json(res, indent=1))
    if progress:
        _print_table(res, con)
    return res


def _print_table(res: Mapping[str, Any], con: _Console) -> None:
    s = res["summary"]
    L = res["protocol"]["n_hidden"]
    con.say("")
    con.say(f"{'seed':>4}  {'ln p':>8}  {'sigma ± err':>16}  {'1-way':>5}  {'tau':>8}  {'Tr(M)/L':>8}  "
            f"{'KL':>8}  regime")
    for r in res["seeds"] + res["baselines"]["rbm"]:
        tag = f"{r['seed']}" + ("*" if r["kind"] == "rbm" else "")
        con.say(f"{tag:>4}  {_fmt(r['loglik'], '.2f'):>8}  {_pm(r['sigma'], r['sigma_err']):>16}  "
                f"{r['n_one_way']:>5}  {_fmt(r['tau']):>8}  {_fmt(r['self_transition']):>8}  "
                f"{_fmt(r['class_kl']):>8}  {r['regime']}")
    if res["baselines"]["rbm"]:
        con.say("   * tied RBM baseline (equilibrium)")
    con.say("")
    em = s["em_ceiling"]
    con.say(f"median ln p = {_fmt(s['loglik_median'], '.2f')} nats/digit"
            + (f"; EM ceiling {em:.2f} (median gap {s['gap_to_em_median']:+.2f})" if em is not None else ""))
    if s["rbm_loglik_median"] is not None:
        con.say(f"tied RBM: ln p = {_fmt(s['rbm_loglik_median'], '.2f')}, sigma = {_fmt(s['rbm_sigma_median'])}")
    con.say("regimes: " + ", ".join(f"{k} {s['regimes'][k]['count']}" for k in REGIMES)
            + f"  (rules: nemm.reproduce.classify_regime, L = {L})")
    con.say(f"done in {res['seconds']:.1f} s. Report: {res['files']['report']}")


# --------------------------------------------------------------------------- command line: reproduce


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nemm reproduce``."""
    parser.add_argument("--out", default="nemm-report", help="output directory (default nemm-report)")
    parser.add_argument("--quick", action="store_true",
                        help="demo: 6 seeds x 60 epochs, 2 EM restarts, 1 RBM seed (under a minute on 2 cores)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 36; quick 6)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per machine (default 120; quick 60)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--hidden", type=int, default=6, help="L, one-hot hidden states (default 6)")
    parser.add_argument("--data", default=None,
                        help=".npy/.npz of 0/1 rows, an MNIST IDX directory or a PNG folder "
                             "(default: the embedded digits 0, 1, 2)")
    parser.add_argument("--labels", default=None, help=".npy of integer labels for --data (for the class KL)")
    parser.add_argument("--track-every", type=int, default=10,
                        help="track sigma/tau/ln p every N epochs during training (0: off; default 10)")
    parser.add_argument("--track-steps", type=int, default=5000, help="chain steps per tracking point")
    parser.add_argument("--diag-steps", type=int, default=100_000,
                        help="chain steps of the final diagnostics, over 2 chains (default 1e5)")
    parser.add_argument("--em-restarts", type=int, default=None, help="EM restarts (default 5; quick 2)")
    parser.add_argument("--rbm-seeds", type=int, default=None, help="tied RBM seeds (default 3; quick 1)")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures (no matplotlib needed)")
    parser.add_argument("--quiet", action="store_true", help="no console output")


def _load_user_data(path: str | None, labels: str | None) -> Any:
    if path is None:
        return None
    from nemm.datasets import load_binary

    X = load_binary(path)
    if labels is None:
        return X
    y = np.load(labels, allow_pickle=False)
    return (X, y)


def run_reproduce(args: argparse.Namespace) -> int:
    """``nemm reproduce``: run :func:`reproduce` from parsed arguments."""
    reproduce(
        args.out,
        seeds=getattr(args, "seeds", None),
        n_epochs=getattr(args, "epochs", None),
        quick=bool(getattr(args, "quick", False)),
        n_jobs=getattr(args, "jobs", None),
        data=_load_user_data(getattr(args, "data", None), getattr(args, "labels", None)),
        track_every=int(getattr(args, "track_every", 10)),
        progress=not bool(getattr(args, "quiet", False)),
        n_hidden=int(getattr(args, "hidden", 6)),
        track_steps=int(getattr(args, "track_steps", 5000)),
        diag_steps=int(getattr(args, "diag_steps", 100_000)),
        em_restarts=getattr(args, "em_restarts", None),
        rbm_seeds=getattr(args, "rbm_seeds", None),
        figures=not bool(getattr(args, "no_figures", False)),
    )
    return 0


# --------------------------------------------------------------------------- command line: diagnose


def add_diagnose_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``nemm diagnose``."""
    parser.add_argument("model", help="a model file written by Machine.save / nemm train")
    parser.add_argument("--json", action="store_true", help="print the full diagnostics as JSON")
    parser.add_argument("--data", default=None,
                        help="data for ln p and the class KL (.npy/.npz, IDX dir, PNG folder); default: the "
                             "embedded digits 0, 1, 2 when the model has 784 visible units")
    parser.add_argument("--labels", default=None, help=".npy of integer labels for --data (class KL)")
    parser.add_argument("--no-data", action="store_true", help="chain diagnostics only")
    parser.add_argument("--steps", type=int, default=100_000, help="steps per chain (4 chains; default 1e5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the diagnostic chains")


def _diagnose_summary(d: Mapping[str, Any], path: str, data_desc: str | None) -> str:
    L = d["L"]
    lines = [f"model: {path} ({d['n_visible']} visible, {d['n_states']} hidden states, "
             f"{'tied RBM' if d['machine'].get('tied') else 'untied'})"]
    sp = d["sampling"]
    lines.append(f"chains: {sp['n_chains']} x {sp['n_steps']} steps (burn-in {sp['burn_in']}), "
                 f"error bars over {sp['n_segments']} time windows")
    lines.append(f"entropy production sigma (eq. 21): {_pm(d['sigma'], d['sigma_err'])} nats/step "
                 f"({d['n_one_way']} one-way pair(s), pseudo-count {d['pseudocount']}; "
                 f"{_fmt(d['sigma_two_way'])} over two-way pairs only)")
    if d.get("sigma_rao_blackwell") is not None:
        lines.append(f"  from the Rao-Blackwell M: {_fmt(d['sigma_rao_blackwell'])} nats/step")
    lines.append(f"decorrelation time tau (eq. 23): {_pm(d['tau'], d['tau_err'])} steps")
    lines.append(f"mean self-transition Tr(M)/L (eq. 24): {_pm(d['self_transition'], d['self_transition_err'])} "
                 f"(random: {d['random_self_transition']:.3f})")
    if d["n_states"] <= 16:
        lines.append("occupancy: " + " ".join(f"{p:.3f}" for p in d["occupancy"]))
        lines.append("M (row: state, column: next state):")
        for row in d["M"]:
            lines.append("  " + " ".join(f"{v:5.3f}" for v in row))
    if d.get("loglik_exact") is not None:
        lines.append(f"log-likelihood on {data_desc}: {d['loglik_exact']:.3f} nats/point (exact given the occupancy)")
    if d.get("loglik_on_the_fly") is not None:
        lines.append(f"log-likelihood, last training epoch (on-the-fly estimate): {d['loglik_on_the_fly']:.3f}")
    ck = d.get("class_kl")
    if ck:
        lines.append(f"class KL (eq. 22): {_fmt(ck['kl'])} nats; P_data {np.round(ck['p_data'], 3).tolist()}, "
                     f"P_model {np.round(ck['p_model'], 3).tolist()}, lost mass {ck['lost_mass']:.3g}")
    if L == d["n_states"]:
        lines.append(f"regime: {classify_regime(d['sigma'], d['sigma_err'], d['tau'], d['self_transition'], L)}")
    return "\n".join(lines)


def run_diagnose(args: argparse.Namespace) -> int:
    """``nemm diagnose MODEL``: load a model, run :func:`nemm.diagnostics.diagnose`, print it."""
    from nemm import diagnostics as diag
    from nemm import load

    m = load(args.model)
    X = y = None
    desc = None
    if not getattr(args, "no_data", False):
        if getattr(args, "data", None) is not None:
            d = _load_user_data(args.data, getattr(args, "labels", None))
            X, y = d if isinstance(d, tuple) else (d, None)
            desc = str(args.data)
        elif m.n_visible_ == 784:
            from nemm.datasets import embedded_digits

            X, y = embedded_digits()
            desc = "the embedded digits 0, 1, 2"
    d = diag.diagnose(m, X, y, n_steps=int(getattr(args, "steps", 100_000)), seed=int(getattr(args, "seed", 0)))
    if getattr(args, "json", False):
        print(diag.to_json(d, indent=1))
    else:
        print(_diagnose_summary(d, args.model, desc))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nemm.reproduce [...]``: the same as ``nemm reproduce``."""
    parser = argparse.ArgumentParser(prog="python -m nemm.reproduce",
                                     description="Reproduce the paper's section IV (table, figures, report).")
    add_reproduce_arguments(parser)
    return run_reproduce(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    from nemm.reproduce import (
        main as _main,  # the importable module, so that worker processes find it
    )

    sys.exit(_main())
