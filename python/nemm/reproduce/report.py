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

from nemm.mixture import _CLIP as EM_PROBABILITY_CLIP
from nemm.plots import TRAINING_SIGMA_LABEL, headline_sigma_label, sigma_method_of
from nemm.reproduce.claims import LIKELIHOOD_TOLERANCE, RULES, evaluate_claims
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
    """Median over the values that are not NaN; infinities count (a stuck chain's inf is a result).

    Reports state how many of the values were infinite beside it (:func:`_inf_note`).
    """
    a = np.array([_f(v) for v in vals], dtype=float)
    a = a[~np.isnan(a)]
    return float(np.median(a)) if a.size else float("nan")


def _n_inf(vals: Sequence[Any]) -> int:
    """How many of ``vals`` are infinite."""
    return int(sum(math.isinf(_f(v)) for v in vals))


def _inf_note(n_inf: int, n: int) -> str:
    """The note " (k of n ∞)" when some of the n values behind a median are infinite, else nothing."""
    return f" ({n_inf} of {n} ∞)" if n_inf else ""


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


#: Columns of results.csv: one row per model (kind: nemm, rbm, tied, mixture) and, for the RBM, per sampler
#: (``sampler``: chain, iid, or the RBM's gibbs, pt, exact; ``sample_cost`` in sweeps per sample); NaN where a
#: measure does not apply.
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
    "loglik_err",
    "em_ceiling",
    "gap_to_em",
    "sampler",
    "sample_cost",
    "tau_int_class",
    "tau_int_class_envelope",
    "tau_int_class_sokal",
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


def _per_sampler(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every record, an RBM's once per sampler (its ``samplers`` measures over its Gibbs chain's)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        out.extend([{**r, **m} for m in r["samplers"]] if r.get("samplers") else [dict(r)])
    return out


def _csv_rows(rows: Iterable[Mapping[str, Any]], em: float | None) -> list[dict[str, Any]]:
    out = []
    for r in _per_sampler(rows):
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
                "tau_int_class_median": _median(taus),
                "n_tau_inf": int(sum(math.isinf(t) for t in taus)),
                "tau_int_class_envelope_median": _median([r.get("tau_int_class_envelope") for r in rs]),
                "cover_time_median": _median([r.get("cover_time") for r in rs]),
                "class_kl_samples_median": _median([r.get("class_kl_samples") for r in rs]),
                "sigma_median": _median([r.get("sigma") for r in rs]),
                "self_transition_median": _median([r.get("self_transition") for r in rs]),
                "self_transition_rb_median": _median([r.get("self_transition_rao_blackwell") for r in rs]),
                # How many infinite values each median above stands on (reports show "k of n ∞").
                "n_inf": {key: _n_inf([r.get(key) for r in rs]) for key in _INF_KEYS},
            }
        )
    return out


#: Per-model values whose medians are reported with their count of infinities.
_INF_KEYS = (
    "loglik",
    "sigma",
    "sigma_counting",
    "tau",
    "tau_int_class",
    "tau_int_class_envelope",
    "cover_time",
    "class_kl",
    "class_kl_samples",
)


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
        # Records before the converged estimator: the headline was the Rao-Blackwell sigma and its check.
        "n_sigma_converged": int(
            sum(bool(r.get("sigma_converged", r.get("sigma_rao_blackwell_converged"))) for r in seeds)
        ),
        "sigma_rao_blackwell_median": _median([r.get("sigma_rao_blackwell") for r in seeds]),
        "tau_median": _median([r["tau"] for r in seeds]),
        "self_transition_median": _median([r["self_transition"] for r in seeds]),
        "class_kl_median": _median([r["class_kl"] for r in seeds]),
        "n_one_way_median": _median([r["n_one_way"] for r in seeds]),
        "em_ceiling": em,
        "gap_to_em_median": (_median(ll) - em) if em is not None else None,
        "n_inf": {key: _n_inf([r.get(key) for r in seeds]) for key in _INF_KEYS},
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
        "| kind | variant | models | ln p median (range) | τ_int,class | τ_int,class (envelope) "
        "| class cover time | class KL of samples | σ (headline) | Tr(M)/L (Rao–Blackwell M) |"
    )
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in kinds:
        n = k["n"]
        add(
            f"| {k['kind']} | {k['variant']} | {n} | {_med_cell(k, 'loglik', '.2f')} "
            f"({fmt(k['loglik_min'], '.2f')} to {fmt(k['loglik_max'], '.2f')}) | "
            f"{fmt(k['tau_int_class_median'])}{_inf_note(k['n_tau_inf'], n)} | "
            f"{_med_cell(k, 'tau_int_class_envelope')} | {_med_cell(k, 'cover_time')} | "
            f"{_med_cell(k, 'class_kl_samples')} | {_med_cell(k, 'sigma')} | {fmt(k.get('self_transition_rb_median'))} |"
        )


def _med_cell(k: Mapping[str, Any], key: str, spec: str = ".3g") -> str:
    """The median of ``key`` in a kind summary, with its count of infinite values."""
    return fmt(k[f"{key}_median"], spec) + _inf_note(k.get("n_inf", {}).get(key, 0), k["n"])


_KIND_NAMES = {
    "nemm": "nemm machines",
    "rbm": "the equilibrium RBM",
    "tied": "the tied machine",
    "mixture": "the EM mixture (i.i.d. draws)",
}


def _kind_sentence(kinds: Sequence[Mapping[str, Any]], em: float | None) -> str:
    """Every kind's likelihood (with its distance to the EM ceiling) and mixing, in words."""
    by = {(k["kind"], k["variant"]): k for k in kinds}
    parts = []
    for k in kinds:
        var = (
            f" [{k['variant']}]"
            if k["kind"] == "nemm" and len({v for (kk, v) in by if kk == "nemm"}) > 1
            else ""
        )
        gap = _f(k["loglik_median"]) - em if em is not None and k["kind"] != "mixture" else math.nan
        below = f" ({fmt(-gap, '.1f')} below the EM ceiling)" if math.isfinite(gap) else ""
        parts.append(
            f"{_KIND_NAMES[k['kind']]}{var}: ln p {fmt(k['loglik_median'], '.2f')}{below}, τ_int,class "
            f"{fmt(k['tau_int_class_median'])}{_inf_note(k['n_tau_inf'], k['n'])}, cover time "
            f"{fmt(k['cover_time_median'])}"
        )
    return "; ".join(parts) + "."


def _equal_likelihood_sentence(kinds: Sequence[Mapping[str, Any]], nemm_median: float) -> str:
    """Which kinds are at equal likelihood with the nemm machines (the tolerance of the claims' test)."""
    tol = LIKELIHOOD_TOLERANCE
    near: list[str] = []
    far: list[str] = []
    for k in kinds:
        if k["kind"] == "nemm":
            continue
        d = _f(k["loglik_median"]) - nemm_median
        name = k["kind"]
        (near if abs(d) <= tol else far).append(
            f"{name} ({fmt(abs(d), '.1f')} nats/digit {'below' if d < 0 else 'above'})"
        )
    return (
        f"At equal likelihood with the median nemm machine ({fmt(nemm_median, '.2f')}; within "
        f"{tol:g} nats/digit): {', '.join(near) or 'none'}. Not at equal likelihood: {', '.join(far) or 'none'}."
    )


def _resolved_protocol(p: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol with the settings left to the recipe (None) replaced by the recipe's choice.

    The data size is not known here, so ``"auto"`` choices that depend on it read "auto".
    """
    from nemm.recipes import recipe_settings

    chosen = recipe_settings(
        str(p.get("recipe") or "paper"),
        int(p["n_hidden"]),
        p.get("n_samples"),
        str(p.get("hidden", "onehot")),
    )
    out = dict(p)
    for key in ("n_epochs", "steps_per_epoch", "learning_rate", "batch_size", "chain_steps", "n_chains"):
        v = out.get(key)
        if v is None or (isinstance(v, (list, tuple)) and all(b is None for b in v)):
            out[key] = chosen.get(key, "auto")
    if not isinstance(out["batch_size"], (list, tuple)):
        out["batch_size"] = (out["batch_size"], out["batch_size"])
    return out


def _header_lines(res: Mapping[str, Any]) -> list[str]:
    """The title, the protocol in one paragraph, and the kinds of model."""
    p = _resolved_protocol(res["protocol"])
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
        f"{' and '.join(p['variants'] if p.get('compare') == 'normalization' else [p.get('normalization', 'softmax')])}; "
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
    """The summary: every kind's likelihood and mixing, then the headline numbers of each variant."""
    s = res["summary"]
    p = res["protocol"]
    em = res["baselines"]["em"]
    lines: list[str] = []
    add = lines.append
    add("## Summary")
    add("")
    kinds = s.get("kinds") or []
    if kinds:
        add(
            "**Kinds of model, their likelihood and how their samples mix** (medians over seeds): "
            + _kind_sentence(kinds, _f(em["loglik"]) if em else None)
            + " "
            + _equal_likelihood_sentence(kinds, _f(s["loglik_median"]))
        )
        add("")
        _kinds_table(kinds, add)
        add("")
        add(
            f"τ_int,class is the integrated autocorrelation time of the class of successive generated samples "
            f"(a Bernoulli naive Bayes fitted on the labelled data names the class), on one chain of "
            f"{p.get('mixing_steps')} consecutive samples per model. `tau_int_class` is a tapered lag-window "
            "sum (never negative; its reach is 4× Sokal's window on the envelope 1 + 2 Σ|ρ(k)|), checked against "
            "the exact value of the chain's hidden Markov model; `tau_int_class_envelope` is the plain sum at "
            "the envelope window and `tau_int_class_sokal` the spec's literal rule (the smallest W ≥ 5 τ_int(W)), "
            "which on a cycling chain's oscillating ρ(k) stops at the first trough (near 0 or below). Values "
            "below 1: successive samples change class more often than i.i.d. draws would. "
            'i.i.d. draws give 1; ∞ means the chain never changed class (stuck); "k of n ∞" beside a median '
            "counts the infinite values it includes."
        )
        add("")
    many = len(variants) > 1
    for v in variants:
        lines += _loglik_bullets(v, f" [{v['name']}]" if many else "")
    if em is not None:
        add(_em_bullet(em, variants, p))
    lines += _baseline_bullets(res, variants)
    for v in variants:
        lines += _sigma_bullets(v, p, f" [{v['name']}]" if many else "")
    add("")
    return lines


def _loglik_bullets(v: Mapping[str, Any], tag: str) -> list[str]:
    """The nemm seeds' log-likelihood of one variant."""
    s, n = v["summary"], v["summary"]["n_seeds"]
    ninf = s.get("n_inf", {})
    errs = [_f(r.get("loglik_err")) for r in v["seeds"]]
    errs = [e for e in errs if math.isfinite(e)]
    err = (
        f" Chain noise of ln p (`loglik_err`: standard error of the ln p given each diagnostic chain's own "
        "occupancy): median "
        f"± {fmt(float(np.median(errs)), '.2g')} over {len(errs)} of {n} seeds."
        if errs
        else ""
    )
    return [
        f"- **Log-likelihood**{tag} of the nemm seeds (exact ln p(x) given a long-chain occupancy, appendix A3): "
        f"median **{fmt(s['loglik_median'], '.2f')}**{_inf_note(ninf.get('loglik', 0), n)} nats/digit (quartiles "
        f"{fmt(s['loglik_q25'], '.2f')} to {fmt(s['loglik_q75'], '.2f')}; best {fmt(s['loglik_max'], '.2f')} = seed "
        f"{s.get('best_seed')}, worst {fmt(s['loglik_min'], '.2f')} = seed {s.get('worst_seed')}).{err}"
    ]


def _em_bullet(em: Mapping[str, Any], variants: Sequence[Mapping[str, Any]], p: Mapping[str, Any]) -> str:
    """The EM ceiling with its probability clip, and each variant's median distance to it."""
    gaps = []
    for v in variants:
        gap = _f(v["summary"].get("gap_to_em_median"))
        tag = f" [{v['name']}]" if len(variants) > 1 else ""
        gaps.append(f"{fmt(abs(gap), '.2f')} nats/digit {'below' if gap < 0 else 'above'} it{tag}")
    return (
        f"- **EM mixture** ({p['n_hidden']} product-Bernoullis, {em['n_init']} restarts, Bernoulli means "
        f"clipped to [{_em_clip(em)}, 1 − {_em_clip(em)}]; the ceiling depends on the clip: the spec measured "
        "−146.21 with a 1e-6 clip and −146.81 with 1e-3 on the 2980 demo digits): "
        f"**{_f(em['loglik']):.2f}** nats/digit; the median nemm machine is {', '.join(gaps)}."
        + ("" if p["hidden"] == "onehot" else " (With a binary hidden layer it is not the family's ceiling.)")
    )


def _em_clip(em: Mapping[str, Any]) -> str:
    """The probability clip of the EM mixture, e.g. "1e-6" (results written before it was recorded: nemm's)."""
    mantissa, exponent = f"{_f(em.get('probability_clip', EM_PROBABILITY_CLIP)):.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _baseline_bullets(res: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """The equilibrium RBMs and the tied machines, each placed against the nemm median and the EM ceiling."""
    s = res["summary"]
    em = res["baselines"]["em"]
    out = []
    for r in res["baselines"].get("rbm", []):
        out.append(
            f"- **Equilibrium RBM** (exact gradient, seed {r['seed']}"
            f"{', ' + str(r['sampler']) + ' sampler' if r.get('sampler') else ''}): ln p = "
            f"{fmt(r['loglik'], '.2f')} ({_against(r, s, em)}), Tr(M)/L = "
            f"{fmt(r.get('self_transition_rao_blackwell'), '.4f')} (Rao–Blackwell M), τ_int,class = "
            f"{fmt(r.get('tau_int_class'))}, σ = {fmt_pm(r['sigma'], r['sigma_err'])} nats/step (detailed balance: "
            "0 expected)."
        )
    for r in variants[0]["tied"] if variants else []:
        out.append(
            f"- **Tied machine** (eqs. 16-17, softmax kernel, seed {r['seed']}): ln p = {fmt(r['loglik'], '.2f')} "
            f"({_against(r, s, em)}), σ = {fmt_pm(r['sigma'], r['sigma_err'])}, τ_int,class = "
            f"{fmt(r.get('tau_int_class'))}: {r['regime']}."
        )
    return out


def _against(r: Mapping[str, Any], s: Mapping[str, Any], em: Mapping[str, Any] | None) -> str:
    """Where a baseline's ln p stands: against the nemm median (equal within the tolerance) and the EM ceiling."""
    d = _f(r["loglik"]) - _f(s["loglik_median"])
    equal = "at equal likelihood (≤" if abs(d) <= LIKELIHOOD_TOLERANCE else "not at equal likelihood (>"
    ceiling = f", {fmt(_f(em['loglik']) - _f(r['loglik']), '.1f')} below the EM ceiling" if em else ""
    return (
        f"{fmt(abs(d), '.1f')} nats/digit {'below' if d < 0 else 'above'} the median nemm machine{ceiling}: "
        f"{equal} {LIKELIHOOD_TOLERANCE:g} nats/digit apart)"
    )


def _sigma_bullets(v: Mapping[str, Any], p: Mapping[str, Any], tag: str) -> list[str]:
    """The entropy production of one variant's seeds by each estimator, and tau, Tr(M)/L, class KL."""
    s, seeds = v["summary"], v["seeds"]
    n, ninf = s["n_seeds"], s.get("n_inf", {})
    pc = seeds[0].get("pseudocount", 0.5) if seeds else 0.5
    rb = (
        f" The plain Rao–Blackwell value (`sigma_rao_blackwell`, {p.get('rao_blackwell_draws')} draws per state): "
        f"median {fmt(s.get('sigma_rao_blackwell_median'))}; it falls as draws grow (Fig. 6)."
        if not _same_values(seeds, "sigma", "sigma_rao_blackwell")
        else ""
    )
    return [
        f"- **Entropy production**{tag}: the headline σ (`sigma`, {sigma_method_of(seeds)}): median "
        f"{fmt(s['sigma_median'])}{_inf_note(ninf.get('sigma', 0), n)} nats/step (range {fmt(s['sigma_min'])} to "
        f"{fmt(s['sigma_max'])}; its convergence check passed for {s.get('n_sigma_converged', '?')} of {n} seeds: "
        "where not, the value still changes with the amount of sampling and is the value at this amount). The "
        f"paper's counting estimator (`sigma_counting`, {p['diag_steps']} steps, pseudo-count {pc:g}): median "
        f"{fmt(s.get('sigma_counting_median'))}{_inf_note(ninf.get('sigma_counting', 0), n)} with a median of "
        f"{fmt(s['n_one_way_median'], '.0f')} one-way pairs.{rb} Decorrelation time τ: median "
        f"{fmt(s['tau_median'])}{_inf_note(ninf.get('tau', 0), n)} steps; Tr(M)/L: median "
        f"{fmt(s['self_transition_median'])} (random: 1/L = {1 / p['n_hidden']:.3f}); class KL: median "
        f"{fmt(s['class_kl_median'])}{_inf_note(ninf.get('class_kl', 0), n)} nats."
    ]


def _same_values(records: Sequence[Mapping[str, Any]], a: str, b: str) -> bool:
    """Whether two keys hold the same numbers in every record (old records: the headline was Rao–Blackwell)."""
    return all(_f(r.get(a)) == _f(r.get(b)) or (r.get(b) is None) for r in records)


def _estimator_names(res: Mapping[str, Any], seeds: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The sigma estimators present in the records, each named with its settings (the headline first)."""
    p = res["protocol"]
    pc = seeds[0].get("pseudocount", 0.5) if seeds else 0.5
    names = {
        "sigma": f"`sigma` (headline, {sigma_method_of(seeds)})",
        "sigma_counting": f"`sigma_counting` (paper, counting, {p.get('diag_steps')} steps, pseudo-count {pc:g})",
        "sigma_rao_blackwell": f"`sigma_rao_blackwell` (plain Rao–Blackwell, {p.get('rao_blackwell_draws')} draws per state)",
    }
    present = {k: v for k, v in names.items() if any(not math.isnan(_f(r.get(k))) for r in seeds)}
    if "sigma_rao_blackwell" in present and _same_values(seeds, "sigma", "sigma_rao_blackwell"):
        del present["sigma_rao_blackwell"]  # records where the headline is the Rao-Blackwell value itself
    return present


def _claims_lines(res: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """The claims of Section IV, each with its statistic and verdict (nemm.reproduce.claims), per variant."""
    L = int(res["protocol"]["n_hidden"])
    rbms = res["baselines"].get("rbm", [])
    lines: list[str] = []
    add = lines.append
    add("## The paper's claims, tested")
    add("")
    add(
        "Each claim of the paper's Section IV, tested on this run's own records (`nemm.reproduce.claims`) by the "
        "fixed rules below, never tuned to the data. The σ-based claims (b)-(e) use the headline σ; they are "
        "repeated with every other estimator in the records, and a verdict that changes with the estimator says so."
    )
    add("")
    for v in variants:
        seeds = v["seeds"]
        names = _estimator_names(res, seeds)
        by_est = {k: evaluate_claims(seeds, rbms, L, estimator=k) for k in names}
        head = by_est.get("sigma") or evaluate_claims(seeds, rbms, L)
        if len(variants) > 1:
            add(f"### Variant {v['name']} ({len(seeds)} seeds)")
            add("")
        add("| claim | statistic (this run) | σ estimator | verdict |")
        add("|---|---|---|---|")
        for i, c in enumerate(head):
            others = {k: rs[i].verdict for k, rs in by_est.items() if k != "sigma" and c.estimator}
            differs = {k: vd for k, vd in others.items() if vd != c.verdict}
            note = (
                " — depends on the estimator: " + "; ".join(f"`{k}`: {vd}" for k, vd in differs.items())
                if differs
                else ""
            )
            add(
                f"| ({c.key}) {c.claim} | {c.statistic} | {names.get(c.estimator, '–') if c.estimator else '–'} | "
                f"**{c.verdict}**{note} |"
            )
        add("")
        alt = [k for k in by_est if k != "sigma"]
        if alt:
            add("The σ-based claims with the other estimators:")
            add("")
            add("| claim | σ estimator | statistic | verdict |")
            add("|---|---|---|---|")
            for k in alt:
                for c in by_est[k]:
                    if c.estimator:
                        add(f"| ({c.key}) | {names[k]} | {c.statistic} | {c.verdict} |")
            add("")
    add("Rules:")
    add("")
    for rule in RULES:
        add(f"- {rule}")
    add("")
    return lines


def _sampler_lines(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """Mixing per unit of work: tau_int_class x sample_cost of every kind and sampler, at its likelihood."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in _per_sampler(models):
        groups.setdefault((r["kind"], str(r.get("sampler", ""))), []).append(r)
    if not groups:
        return []
    add_lines: list[str] = [
        "### Mixing per unit of work",
        "",
        "Each model's mixing with each of its samplers (the RBM is trained once and sampled by its Gibbs "
        "chain, by parallel tempering and, where its hidden layer is enumerable, by exact i.i.d. draws). The "
        "cost of a sample is counted in Gibbs sweeps (x | h and h | x): 1 per step of a chain, K per PT step "
        "(K rungs), half a sweep per i.i.d. draw (x | h; the exact RBM sampler adds the enumeration of p(h)). "
        "τ_int,class × cost is the work per effectively independent class label: lower is better. Medians over "
        "seeds; ∞: the chain never changed class (τ_int,class) or a class was never generated (class KL).",
        "",
        "| kind | sampler | models | ln p median | τ_int,class | cost (sweeps/sample) | τ_int,class × cost "
        "| class KL of samples | PT swap rates (min to max) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (kind, sampler), rs in groups.items():
        work = [_f(r.get("tau_int_class")) * _f(r.get("sample_cost")) for r in rs]
        rates = [float(x) for r in rs for x in (r.get("pt_swap_rates") or [])]
        add_lines.append(
            f"| {kind} | {sampler or '–'} | {len(rs)} | {fmt(_median([r['loglik'] for r in rs]), '.2f')} | "
            f"{fmt(_median([r.get('tau_int_class') for r in rs]))} | "
            f"{fmt(_median([r.get('sample_cost') for r in rs]))} | {fmt(_median(work))} | "
            f"{fmt(_median([r.get('class_kl_samples') for r in rs]))} | "
            + (f"{min(rates):.2f} to {max(rates):.2f} |" if rates else "– |")
        )
    return add_lines + [""]


def _regime_lines(s: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[str]:
    """The regime rules and the regimes found, per variant."""
    s_seeds = [r for v in variants for r in v["seeds"]]
    lines: list[str] = []
    add = lines.append
    add("## Regimes")
    add("")
    add(
        f"Every nemm seed is classified from its headline σ ({sigma_method_of(s_seeds)}, with its error bar), τ "
        "and Tr(M)/L "
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
    lines: list[str] = []
    add = lines.append
    figs = res.get("files", {})
    if not ("fig2" in figs or "fig5" in figs):
        return lines
    headline = headline_sigma_label(res["seeds"])
    add("## Figures")
    add("")
    if "fig5" in figs:
        add(
            "![Fig. 5: exact ln p against τ_int,class, one point per model, by kind, with each kind's median ln p; "
            "∞ at the top edge](fig5_mixing.png)"
        )
        add("")
    if "fig6" in figs:
        add(
            "![Fig. 6: σ against the amount of sampling: plain Rao–Blackwell (`sigma_rao_blackwell`, draws per "
            "state) and counting (`sigma_counting`, chain length)](fig6_sigma.png)"
        )
        add("")
    if "fig2" in figs:
        add(
            "![Fig. 2: (a) log-likelihood and (b) σ_counting (the paper's counting estimator) during training; "
            f"(c) final ln p against the final {headline}; one row per variant](fig2.png)"
        )
        add("")
    for i, v in enumerate(_variant_list(res)):
        suffix = "" if i == 0 else f"_{v['name']}"
        tag = f", {v['name']}" if len(_variant_list(res)) > 1 else ""
        for what, key in (("best", "best_seed"), ("worst", "worst_seed")):
            if f"fig3_{what}{suffix}" in figs:
                add(
                    f"![Fig. 3 ({what} seed {v['summary'].get(key)}{tag}): weights w with occupancy, wbar, abar, M "
                    f"and a hidden trajectory (mean images and samples)](fig3_{what}{suffix}.png)"
                )
                add("")
    if "fig4" in figs:
        add(
            f"![Fig. 4: class KL, decorrelation time and mean self-transition against the {headline}; one row per "
            "variant](fig4.png)"
        )
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


def _not_converged_note(r: Mapping[str, Any]) -> str:
    """ " (not converged; effort ~k needed)" when the headline sigma's convergence check failed, else nothing."""
    if r.get("sigma_converged") is not False:
        return ""
    need = _f(r.get("sigma_effort_needed"))
    return (
        f" (not converged; effort ≈ {fmt(need, '.2g')} needed)" if math.isfinite(need) else " (not converged)"
    )


def _models_lines(models: Sequence[Mapping[str, Any]]) -> list[str]:
    """The table of every model."""
    lines: list[str] = []
    add = lines.append
    add("## All models")
    add("")
    add(
        "| kind | variant | seed | ln p (exact; ± chain noise, binary) | τ_int,class | τ_int,class (envelope) | cover time "
        "| σ (headline; effort 1 unless stated) "
        "| σ counting | one-way pairs | dominant-cycle affinity | τ (steps) | Tr(M)/L | class KL | regime |"
    )
    add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in models:
        add(
            f"| {r['kind']} | {r.get('variant', '')} | {r['seed']} | {fmt_pm(r['loglik'], r.get('loglik_err'), '.2f')} | "
            f"{fmt(r.get('tau_int_class'))} | {fmt(r.get('tau_int_class_envelope'))} | {fmt(r.get('cover_time'))} | "
            f"{fmt_pm(r['sigma'], r['sigma_err'])}{_not_converged_note(r)} | {fmt(r.get('sigma_counting'))} | "
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
        f'- σ, three estimators, each under its own name (spec, "Entropy production: which estimator"). The '
        f"headline `sigma` is {sigma_method_of(seeds)}, with its error bar and convergence check. Beside it, "
        f"`sigma_rao_blackwell`: eq. 21 on the plain Rao–Blackwell M (for every state z', "
        f"{p.get('rao_blackwell_draws')} draws x ~ A(z', ·), M(z', ·) the mean of Abar(x, ·)); on trained "
        "machines its tiny backward entries make it fall as draws grow (Fig. 6). And `sigma_counting`, the "
        f"paper's counting estimator at {p['diag_steps']} steps: a pair seen in one direction only gets a "
        f"pseudo-count of {seeds[0].get('pseudocount', 0.5) if seeds else 0.5} both ways and is counted as a "
        "one-way pair; with one-way pairs it grows with the chain length (Fig. 6)."
    )
    add(
        "- Chain noise of ln p (`loglik_err`, binary hidden layers, where many states are rarely visited): the "
        "standard error of the ln p given each diagnostic chain's own occupancy."
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
        "protocol, on the 2980 demo digits): EM ceiling −146.21 (1e-6 clip; −146.81 with 1e-3), trained models "
        "about −146.6 to −152.8 nats/digit, counting σ about 2 to 10 at 1e5 steps (growing with the chain "
        "length), plain Rao–Blackwell σ about 9 to 120 (falling with draws), an importance-sampling σ of 30 to 37 "
        "for two seeds, τ 2 to 2000 steps; an exact-gradient RBM, one-hot L = 6: −146.8 (Tr(M)/L = 1.000). Here: "
        f"nemm ln p {fmt(s['loglik_min'], '.1f')} to {fmt(s['loglik_max'], '.1f')}."
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
        + _claims_lines(res, variants)
        + _sampler_lines(models)
        + _regime_lines(res["summary"], variants)
        + _figure_lines(res)
        + _failed_lines(res)
        + _models_lines(models)
        + _method_lines(res)
    )
    return "\n".join(lines)


def _fig3_title(tag: str, rec: Mapping[str, Any]) -> str:
    var = f" [{rec['variant']}]" if rec.get("variant") not in (None, "", "shared") else ""
    return (
        f"Fig. 3 — {tag} seed {rec['seed']}{var}: ln p = {fmt(rec['loglik'], '.2f')}, "
        f"σ = {fmt_pm(rec['sigma'], rec['sigma_err'])} ({sigma_method_of([rec])}), τ = {fmt(rec['tau'])} "
        f"({rec['regime']})"
    )


def figure_of(job: Mapping[str, Any]) -> Any:
    """The ``matplotlib.figure.Figure`` of one job of :func:`figure_jobs` (drawn, not saved)."""
    from nemm import load, plots

    if job["kind"] == "fig2":
        return plots.draw_fig2(
            job["seeds"], em_ceiling=job["em"], baselines=job["rbm"], training_sigma=job["training_sigma"]
        )
    if job["kind"] == "fig5":
        return plots.draw_mixing(job["models"], equal_likelihood=LIKELIHOOD_TOLERANCE)
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


def _variant_list(res: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The variants of a results dictionary (one unnamed variant for results without them)."""
    return res.get("variants") or [{"name": "", "seeds": res["seeds"], "summary": res["summary"]}]


def _fig3_jobs(res: Mapping[str, Any], out: Path) -> list[dict[str, Any]]:
    """Fig. 3 of the best and worst seed of every variant (the first variant's files keep the plain names).

    None for binary hidden layers: Fig. 3 draws one image per hidden state.
    """
    jobs: list[dict[str, Any]] = []
    if res["protocol"].get("hidden", "onehot") != "onehot":
        return jobs
    for i, v in enumerate(_variant_list(res)):
        suffix = "" if i == 0 else f"_{v['name']}"
        for tag, key in (("best", "best_seed"), ("worst", "worst_seed")):
            rec = next((r for r in v["seeds"] if r["seed"] == v["summary"].get(key)), None)
            if rec is not None and rec.get("model"):
                jobs.append(
                    {
                        "kind": "fig3",
                        "name": f"fig3_{tag}{suffix}",
                        "path": str(out / f"fig3_{tag}{suffix}.png"),
                        "model": str(out / rec["model"]),
                        "rec": rec,
                        "title": _fig3_title(tag, rec),
                    }
                )
    return jobs


def figure_jobs(res: Mapping[str, Any], out_dir: str | Path) -> list[dict[str, Any]]:
    """The figures of a results dictionary as independent jobs: kind, name, PNG path and their data.

    Figs. 2 and 4 draw the seeds of every variant (one row of panels each); Fig. 3 reads
    the saved model of a seed (``record["model"]``, relative to ``out_dir``).
    """
    out = Path(out_dir)
    seeds = [r for v in _variant_list(res) for r in v["seeds"]]
    em = res["baselines"]["em"]
    models = res.get("models") or list(seeds)
    track = res["protocol"].get("track_steps")
    jobs: list[dict[str, Any]] = [
        {
            "kind": "fig4",
            "name": "fig4",
            "path": str(out / "fig4.png"),
            "seeds": seeds,
            "L": int(res["protocol"]["n_hidden"]),
        },
    ]
    jobs += _fig3_jobs(res, out)
    # Longest first (Fig. 4, the Figs. 3, Fig. 2), so that a pool's workers finish together.
    jobs += [
        {
            "kind": "fig2",
            "name": "fig2",
            "path": str(out / "fig2.png"),
            "seeds": seeds,
            "em": em["loglik"] if em else None,
            "rbm": res["baselines"].get("tied", []),
            # The tracker (nemm.diagnostics.epoch_tracker) counts on 2 chains with pseudo-count 0.5.
            "training_sigma": (
                f"σ_counting (paper, counting, 2 × {track} steps, pseudo-count 0.5)"
                if track
                else TRAINING_SIGMA_LABEL
            ),
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
    order = ["fig2", "fig3_best", "fig3_worst", "fig4", "fig5", "fig6"]
    return {k: drawn[k] for k in order + sorted(set(drawn) - set(order)) if k in drawn}


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
        f"{'sigma ± err':>18}  {'count':>6}  {'1-way':>5}  {'Tr(M)/L':>7}  regime",
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
