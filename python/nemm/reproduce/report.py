"""The report of a reproduction, from its results table alone: summary, report.md, CSV, JSON, figures.

Everything here reads the results dictionary that :func:`nemm.reproduce.reproduce`
returns and writes to ``results.json`` (``protocol``, ``seeds``, ``baselines``,
``files``...), never a running machine, so a report can be redrawn from a
saved ``results.json`` (:func:`rebuild_report`) and sweeps can reuse it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from nemm.reproduce.regimes import REGIMES, regime_rules
from nemm.results import as_float as _f
from nemm.results import write_csv, write_json, write_text

__all__ = ["CSV_COLUMNS", "describe_result", "draw_figures", "fmt", "fmt_pm", "rebuild_report", "report_markdown",
           "summarize", "table_text", "write_report", "write_tables"]


def fmt(v: Any, spec: str = ".3g") -> str:
    """A number for reports: ``format(v, spec)``, "–" for NaN/None, "∞" for infinities."""
    x = _f(v)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return format(x, spec)


def fmt_pm(v: Any, e: Any, spec: str = ".3g") -> str:
    """``v ± e`` when the error bar ``e`` is finite, else ``v`` alone."""
    if math.isfinite(_f(e)):
        return f"{fmt(v, spec)} ± {fmt(e, '.2g')}"
    return fmt(v, spec)


def _median(vals: Sequence[float]) -> float:
    a = np.array([_f(v) for v in vals], dtype=float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")



def describe_result(r: Mapping[str, Any]) -> str:
    """One console line for a finished task (a machine record or the EM baseline)."""
    if r["kind"] == "em":
        return f"EM ceiling ({r['n_init']} restarts): ln p = {r['loglik']:.2f}"
    what = "tied RBM" if r["kind"] == "rbm" else "seed"
    return (f"{what} {r['seed']:>2}: ln p = {fmt(r['loglik'], '.2f')}, σ = {fmt_pm(r['sigma'], r['sigma_err'])}, "
            f"τ = {fmt(r['tau'])}, {r['regime']}")


#: Columns of results.csv: one row per machine (seeds, then tied RBMs).
CSV_COLUMNS = (
    "kind", "seed", "loglik", "loglik_on_the_fly", "em_ceiling", "gap_to_em", "sigma", "sigma_err", "n_one_way",
    "pseudocount", "sigma_two_way", "tau", "tau_err", "self_transition", "self_transition_err",
    "random_self_transition", "class_kl", "regime", "sigma_rao_blackwell", "tau_rao_blackwell", "occupancy",
    "n_epochs", "train_seconds", "model",
)


def _csv_rows(rows: Iterable[Mapping[str, Any]], em: float | None) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        full = dict(r)
        full["em_ceiling"] = em
        full["gap_to_em"] = (_f(r["loglik"]) - em) if em is not None else None
        full["occupancy"] = [round(float(p), 6) for p in r["occupancy"]]
        out.append(full)
    return out


def summarize(seeds: Sequence[Mapping[str, Any]], rbms: Sequence[Mapping[str, Any]], em: float | None,
             L: int) -> dict[str, Any]:
    """Medians, quartiles, regimes and best/worst seeds of a set of machine records."""
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


def report_markdown(res: Mapping[str, Any]) -> str:
    """The text of report.md from a results dictionary."""
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
        f"**{fmt(s['loglik_median'], '.2f')}** nats/digit (quartiles {fmt(s['loglik_q25'], '.2f')} to "
        f"{fmt(s['loglik_q75'], '.2f')}; best {fmt(s['loglik_max'], '.2f')} = seed {s.get('best_seed')}, "
        f"worst {fmt(s['loglik_min'], '.2f')} = seed {s.get('worst_seed')}).")
    if em is not None:
        add(f"- **EM ceiling** (mixture of {L} product-Bernoullis, {em['n_init']} restarts): "
            f"**{em['loglik']:.2f}** nats/digit; the median machine is "
            f"{abs(s['gap_to_em_median']):.2f} nats/digit {'below' if s['gap_to_em_median'] < 0 else 'above'} it.")
    if rbms:
        for r in rbms:
            add(f"- **Tied RBM baseline** (wbar = wᵀ, same engine and protocol, seed {r['seed']}): ln p = "
                f"{fmt(r['loglik'], '.2f')}, σ = {fmt_pm(r['sigma'], r['sigma_err'])} nats/step "
                f"({r['n_one_way']} one-way pairs), τ = {fmt(r['tau'])}: {r['regime']}.")
    add(f"- **Entropy production** σ: median {fmt(s['sigma_median'])} nats/step (range {fmt(s['sigma_min'])} "
        f"to {fmt(s['sigma_max'])}); decorrelation time τ: median {fmt(s['tau_median'])} steps; "
        f"mean self-transition Tr(M)/L: median {fmt(s['self_transition_median'])} (random: 1/L = {1 / L:.3f}); "
        f"class KL: median {fmt(s['class_kl_median'])} nats.")
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
        add(f"| {r['seed']} | {fmt(r['loglik'], '.2f')} | {fmt(r['loglik_on_the_fly'], '.2f')} | "
            f"{fmt_pm(r['sigma'], r['sigma_err'])} | {r['n_one_way']} | {fmt(r['sigma_two_way'])} | "
            f"{fmt_pm(r['tau'], r['tau_err'])} | "
            f"{fmt(r['self_transition'])} | {fmt(r['class_kl'])} | {r['regime']} |")
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
        f"20 steps. Here: ln p {fmt(s['loglik_min'], '.1f')} to {fmt(s['loglik_max'], '.1f')}, σ "
        f"{fmt(s['sigma_min'])} to {fmt(s['sigma_max'])} with a median of {fmt(s['n_one_way_median'], '.0f')} "
        f"one-way pairs (of {L * (L - 1) // 2}) per machine. σ values differ between estimators when pairs are "
        "one-way: compare them only at equal chain length and pseudo-count.")
    add("")
    add("Files: `results.csv` (one row per machine), `results.json` (everything, including per-epoch histories, "
        "M and the baselines), `models/` (the trained machines: `nemm diagnose models/seed_000.npz`).")
    add("")
    return "\n".join(lines)




def _fig3_title(tag: str, rec: Mapping[str, Any]) -> str:
    return (f"Fig. 3 — {tag} seed {rec['seed']}: ln p = {fmt(rec['loglik'], '.2f')}, "
            f"σ = {fmt_pm(rec['sigma'], rec['sigma_err'])}, τ = {fmt(rec['tau'])} ({rec['regime']})")


def _draw_figure(job: Mapping[str, Any]) -> tuple[str, str]:
    """One figure (a job that a worker pool can run): returns (name, path)."""
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


def draw_figures(res: Mapping[str, Any], out_dir: str | Path,
                 map_fn: Callable[..., Iterable[tuple[str, str]]] = map) -> dict[str, str]:
    """Draw Figs. 2, 3 (best and worst seed) and 4 of a results dictionary into ``out_dir``.

    ``map_fn`` runs the four independent jobs (``map``, or a worker pool's ``map``).
    Fig. 3 reads the saved model of the seed (``record["model"]``, relative to ``out_dir``).
    """
    out = Path(out_dir)
    seeds = res["seeds"]
    em = res["baselines"]["em"]
    jobs: list[dict[str, Any]] = [
        {"kind": "fig2", "name": "fig2", "path": str(out / "fig2.png"), "seeds": seeds,
         "em": em["loglik"] if em else None, "rbm": res["baselines"]["rbm"]},
        {"kind": "fig4", "name": "fig4", "path": str(out / "fig4.png"), "seeds": seeds,
         "L": int(res["protocol"]["n_hidden"])},
    ]
    for tag, key in (("best", "best_seed"), ("worst", "worst_seed")):
        rec = next(r for r in seeds if r["seed"] == res["summary"][key])
        if rec.get("model"):
            jobs.append({"kind": "fig3", "name": f"fig3_{tag}", "path": str(out / f"fig3_{tag}.png"),
                         "model": str(out / rec["model"]), "rec": rec, "title": _fig3_title(tag, rec)})
    drawn = dict(map_fn(_draw_figure, jobs))
    return {k: drawn[k] for k in ("fig2", "fig3_best", "fig3_worst", "fig4") if k in drawn}


def write_tables(res: dict[str, Any], out_dir: str | Path, figure_files: Mapping[str, str] | None = None
                 ) -> dict[str, str]:
    """Write results.csv, results.json and report.md of a results dictionary (figures already drawn).

    Fills ``res["files"]`` with ``figure_files`` and the written paths and returns it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = dict(figure_files or {})
    em = res["baselines"]["em"]
    machines = list(res["seeds"]) + list(res["baselines"]["rbm"])
    files["results_csv"] = str(write_csv(out / "results.csv", _csv_rows(machines, em["loglik"] if em else None),
                                         CSV_COLUMNS))
    files["report"] = str(out / "report.md")
    files["results_json"] = str(out / "results.json")
    res["files"] = files
    write_text(out / "report.md", report_markdown(res))
    write_json(out / "results.json", res)
    return files


def write_report(res: dict[str, Any], out_dir: str | Path, *, figures: bool = True,
                 map_fn: Callable[..., Iterable[tuple[str, str]]] = map) -> dict[str, str]:
    """Draw the figures (optionally) and write the tables and report.md of a results dictionary.

    Fills ``res["files"]`` with the written paths and returns it.
    """
    return write_tables(res, out_dir, draw_figures(res, out_dir, map_fn) if figures else None)


def rebuild_report(out_dir: str | Path, *, figures: bool = True) -> dict[str, str]:
    """Redraw report.md, results.csv and the figures from the ``results.json`` in ``out_dir``."""
    out = Path(out_dir)
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    return write_report(res, out, figures=figures)


def table_text(res: Mapping[str, Any]) -> str:
    """The console table of every machine and the summary lines."""
    s = res["summary"]
    L = res["protocol"]["n_hidden"]
    lines = ["", f"{'seed':>4}  {'ln p':>8}  {'sigma ± err':>16}  {'1-way':>5}  {'tau':>8}  {'Tr(M)/L':>8}  "
             f"{'KL':>8}  regime"]
    for r in list(res["seeds"]) + list(res["baselines"]["rbm"]):
        tag = f"{r['seed']}" + ("*" if r["kind"] == "rbm" else "")
        lines.append(f"{tag:>4}  {fmt(r['loglik'], '.2f'):>8}  {fmt_pm(r['sigma'], r['sigma_err']):>16}  "
                     f"{r['n_one_way']:>5}  {fmt(r['tau']):>8}  {fmt(r['self_transition']):>8}  "
                     f"{fmt(r['class_kl']):>8}  {r['regime']}")
    if res["baselines"]["rbm"]:
        lines.append("   * tied RBM baseline (equilibrium)")
    lines.append("")
    em = s["em_ceiling"]
    lines.append(f"median ln p = {fmt(s['loglik_median'], '.2f')} nats/digit"
                 + (f"; EM ceiling {em:.2f} (median gap {s['gap_to_em_median']:+.2f})" if em is not None else ""))
    if s["rbm_loglik_median"] is not None:
        lines.append(f"tied RBM: ln p = {fmt(s['rbm_loglik_median'], '.2f')}, "
                     f"sigma = {fmt(s['rbm_sigma_median'])}")
    lines.append("regimes: " + ", ".join(f"{k} {s['regimes'][k]['count']}" for k in REGIMES)
                 + f"  (rules: nemm.reproduce.classify_regime, L = {L})")
    lines.append(f"done in {res['seconds']:.1f} s. Report: {res['files']['report']}")
    return "\n".join(lines)
