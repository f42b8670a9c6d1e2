"""The report of a reproduction, from its results table alone: summary, report.md, CSV, JSON, figures.

Everything here reads the results dictionary that :func:`nemm.reproduce.reproduce`
returns and writes to ``results.json`` (``protocol``, ``seeds``, ``baselines``,
``files``...), never a running machine, so a report can be redrawn from a
saved ``results.json`` (:func:`rebuild_report`) and sweeps can reuse it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nemm.reproduce.regimes import REGIMES, regime_rules
from nemm.results import as_float as _f
from nemm.results import csv_text, write_json, write_text

__all__ = [
    "CSV_COLUMNS",
    "assemble",
    "assemble_sweep",
    "csv_of",
    "describe_result",
    "draw_figures",
    "figure_jobs",
    "figure_of",
    "fmt",
    "fmt_pm",
    "kind_summary",
    "rebuild_report",
    "report_markdown",
    "summarize",
    "table_text",
    "write_report",
    "write_tables",
]


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


def _median(vals: Sequence[Any]) -> float:
    """Median over the finite values (NaN when there are none)."""
    a = np.array([_f(v) for v in vals], dtype=float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else float("nan")


def _median_with_inf(vals: Sequence[Any]) -> float:
    """Median over the values that are not NaN; infinities count (a stuck chain's inf is a result)."""
    a = np.array([_f(v) for v in vals], dtype=float)
    a = a[~np.isnan(a)]
    return float(np.median(a)) if a.size else float("nan")


def describe_result(r: Mapping[str, Any]) -> str:
    """One console line for a finished model."""
    kind = r["kind"]
    mix = f"tau_int_class = {fmt(r.get('tau_int_class'))}, cover {fmt(r.get('cover_time'))}"
    if kind == "mixture":
        return f"mixture (EM, {r['n_init']} restarts): ln p = {r['loglik']:.2f}, {mix} (i.i.d. draws)"
    what = {"nemm": "nemm seed", "rbm": "RBM seed", "tied": "tied seed"}[kind]
    var = f" [{r['variant']}]" if r.get("variant") not in (None, "shared") else ""
    return (
        f"{what} {r['seed']:>2}{var}: ln p = {fmt(r['loglik'], '.2f')}, σ = {fmt_pm(r['sigma'], r['sigma_err'])}"
        f" (counting {fmt(r['sigma_counting'])}, {r['n_one_way']} one-way), τ = {fmt(r['tau'])}, {mix}, "
        f"{r['regime']}"
    )


#: Columns of results.csv: one row per model (kind: nemm, rbm, tied, mixture); NaN where a measure does not apply.
#: No timings (they are in results.json): the table of a run is the same bytes whatever the machine and backend.
CSV_COLUMNS = (
    "kind",
    "variant",
    "seed",
    "normalization",
    "hidden",
    "n_hidden",
    "centered",
    "loglik",
    "em_ceiling",
    "gap_to_em",
    "tau_int_class",
    "tau_int_class_envelope",
    "cover_time",
    "class_kl_samples",
    "class_kl",
    "sigma",
    "sigma_err",
    "sigma_counting",
    "sigma_counting_err",
    "n_one_way",
    "counting_steps",
    "tau",
    "tau_err",
    "self_transition",
    "self_transition_err",
    "self_transition_rao_blackwell",
    "random_self_transition",
    "cycle_affinity",
    "cycle_current",
    "regime",
    "loglik_on_the_fly",
    "occupancy",
    "n_epochs",
    "mixing_steps",
    "model",
)


def _csv_rows(rows: Iterable[Mapping[str, Any]], em: float | None) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        full = dict(r)
        if "em_ceiling" not in r:  # a sweep's rows have their own (the mixture of their L)
            full["em_ceiling"] = em
            full["gap_to_em"] = (_f(r["loglik"]) - em) if em is not None else None
        if r.get("occupancy") is not None:
            full["occupancy"] = [round(float(p), 6) for p in r["occupancy"]]
        out.append(full)
    return out


def kind_summary(models: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per kind (and variant): count, ln p median/range, tau_int_class, cover time, sigma (medians)."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in models:
        groups.setdefault((r["kind"], str(r.get("variant", ""))), []).append(r)
    order = {k: i for i, k in enumerate(("nemm", "rbm", "tied", "mixture"))}
    out = []
    for (kind, variant), rs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        ll = [_f(r["loglik"]) for r in rs]
        taus = [_f(r.get("tau_int_class")) for r in rs]
        out.append(
            {
                "kind": kind,
                "variant": variant,
                "n": len(rs),
                "loglik_median": _median(ll),
                "loglik_min": float(np.nanmin(ll)),
                "loglik_max": float(np.nanmax(ll)),
                # inf counts (a stuck chain): the median of a list holding infinities may be inf.
                "tau_int_class_median": _median_with_inf(taus),
                "n_tau_inf": int(sum(math.isinf(t) for t in taus)),
                "tau_int_class_envelope_median": _median_with_inf(
                    [r.get("tau_int_class_envelope") for r in rs]
                ),
                "cover_time_median": _median_with_inf([r.get("cover_time") for r in rs]),
                "class_kl_samples_median": _median_with_inf([r.get("class_kl_samples") for r in rs]),
                "sigma_median": _median([r.get("sigma") for r in rs]),
                "self_transition_median": _median([r.get("self_transition") for r in rs]),
                "self_transition_rb_median": _median([r.get("self_transition_rao_blackwell") for r in rs]),
            }
        )
    return out


def summarize(
    seeds: Sequence[Mapping[str, Any]],
    tied: Sequence[Mapping[str, Any]],
    em: float | None,
    L: int,
    *,
    rbms: Sequence[Mapping[str, Any]] = (),
    mixture: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Medians, quartiles, regimes and best/worst seeds of the nemm records, and the kinds beside them."""
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
        "sigma_counting_median": _median([r.get("sigma_counting") for r in seeds]),
        "n_sigma_converged": int(sum(bool(r.get("sigma_rao_blackwell_converged")) for r in seeds)),
        "tau_median": _median([r["tau"] for r in seeds]),
        "self_transition_median": _median([r["self_transition"] for r in seeds]),
        "class_kl_median": _median([r["class_kl"] for r in seeds]),
        "n_one_way_median": _median([r["n_one_way"] for r in seeds]),
        "em_ceiling": em,
        "gap_to_em_median": (_median(ll) - em) if em is not None else None,
        "regimes": {k: {"count": len(v), "seeds": v} for k, v in counts.items()},
        "regime_rules": regime_rules(L),
        "rbm_loglik_median": _median([r["loglik"] for r in rbms]) if rbms else None,
        "tied_loglik_median": _median([r["loglik"] for r in tied]) if tied else None,
        "tied_sigma_median": _median([r["sigma"] for r in tied]) if tied else None,
        "kinds": kind_summary(list(seeds) + list(rbms) + list(tied) + ([mixture] if mixture else [])),
    }
    if seeds:
        best = max(seeds, key=lambda r: _f(r["loglik"]) if math.isfinite(_f(r["loglik"])) else -math.inf)
        worst = min(seeds, key=lambda r: _f(r["loglik"]) if math.isfinite(_f(r["loglik"])) else math.inf)
        s["best_seed"], s["worst_seed"] = int(best["seed"]), int(worst["seed"])
    return s


def _kinds_table(kinds: Sequence[Mapping[str, Any]], add: Callable[[str], None]) -> None:
    add(
        "| kind | variant | models | ln p median (range) | τ_int,class (Sokal) | τ_int,class (envelope) "
        "| class cover time | class KL of samples | σ (Rao–Blackwell) | Tr(M)/L (Rao–Blackwell M) |"
    )
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in kinds:
        inf_note = f" ({k['n_tau_inf']} ∞)" if k["n_tau_inf"] else ""
        add(
            f"| {k['kind']} | {k['variant']} | {k['n']} | {fmt(k['loglik_median'], '.2f')} "
            f"({fmt(k['loglik_min'], '.2f')} to {fmt(k['loglik_max'], '.2f')}) | "
            f"{fmt(k['tau_int_class_median'])}{inf_note} | {fmt(k['tau_int_class_envelope_median'])} | "
            f"{fmt(k['cover_time_median'])} | {fmt(k['class_kl_samples_median'])} | {fmt(k['sigma_median'])} | "
            f"{fmt(k.get('self_transition_rb_median'))} |"
        )


def _kind_sentence(kinds: Sequence[Mapping[str, Any]]) -> str:
    """The comparison at comparable likelihood, in words."""
    by = {(k["kind"], k["variant"]): k for k in kinds}
    parts = []
    for k in kinds:
        name = {
            "nemm": "nemm machines",
            "rbm": "the equilibrium RBM",
            "tied": "the tied machine",
            "mixture": "the EM mixture (i.i.d. draws)",
        }[k["kind"]]
        var = (
            f" [{k['variant']}]"
            if k["kind"] in ("nemm", "tied") and len({v for (kk, v) in by if kk == "nemm"}) > 1
            else ""
        )
        parts.append(
            f"{name}{var}: ln p {fmt(k['loglik_median'], '.2f')}, τ_int,class "
            f"{fmt(k['tau_int_class_median'])}, cover time {fmt(k['cover_time_median'])}"
        )
    return "; ".join(parts) + "."


def _header_lines(res: Mapping[str, Any]) -> list[str]:
    """The title, the protocol in one paragraph, and the kinds of model."""
    p = res["protocol"]
    L = p["n_hidden"]
    lines: list[str] = []
    add = lines.append
    add("# nemm reproduction of Baiesi & Rosso, section IV, with its baselines")
    add("")
    add(
        f"*{p['mode']} run* on {p['data']}: L = {L} {p['hidden']} hidden, {p['n_epochs']} epochs × "
        f"{p['steps_per_epoch']} RMSprop steps (lr {p['learning_rate']}), minibatch {p['batch_size'][0]} → "
        f"{p['batch_size'][1]}, T = {p['chain_steps']} chain steps, {p.get('n_chains', 1)} training chain(s), "
        f"centering {'on' if p.get('centered', True) else 'off'}, normalization (eq. 19): "
        f"{' and '.join(p.get('variants', [p.get('normalization', 'softmax')]))}; "
        f"{len(p['seeds'])} nemm seeds, {len(p.get('rbm_seeds', []))} RBM, {len(p.get('tied_seeds', []))} tied; "
        f"{res['seconds']:.1f} s on {p['n_jobs']} process(es), {res.get('figure_seconds', 0.0):.1f} s of it the figures."
    )
    add("")
    add("Kinds of model (one row each in `results.csv`, column `kind`):")
    add("")
    add("- **nemm**: the nonequilibrium machine, trained by eqs. 16-17 (the paper's protocol).")
    add(
        "- **rbm**: the equilibrium baseline, an RBM with the same hidden layer trained by its own exact "
        "log-likelihood gradient (`nemm.RBM`, its defaults), sampled by its Gibbs chain."
    )
    add(
        "- **tied**: the studied variant wbar = wᵀ trained by eqs. 16-17. It samples like an RBM but is not "
        "trained as one, so it is not the equilibrium baseline."
    )
    add(
        "- **mixture**: the EM mixture of L product-Bernoullis (the ceiling of the one-hot family's "
        "likelihood), sampled by i.i.d. ancestral draws, the ideal mixer."
    )
    add("")
    return lines


def _summary_lines(res: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """The summary: the kinds compared at comparable likelihood, then the headline numbers."""
    s = res["summary"]
    p = res["protocol"]
    L = p["n_hidden"]
    em = res["baselines"]["em"]
    lines: list[str] = []
    add = lines.append
    add("## Summary")
    add("")
    kinds = s.get("kinds") or []
    if kinds:
        add(
            "**Kinds at comparable likelihood, and how their samples mix** (medians over seeds): "
            + _kind_sentence(kinds)
        )
        add("")
        _kinds_table(kinds, add)
        add("")
        add(
            f"τ_int,class is the integrated autocorrelation time of the class of successive generated samples "
            f"(a Bernoulli naive Bayes fitted on the labelled data names the class), on one chain of "
            f"{p.get('mixing_steps')} consecutive samples per model. Two windows are reported: **Sokal** is the "
            "spec's rule taken literally (the smallest W ≥ 5 τ_int(W)), and is the `tau_int_class` column; "
            "**envelope** (`tau_int_class_envelope`) applies the rule to 1 + 2 Σ|ρ(k)|. For a chain that cycles "
            "through the classes ρ(k) oscillates, the literal rule stops at its first trough and gives a value "
            "near 0 or below (anti-correlated classes: successive samples change class more often than i.i.d. "
            "draws would); the envelope waits for the oscillation to decay. Both are shown, unclipped. "
            "i.i.d. draws give 1; ∞ means the chain never changed class (stuck)."
        )
        add("")
    add(
        f"- **Log-likelihood** of the nemm seeds (exact ln p(x) given a long-chain occupancy, appendix A3): median "
        f"**{fmt(s['loglik_median'], '.2f')}** nats/digit (quartiles {fmt(s['loglik_q25'], '.2f')} to "
        f"{fmt(s['loglik_q75'], '.2f')}; best {fmt(s['loglik_max'], '.2f')} = seed {s.get('best_seed')}, "
        f"worst {fmt(s['loglik_min'], '.2f')} = seed {s.get('worst_seed')})."
    )
    if em is not None:
        add(
            f"- **EM mixture** ({L} product-Bernoullis, {em['n_init']} restarts): **{em['loglik']:.2f}** "
            f"nats/digit; the median nemm machine is {abs(s['gap_to_em_median']):.2f} nats/digit "
            f"{'below' if s['gap_to_em_median'] < 0 else 'above'} it."
            + (
                ""
                if p["hidden"] == "onehot"
                else " (With a binary hidden layer it is not the family's ceiling.)"
            )
        )
    for r in res["baselines"].get("rbm", []):
        add(
            f"- **Equilibrium RBM** (exact gradient, seed {r['seed']}): ln p = {fmt(r['loglik'], '.2f')}, "
            f"Tr(M)/L = {fmt(r.get('self_transition_rao_blackwell'), '.4f')} (Rao–Blackwell M), τ_int,class = {fmt(r.get('tau_int_class'))}, "
            f"σ = {fmt_pm(r['sigma'], r['sigma_err'])} nats/step (detailed balance: 0 expected)."
        )
    for v in variants[:1]:
        for r in v["tied"]:
            add(
                f"- **Tied machine** (eqs. 16-17, softmax kernel, seed {r['seed']}): ln p = {fmt(r['loglik'], '.2f')}, "
                f"σ = {fmt_pm(r['sigma'], r['sigma_err'])}, τ_int,class = {fmt(r.get('tau_int_class'))}: "
                f"{r['regime']}."
            )
    add(
        f"- **Entropy production** σ of the nemm seeds, the model's own (eq. 21 on the Rao–Blackwell M, "
        f"{p.get('rao_blackwell_draws')} draws per state, error bar from 10 batches): median {fmt(s['sigma_median'])} "
        f"nats/step (range {fmt(s['sigma_min'])} to {fmt(s['sigma_max'])}; converged, half the draws against all, "
        f"for {s.get('n_sigma_converged', '?')} of {s['n_seeds']} seeds: where not, the value still changes with the "
        "number of draws, see Fig. 6, and is the value at this number of draws); the paper's counting estimator at "
        f"{p['diag_steps']} steps: median {fmt(s.get('sigma_counting_median'))} with a median of "
        f"{fmt(s['n_one_way_median'], '.0f')} one-way pairs. Decorrelation time τ: median {fmt(s['tau_median'])} "
        f"steps; Tr(M)/L: median {fmt(s['self_transition_median'])} (random: 1/L = {1 / L:.3f}); class KL: "
        f"median {fmt(s['class_kl_median'])} nats."
    )
    add("")
    return lines


def _regime_lines(s: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """The regime rules and the regimes found, per variant."""
    lines: list[str] = []
    add = lines.append
    add("## Regimes")
    add("")
    add(
        "Every nemm seed is classified from its headline σ (Rao–Blackwell, with its error bar), τ and Tr(M)/L "
        "(`nemm.reproduce.classify_regime`):"
    )
    add("")
    for k in REGIMES:
        add(f"- **{k}** — {s['regime_rules'][k]}")
    add("")
    add("| variant | " + " | ".join(REGIMES) + " | seeds |")
    add("|---|" + "---:|" * len(REGIMES) + "---:|")
    for v in variants:
        vs = v["summary"]
        add(
            f"| {v['name']} | "
            + " | ".join(str(vs["regimes"][k]["count"]) for k in REGIMES)
            + f" | {vs['n_seeds']} |"
        )
    add("")
    for v in variants:
        vs = v["summary"]
        found = [k for k in REGIMES if vs["regimes"][k]["count"]]
        add(
            f"- {v['name']}: regimes found: "
            + (
                ", ".join(
                    f"{k} (seeds {', '.join(str(x) for x in vs['regimes'][k]['seeds'])})" for k in found
                )
                or "none"
            )
            + f"; median ln p {fmt(vs['loglik_median'], '.2f')}, σ {fmt(vs['sigma_min'])} to "
            f"{fmt(vs['sigma_max'])}."
        )
    add("")
    return lines


def _figure_lines(res: Mapping[str, Any]) -> list[str]:
    """The figures that were drawn, as Markdown images."""
    s = res["summary"]
    lines: list[str] = []
    add = lines.append
    figs = res.get("files", {})
    if "fig2" in figs or "fig5" in figs:
        add("## Figures")
        add("")
        if "fig5" in figs:
            add(
                "![Fig. 5: exact ln p against τ_int,class, one point per model, by kind; ∞ at the top edge]"
                "(fig5_mixing.png)"
            )
            add("")
        if "fig6" in figs:
            add(
                "![Fig. 6: σ against the amount of sampling: Rao–Blackwell (draws per state) and counting "
                "(chain length)](fig6_sigma.png)"
            )
            add("")
        if "fig2" in figs:
            add(
                "![Fig. 2: log-likelihood and entropy production during training; final ln p against σ](fig2.png)"
            )
            add("")
        if "fig3_best" in figs:
            add(
                f"![Fig. 3 (best seed {s.get('best_seed')}): weights w with occupancy, wbar, abar, M and a hidden "
                "trajectory (mean images and samples)](fig3_best.png)"
            )
            add("")
        if "fig3_worst" in figs:
            add(f"![Fig. 3 (worst seed {s.get('worst_seed')})](fig3_worst.png)")
            add("")
        if "fig4" in figs:
            add("![Fig. 4: class KL, decorrelation time and mean self-transition against σ](fig4.png)")
            add("")
    return lines


def _failed_lines(res: Mapping[str, Any]) -> list[str]:
    """The runs that failed, with their errors (nothing when none did)."""
    lines: list[str] = []
    add = lines.append
    if res.get("failed"):
        add("## Failed runs")
        add("")
        for r in res["failed"]:
            add(
                f"- `{r['run_id']}` ({r.get('kind')} seed {r.get('seed')}, {r.get('variant')}): {r.get('error')}"
            )
        add("")
    return lines


def _models_lines(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """The table of every model."""
    lines: list[str] = []
    add = lines.append
    add("## All models")
    add("")
    add(
        "| kind | variant | seed | ln p (exact) | τ_int,class | τ (envelope) | cover time | σ (Rao–Blackwell) "
        "| σ counting | one-way pairs | dominant-cycle affinity | τ (steps) | Tr(M)/L | class KL | regime |"
    )
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in models:
        add(
            f"| {r['kind']} | {r.get('variant', '')} | {r['seed']} | {fmt(r['loglik'], '.2f')} | "
            f"{fmt(r.get('tau_int_class'))} | {fmt(r.get('tau_int_class_envelope'))} | {fmt(r.get('cover_time'))} | "
            f"{fmt_pm(r['sigma'], r['sigma_err'])} | {fmt(r.get('sigma_counting'))} | "
            f"{'–' if r.get('n_one_way') is None else r['n_one_way']} | {fmt(r.get('cycle_affinity'))} | "
            f"{fmt_pm(r['tau'], r.get('tau_err'))} | {fmt(r['self_transition'])} | {fmt(r['class_kl'])} | "
            f"{r['regime'] or '–'} |"
        )
    add("")
    return lines


def _method_lines(res: Mapping[str, Any]) -> list[str]:
    """How the numbers were obtained, and the files written."""
    s = res["summary"]
    p = res["protocol"]
    lines: list[str] = []
    add = lines.append
    add("## How the numbers were obtained")
    add("")
    seeds = res["seeds"]
    samp = seeds[0]["sampling"] if seeds else {}
    add(
        f"- Final diagnostics: {samp.get('n_chains')} fresh chains × {samp.get('n_steps')} steps after a burn-in "
        f"of {samp.get('burn_in')}; M is the row-normalized transition count, p̄ the occupancy. Error bars of the "
        f"counting statistics: standard error over {samp.get('n_segments')} consecutive time windows."
    )
    add(
        f'- σ, two estimators (spec, "Entropy production: which estimator"). The headline is the model\'s own: '
        f"eq. 21 on the Rao–Blackwell M (for every state z', {p.get('rao_blackwell_draws')} draws x ~ A(z', ·), "
        "M(z', ·) the mean of Abar(x, ·)), whose entries are never exactly 0; its error bar is the spread over 10 "
        "disjoint batches of draws / √10, and Fig. 6 shows it against the number of draws (`converged` in "
        "`results.json` compares half the draws with all). Beside it, the paper's counting estimator at "
        f"{p['diag_steps']} steps: a pair seen in one direction only gets a pseudo-count of "
        f"{seeds[0]['pseudocount'] if seeds else 0.5} both ways and is counted as a one-way pair; with one-way "
        "pairs it grows with the chain length (Fig. 6)."
    )
    add(
        "- Probability currents J(z', z) = p̄(z') M(z', z) − p̄(z) M(z, z') and the dominant cycle (the cycle "
        "carrying the largest bottleneck current) with its affinity ln Π M(forward)/M(backward) are those of the "
        "Rao–Blackwell M (`results.json`: `currents`, `dominant_cycle`, `cycle_affinity`, `cycle_current`). A "
        "reversible chain (the RBM, the tied machine) has zero currents and zero affinity up to sampling noise."
    )
    add(
        "- The RBM's ln p and class KL use its exact p(h) (its Gibbs chain may never leave its start); every "
        "machine's ln p uses the occupancy of its long chain."
    )
    add(
        "- τ = −1/ln|λ₂| of the empirical M (eq. 23); Tr(M)/L (eq. 24). Class KL (eq. 22): every digit goes to "
        "its most probable hidden state, a state takes the majority label of its digits; `class_kl_samples` is "
        "the same KL from the classes of the generated samples."
    )
    add(
        f"- Training-time σ (Fig. 2b) is the counting estimator, tracked every {p['track_every']} epochs from "
        f"{p['track_steps']}-step chains."
    )
    add(
        "- For comparison, the reference figures of the project spec (an independent implementation, paper "
        "protocol, 36 seeds): EM ceiling ≈ −146.8, trained models −147 to −152 nats/digit, σ ≈ 1 to 4, τ ≈ 2 to "
        f"20 steps; an exact-gradient RBM, one-hot L = 6: −146.7 (Tr(M)/L = 1.000). Here: nemm ln p "
        f"{fmt(s['loglik_min'], '.1f')} to {fmt(s['loglik_max'], '.1f')}."
    )
    add("")
    add(
        "Files: `results.csv` (one row per model, with its `kind` and settings), `results.json` (everything, "
        "including per-epoch histories, M, currents and the σ curves), `runs/<run id>/` (each trained model and "
        "its record; the `model` column names the file: `nemm diagnose runs/<run id>/model.npz`)."
    )
    add("")
    return lines


def report_markdown(res: Mapping[str, Any]) -> str:
    """The text of report.md from a results dictionary."""
    p = res["protocol"]
    variants = res.get("variants") or [
        {
            "name": p.get("normalization", ""),
            "seeds": res["seeds"],
            "tied": res["baselines"].get("tied", []),
            "summary": res["summary"],
        }
    ]
    models = res.get("models") or (list(res["seeds"]) + list(res["baselines"].get("rbm", [])))
    lines = (
        _header_lines(res)
        + _summary_lines(res, variants)
        + _regime_lines(res["summary"], variants)
        + _figure_lines(res)
        + _failed_lines(res)
        + _models_lines(models)
        + _method_lines(res)
    )
    return "\n".join(lines)


def _fig3_title(tag: str, rec: Mapping[str, Any]) -> str:
    return (
        f"Fig. 3 — {tag} seed {rec['seed']}: ln p = {fmt(rec['loglik'], '.2f')}, "
        f"σ = {fmt_pm(rec['sigma'], rec['sigma_err'])}, τ = {fmt(rec['tau'])} ({rec['regime']})"
    )


def figure_of(job: Mapping[str, Any]) -> Any:
    """The ``matplotlib.figure.Figure`` of one job of :func:`figure_jobs` (drawn, not saved)."""
    from nemm import load, plots

    if job["kind"] == "fig2":
        return plots.draw_fig2(job["seeds"], em_ceiling=job["em"], baselines=job["rbm"])
    if job["kind"] == "fig5":
        return plots.draw_mixing(job["models"])
    if job["kind"] == "fig6":
        return plots.draw_sigma(job["models"])
    if job["kind"] == "fig4":
        return plots.draw_fig4(job["seeds"], L=job["L"])
    rec = job["rec"]
    return plots.draw_fig3(
        load(job["model"]), occupancy=rec["occupancy"], M=rec["M"], seed=rec["seed"], title=job["title"]
    )


def _draw_figure(job: Mapping[str, Any]) -> tuple[str, str]:
    """One figure (a job that a worker pool can run): returns (name, path)."""
    from nemm.plots import save_png

    return job["name"], str(save_png(figure_of(job), job["path"]))


def figure_jobs(res: Mapping[str, Any], out_dir: str | Path) -> list[dict[str, Any]]:
    """The figures of a results dictionary as independent jobs: kind, name, PNG path and their data.

    Fig. 3 reads the saved model of the seed (``record["model"]``, relative to ``out_dir``).
    """
    out = Path(out_dir)
    seeds = res["seeds"]
    em = res["baselines"]["em"]
    models = res.get("models") or list(seeds)
    jobs: list[dict[str, Any]] = [
        {
            "kind": "fig4",
            "name": "fig4",
            "path": str(out / "fig4.png"),
            "seeds": seeds,
            "L": int(res["protocol"]["n_hidden"]),
        },
    ]
    for tag, key in (("best", "best_seed"), ("worst", "worst_seed")):
        rec = next(r for r in seeds if r["seed"] == res["summary"][key])
        if rec.get("model"):
            jobs.append(
                {
                    "kind": "fig3",
                    "name": f"fig3_{tag}",
                    "path": str(out / f"fig3_{tag}.png"),
                    "model": str(out / rec["model"]),
                    "rec": rec,
                    "title": _fig3_title(tag, rec),
                }
            )
    # Longest first (Fig. 4, the two Figs. 3, Fig. 2), so that a pool's workers finish together.
    jobs += [
        {
            "kind": "fig2",
            "name": "fig2",
            "path": str(out / "fig2.png"),
            "seeds": seeds,
            "em": em["loglik"] if em else None,
            "rbm": res["baselines"].get("tied", []),
        },
        {
            "kind": "fig6",
            "name": "fig6",
            "path": str(out / "fig6_sigma.png"),
            "models": [r for r in models if r["kind"] != "mixture"],
        },
        {"kind": "fig5", "name": "fig5", "path": str(out / "fig5_mixing.png"), "models": models},
    ]
    return jobs


def draw_figures(
    res: Mapping[str, Any], out_dir: str | Path, map_fn: Callable[..., Iterable[tuple[str, str]]] = map
) -> dict[str, str]:
    """Draw Figs. 2, 3 (best and worst seed), 4, 5 (mixing) and 6 (sigma) of a results dictionary into ``out_dir``.

    ``map_fn`` runs the independent jobs of :func:`figure_jobs` (``map``, or a worker pool's ``map``).
    """
    drawn = dict(map_fn(_draw_figure, figure_jobs(res, out_dir)))
    return {k: drawn[k] for k in ("fig2", "fig3_best", "fig3_worst", "fig4", "fig5", "fig6") if k in drawn}


def csv_of(res: Mapping[str, Any]) -> str:
    """The text of results.csv of a results dictionary: every model's row (and the failed runs'), in run order."""
    em = res["baselines"]["em"]
    machines = res.get("models") or (list(res["seeds"]) + list(res["baselines"]["rbm"]))
    rows = sorted(list(machines) + list(res.get("failed", [])), key=lambda r: r.get("index", 0))
    return csv_text(_csv_rows(rows, em["loglik"] if em else None), res.get("csv_columns", CSV_COLUMNS))


def write_tables(
    res: dict[str, Any], out_dir: str | Path, figure_files: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Write results.csv, results.json and report.md of a results dictionary (figures already drawn).

    Fills ``res["files"]`` with ``figure_files`` and the written paths and returns it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = dict(figure_files or {})
    files["results_csv"] = str(write_text(out / "results.csv", csv_of(res)))
    files["report"] = str(out / "report.md")
    files["results_json"] = str(out / "results.json")
    res["files"] = files
    write_text(out / "report.md", report_markdown(res))
    write_json(out / "results.json", res)
    return files


def write_report(
    res: dict[str, Any],
    out_dir: str | Path,
    *,
    figures: bool = True,
    map_fn: Callable[..., Iterable[tuple[str, str]]] = map,
) -> dict[str, str]:
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
    """The console table of every model and the summary lines."""
    s = res["summary"]
    L = res["protocol"]["n_hidden"]
    models = res.get("models") or list(res["seeds"])
    lines = [
        "",
        f"{'kind':<7} {'variant':<8} {'seed':>4}  {'ln p':>8}  {'tau_int':>7}  {'cover':>6}  "
        f"{'sigma(RB) ± err':>18}  {'count':>6}  {'1-way':>5}  {'Tr(M)/L':>7}  regime",
    ]
    for r in models:
        lines.append(
            f"{r['kind']:<7} {str(r.get('variant', '')):<8} {r['seed']:>4}  {fmt(r['loglik'], '.2f'):>8}  "
            f"{fmt(r.get('tau_int_class')):>7}  {fmt(r.get('cover_time')):>6}  "
            f"{fmt_pm(r['sigma'], r['sigma_err']):>18}  {fmt(r.get('sigma_counting')):>6}  "
            f"{'–' if r.get('n_one_way') is None else r['n_one_way']:>5}  {fmt(r['self_transition']):>7}  "
            f"{r['regime'] or '–'}"
        )
    lines.append("")
    lines.append(
        "by kind (medians): "
        + "; ".join(
            f"{k['kind']}{'' if k['variant'] in ('', 'shared') else '[' + k['variant'] + ']'} ln p "
            f"{fmt(k['loglik_median'], '.2f')}, tau_int_class {fmt(k['tau_int_class_median'])}, cover "
            f"{fmt(k['cover_time_median'])}"
            for k in s.get("kinds", [])
        )
    )
    em = s["em_ceiling"]
    lines.append(
        f"median nemm ln p = {fmt(s['loglik_median'], '.2f')} nats/digit"
        + (f"; EM mixture {em:.2f} (median gap {s['gap_to_em_median']:+.2f})" if em is not None else "")
    )
    for v in res.get("variants") or [{"name": "", "summary": s}]:
        vs = v["summary"]
        lines.append(
            f"regimes [{v['name']}]: "
            + ", ".join(f"{k} {vs['regimes'][k]['count']}" for k in REGIMES)
            + f"  (rules: nemm.reproduce.classify_regime, L = {L})"
        )
    lines.append(
        f"done in {res['seconds']:.1f} s ({res.get('figure_seconds', 0.0):.1f} s of it the figures). Report: {res['files']['report']}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------- from a sweep's runs

#: Keys of a run's result.json that describe the run, not the model: left out of the model records.
_RUN_KEYS = ("swept", "settings", "diagnostics", "baselines", "data_checksum", "nemm_version")


def _by_seed(
    models: Sequence[Mapping[str, Any]], kind: str, variant: str | None = None
) -> list[dict[str, Any]]:
    return sorted(
        (dict(r) for r in models if r["kind"] == kind and (variant is None or r["variant"] == variant)),
        key=lambda r: r["seed"],
    )


def assemble(
    models: Sequence[Mapping[str, Any]],
    protocol: Mapping[str, Any],
    *,
    failed: Sequence[Mapping[str, Any]] = (),
    csv_columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The results dictionary (what the report is written from) of the model records of a reproduction.

    ``models``: one record per finished run (kinds nemm, rbm, tied, mixture, each with its
    ``variant``), in run order; ``protocol``: the settings the report states.
    """
    models = [dict(r) for r in models]
    em_res = next((r for r in models if r["kind"] == "mixture"), None)
    rbm_res = _by_seed(models, "rbm")
    tied_all = _by_seed(models, "tied")
    em_ll = _f(em_res["loglik"]) if em_res else None
    names = list(dict.fromkeys(r["variant"] for r in models if r["kind"] == "nemm"))
    per_variant = []
    for name in names:
        seeds_v = _by_seed(models, "nemm", name)
        settings = {k: seeds_v[0].get(k) for k in ("normalization", "hidden", "centered")}
        per_variant.append(
            {
                "name": name,
                "settings": settings,
                "seeds": seeds_v,
                "tied": tied_all,
                "summary": summarize(
                    seeds_v, tied_all, em_ll, int(protocol["n_hidden"]), rbms=rbm_res, mixture=em_res
                ),
            }
        )
    if not per_variant:
        per_variant.append(
            {
                "name": "",
                "settings": {},
                "seeds": [],
                "tied": tied_all,
                "summary": summarize(
                    [], tied_all, em_ll, int(protocol["n_hidden"]), rbms=rbm_res, mixture=em_res
                ),
            }
        )
    # The headline summary is the first variant's, but its comparison of kinds covers every variant.
    summary = dict(per_variant[0]["summary"])
    summary["kinds"] = kind_summary(models)
    res = {
        "protocol": dict(protocol),
        "models": models,
        "seeds": per_variant[0]["seeds"],
        "baselines": {"em": em_res, "rbm": rbm_res, "tied": tied_all},
        "variants": per_variant,
        "summary": summary,
        "seconds": 0.0,
        "files": {},
        "failed": [dict(r) for r in failed],
    }
    if csv_columns is not None:
        res["csv_columns"] = list(csv_columns)
    return res


def assemble_sweep(
    config: Any,
    specs: Sequence[Any],
    results: Mapping[str, Mapping[str, Any]],
    columns: Sequence[str],
    *,
    data: str,
    n_jobs: int,
    seconds: float,
    protocol: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The results dictionary of a sweep with ``[diagnostics] report = "reproduce"`` (see :func:`assemble`).

    ``specs`` are the sweep's runs (:func:`nemm.sweep.expand`), ``results`` what their
    ``result.json`` hold; every model's saved file is ``runs/<run id>/model.npz``. The
    mixture of each L gives the EM ceiling of the rows with that L. ``protocol`` adds to
    (or overrides) what is read from the configuration (e.g. ``mode``).
    """
    em_by_L = {
        int(s.swept["n_hidden"]): _f(results[s.run_id].get("loglik"))
        for s in specs
        if s.kind == "mixture" and results[s.run_id].get("status") == "ok"
    }
    models, failed = [], []
    for s in specs:
        r = results[s.run_id]
        row = {k: v for k, v in r.items() if k not in _RUN_KEYS}
        row.update(s.swept)
        row.update(index=s.index, run_id=s.run_id)
        if r.get("status") != "ok":
            failed.append(
                {
                    **s.swept,
                    "index": s.index,
                    "run_id": s.run_id,
                    "status": r.get("status", "error"),
                    "error": r.get("error"),
                    "em_ceiling": None,
                    "gap_to_em": None,
                }
            )
            continue
        row["model"] = f"runs/{s.run_id}/model.npz" if s.kind != "mixture" else None
        em = em_by_L.get(int(s.swept["n_hidden"]))
        row["em_ceiling"] = em
        row["gap_to_em"] = _f(row["loglik"]) - em if em is not None else None
        models.append(row)
    nemm_specs = [s for s in specs if s.kind == "nemm"]
    first = nemm_specs[0].settings if nemm_specs else {}
    bs = first.get("batch_size", [16, 160])
    d, bl = config.diagnostics, config.baselines
    p = {
        "mode": f"sweep ({config.source})",
        "data": data,
        "n_hidden": int(first.get("n_hidden", 0)),
        "hidden": first.get("hidden"),
        "n_epochs": first.get("n_epochs"),
        "steps_per_epoch": first.get("steps_per_epoch"),
        "batch_size": list(bs) if isinstance(bs, (list, tuple)) else [bs, bs],
        "chain_steps": first.get("chain_steps"),
        "n_chains": first.get("n_chains"),
        "learning_rate": first.get("learning_rate"),
        "centered": first.get("centered"),
        "normalization": first.get("normalization"),
        "compare": ", ".join(k for k, _ in config.axes) or None,
        "variants": list(dict.fromkeys(s.swept["variant"] for s in nemm_specs)),
        "seeds": list(config.seeds),
        "rbm_seeds": list(bl.rbm_seeds),
        "tied_seeds": list(bl.tied_seeds),
        "em_restarts": bl.mixture_restarts,
        "n_jobs": int(n_jobs),
        "track_every": d.track_every,
        "track_steps": d.track_steps,
        "diag_steps": d.diagnostic_steps * d.n_chains,
        "mixing_steps": d.mixing_steps,
        "rao_blackwell_draws": d.rao_blackwell_draws,
    }
    p.update(protocol or {})
    res = assemble(models, p, failed=failed, csv_columns=columns)
    res["seconds"] = float(seconds)
    return res
