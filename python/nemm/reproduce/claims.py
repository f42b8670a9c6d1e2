"""The claims of the paper's Section IV, tested on a reproduction's own records.

Every claim gets a statistic computed from the per-seed records (counts, a
Spearman rank correlation with its p-value, a sign test) and a verdict decided
by the fixed rules of :data:`RULES`, never tuned to the data:

* **supported**: the statistic shows what the claim predicts;
* **not supported**: enough data, but the predicted effect is not significant
  (or only part of the seeds show it);
* **contradicted**: the data show the opposite (significantly), or most seeds
  are counter-examples to a claim about all of them;
* **not testable here**: too few seeds with values, or the comparison the
  claim needs is missing.

The statistics are numpy only: ranks with ties, Spearman's rho with an exact
permutation p-value for small samples and the Student-t approximation
otherwise (its tail from the regularized incomplete beta function, evaluated
by a continued fraction), and an exact binomial sign test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nemm.reproduce.regimes import NEAR_EQ_SIGMA
from nemm.results import as_float as _f

__all__ = [
    "ALPHA",
    "ESTIMATORS",
    "EXACT_MAX_N",
    "LIKELIHOOD_TOLERANCE",
    "MIN_SEEDS",
    "RULES",
    "ClaimResult",
    "SpearmanResult",
    "betainc",
    "rankdata",
    "sign_test",
    "spearman",
    "student_t_two_sided",
    "evaluate_claims",
]

#: Significance level of every test.
ALPHA = 0.05
#: Fewest seeds a claim is tested on: the smallest sample at which a rank or sign test can reach p < 0.05.
MIN_SEEDS = 5
#: Up to this many pairs the Spearman p-value is an exact permutation test (8! = 40320 orderings).
EXACT_MAX_N = 8
#: Two models are "at equal likelihood" when their median ln p differ by at most this (nats/digit).
LIKELIHOOD_TOLERANCE = 2.0

#: Estimators of sigma in the records: (key, error key, name), the headline first (CONTRACTS.md).
ESTIMATORS = (
    ("sigma", "sigma_err", "headline"),
    ("sigma_counting", "sigma_counting_err", "counting (paper)"),
    ("sigma_rao_blackwell", "sigma_rao_blackwell_err", "Rao–Blackwell"),
)

#: The verdict rules, in words, for the report.
RULES = (
    f"Every claim needs at least {MIN_SEEDS} nemm seeds with the values it uses (the smallest sample at which a "
    f"rank or sign test can reach p < {ALPHA}); with fewer it is *not testable here*. Missing (NaN) values are "
    "left out and counted; infinite ones (τ = ∞) are kept, ranked above every finite value.",
    f"Correlation claims use Spearman's rank correlation ρ (ties get average ranks) with a two-sided p-value: an "
    f"exact permutation test for n ≤ {EXACT_MAX_N} pairs, else the Student-t approximation with n − 2 degrees of "
    f"freedom. *supported*: ρ has the predicted sign and p < {ALPHA}; *contradicted*: ρ has the opposite sign "
    f"and p < {ALPHA}; *not supported*: p ≥ {ALPHA}.",
    "Claims about all trained machines count the seeds that satisfy them: *supported* when all do, "
    "*contradicted* when at most half do, *not supported* otherwise.",
    f"'Nearly reversible' is the regime rule: σ < {NEAR_EQ_SIGMA} nats/step or σ within 3 error bars of 0; "
    "'low likelihood' is the bottom quartile of ln p (ln p at or below its 25th percentile). Claim (b) is "
    "*supported* when every low-likelihood seed is nearly reversible and ρ(ln p, σ) > 0, *contradicted* when at "
    "most half of them are, *not supported* otherwise.",
    "Claim (e) counts the seeds that are not nearly reversible; it is *not testable here* when the same estimator "
    "finds an equilibrium RBM not nearly reversible too (its Gibbs chain obeys detailed balance, so such an "
    "estimator is biased).",
    f"Claim (f) compares the nemm seeds' τ_int,class with the median of the RBM's Gibbs-chain τ_int,class, "
    f"only at equal likelihood (median ln p within {LIKELIHOOD_TOLERANCE:g} nats/digit): an exact sign test on "
    f"the number of nemm seeds below it; *supported* when more than half are below and the one-sided p < {ALPHA}, "
    f"*contradicted* when more than half are above with p < {ALPHA}, *not supported* otherwise.",
    "σ-based claims are evaluated with every estimator present in the records; the verdict stated is the "
    "headline σ's, and the others are shown beside it.",
)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class SpearmanResult:
    """Spearman's rank correlation of ``n`` pairs, its two-sided p-value and how it was computed."""

    rho: float
    p_value: float
    n: int
    method: str


def rankdata(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (ties get the average of their ranks; ``inf`` ranks above every finite value)."""
    a = np.asarray(values, dtype=float)
    if np.isnan(a).any():
        raise ValueError("rankdata: values must not be NaN (drop missing values first)")
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    ranks = np.empty(a.size, dtype=float)
    start = 0
    for i in range(1, a.size + 1):
        if i == a.size or sorted_a[i] != sorted_a[start]:
            ranks[order[start:i]] = 0.5 * (start + i - 1) + 1.0  # average of ranks start+1 .. i
            start = i
    return ranks


def _pearson(rx: np.ndarray, ry: np.ndarray) -> float:
    dx, dy = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / den if den > 0 else math.nan


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"betainc: continued fraction did not converge for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc needs a > 0 and b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1, got x={x}")
    if x in (0.0, 1.0):
        return float(x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_two_sided(t: float, df: float) -> float:
    """Two-sided tail ``P(|T| >= |t|)`` of Student's t with ``df`` degrees of freedom."""
    if not df > 0:
        raise ValueError(f"student_t_two_sided needs df > 0, got {df}")
    if math.isinf(t):
        return 0.0
    return betainc(0.5 * df, 0.5, df / (df + t * t))


def spearman(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray, *, method: str = "auto"
) -> SpearmanResult:
    """Spearman's rank correlation of the pairs where neither value is NaN, with a two-sided p-value.

    Parameters
    ----------
    x, y : sequences of float
        Paired values; ``inf`` is allowed (it ranks above every finite value).
    method : {"auto", "exact", "t"}
        ``"exact"``: permutation test over all orderings of ``y`` (at most
        :data:`EXACT_MAX_N` pairs); ``"t"``: ``t = rho sqrt((n-2)/(1-rho^2))`` with
        ``n - 2`` degrees of freedom; ``"auto"``: exact up to ``EXACT_MAX_N`` pairs.

    Returns
    -------
    SpearmanResult
        ``rho`` and ``p_value`` are NaN with fewer than 3 pairs or when a side is constant.
    """
    if method not in ("auto", "exact", "t"):
        raise ValueError(f"method must be 'auto', 'exact' or 't', got {method!r}")
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"spearman needs two 1-D sequences of equal length, got {xa.shape} and {ya.shape}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    rx, ry = rankdata(xa[keep]), rankdata(ya[keep])
    n = int(keep.sum())
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_N else "t"
    if method == "exact" and n > EXACT_MAX_N:
        raise ValueError(f"the exact permutation test is limited to {EXACT_MAX_N} pairs, got {n}")
    rho = _pearson(rx, ry) if n >= 3 else math.nan
    if math.isnan(rho):
        return SpearmanResult(math.nan, math.nan, n, method)
    if method == "exact":
        perms = np.array(list(itertools.permutations(range(n))))
        dx = rx - rx.mean()
        dy = ry[perms] - ry.mean()
        rhos = (dy @ dx) / math.sqrt(float(dx @ dx) * float(dy[0] @ dy[0]))
        p = float(np.mean(np.abs(rhos) >= abs(rho) - 1e-12))
        return SpearmanResult(rho, p, n, "exact permutation")
    if abs(rho) >= 1.0:
        return SpearmanResult(rho, 0.0, n, "t approximation")
    t = rho * math.sqrt((n - 2) / (1.0 - rho * rho))
    return SpearmanResult(rho, student_t_two_sided(t, n - 2), n, "t approximation")


def sign_test(k: int, n: int) -> float:
    """One-sided exact sign test: ``P(K >= k)`` for ``K ~ Binomial(n, 1/2)``."""
    if not 0 <= k <= n:
        raise ValueError(f"sign_test needs 0 <= k <= n, got k={k}, n={n}")
    return sum(math.comb(n, j) for j in range(k, n + 1)) / 2.0**n


# --------------------------------------------------------------------------- the claims


@dataclass
class ClaimResult:
    """One claim of Section IV with the statistic that tests it and the verdict of :data:`RULES`."""

    key: str
    claim: str
    statistic: str
    verdict: str
    estimator: str = ""
    values: dict[str, Any] = field(default_factory=dict)


def _fmt(v: float, spec: str = ".3g") -> str:
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return format(v, spec)


def _col(records: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([_f(r.get(key)) for r in records], dtype=float)


def _rho_text(s: SpearmanResult, what: str) -> str:
    return f"Spearman ρ({what}) = {_fmt(s.rho, '.2f')}, p = {_fmt(s.p_value, '.2g')} (n = {s.n}, {s.method})"


def _correlation_verdict(s: SpearmanResult, sign: int) -> str:
    if s.n < MIN_SEEDS or math.isnan(s.rho):
        return "not testable here"
    if s.p_value < ALPHA:
        return "supported" if sign * s.rho > 0 else "contradicted"
    return "not supported"


def _count_verdict(k: int, n: int) -> str:
    if n < MIN_SEEDS:
        return "not testable here"
    if k == n:
        return "supported"
    return "contradicted" if k <= n / 2 else "not supported"


def _self_transition_claim(seeds: Sequence[Mapping[str, Any]], L: int) -> ClaimResult:
    st = _col(seeds, "self_transition")
    # The random value is 1/S over the S hidden states (1/L one-hot; a binary layer's records carry 1/2^L).
    rand = np.array([_f(r.get("random_self_transition", 1.0 / L)) for r in seeds], dtype=float)
    ok = ~np.isnan(st)
    known = st[ok]
    k = int(np.sum(known < rand[ok]))
    levels = sorted({float(v) for v in rand[ok]})
    level = f"the random value 1/S = {levels[0]:.3g}" if len(levels) == 1 else "their random value 1/S"
    stat = (
        f"{k} of {known.size} seeds have Tr(M)/S below {level} (max "
        f"{_fmt(float(known.max()) if known.size else math.nan)}; counted M)"
        + ("" if known.size == len(st) else f"; {len(st) - known.size} without a value")
    )
    return ClaimResult(
        "a",
        "Trained machines avoid repeating their hidden state: Tr(M)/S below the random 1/S (1/L one-hot) for all "
        "of them (eq. 24).",
        stat,
        _count_verdict(k, known.size),
        values={"k": k, "n": int(known.size), "max": float(known.max()) if known.size else math.nan},
    )


def _reversible(sig: np.ndarray, err: np.ndarray) -> np.ndarray:
    """The regime rule's 'nearly reversible' (an unknown error bar cannot make a seed reversible)."""
    return (sig < NEAR_EQ_SIGMA) | (np.isfinite(err) & (sig <= 3.0 * err))


def _likelihood_sigma_claim(seeds: Sequence[Mapping[str, Any]], key: str, ekey: str) -> ClaimResult:
    ll, sig, err = _col(seeds, "loglik"), _col(seeds, key), _col(seeds, ekey)
    ok = np.isfinite(ll) & ~np.isnan(sig)
    s = spearman(ll[ok], sig[ok])
    low = ok & (ll <= np.percentile(ll[ok], 25)) if ok.any() else ok
    m = int(low.sum())
    k = int(np.sum(_reversible(sig[low], err[low])))
    worst = int(np.argmin(np.where(ok, ll, np.inf))) if ok.any() else -1
    if int(ok.sum()) < MIN_SEEDS:
        verdict = "not testable here"
    elif k == m and s.rho > 0:
        verdict = "supported"
    else:
        verdict = "contradicted" if k <= m / 2 else "not supported"
    worst_txt = (
        f"; worst seed {seeds[worst].get('seed')}: ln p {_fmt(ll[worst], '.2f')}, σ {_fmt(sig[worst])}"
        if worst >= 0
        else ""
    )
    return ClaimResult(
        "b",
        "Low likelihood only when the machine is nearly reversible (low σ).",
        f"{k} of the {m} low-likelihood seeds are nearly reversible{worst_txt}; {_rho_text(s, 'ln p, σ')}",
        verdict,
        key,
        {"k": k, "m": m, "rho": s.rho, "p": s.p_value, "n": s.n},
    )


def _kl_sigma_claim(seeds: Sequence[Mapping[str, Any]], key: str) -> ClaimResult:
    s = spearman(_col(seeds, "class_kl"), _col(seeds, key))
    return ClaimResult(
        "c",
        "Low class KL (eq. 22) only at large σ: the KL falls as σ grows.",
        _rho_text(s, "class KL, σ") + "; predicted ρ < 0",
        _correlation_verdict(s, -1),
        key,
        {"rho": s.rho, "p": s.p_value, "n": s.n},
    )


def _tau_sigma_claim(seeds: Sequence[Mapping[str, Any]], key: str) -> ClaimResult:
    s = spearman(_col(seeds, "tau"), _col(seeds, key))
    return ClaimResult(
        "d",
        "The decorrelation time τ (eq. 23) tracks σ.",
        _rho_text(s, "τ, σ") + "; predicted ρ > 0",
        _correlation_verdict(s, +1),
        key,
        {"rho": s.rho, "p": s.p_value, "n": s.n},
    )


def _irreversible(records: Sequence[Mapping[str, Any]], key: str, ekey: str) -> tuple[int, int]:
    """(models that are not nearly reversible, models with sigma and a finite error bar)."""
    sig, err = _col(records, key), _col(records, ekey)
    known = ~np.isnan(sig) & np.isfinite(err)
    return int(np.sum(known & ~_reversible(sig, err))), int(known.sum())


def _detailed_balance_claim(
    seeds: Sequence[Mapping[str, Any]], rbms: Sequence[Mapping[str, Any]], key: str, ekey: str
) -> ClaimResult:
    k, n = _irreversible(seeds, key, ekey)
    kr, nr = _irreversible(rbms, key, ekey)
    verdict = _count_verdict(k, n)
    control = f"; equilibrium control: {kr} of {nr} RBMs not nearly reversible" if nr else "; no RBM control"
    if kr and verdict != "not testable here":
        verdict = "not testable here"
        control += " (the estimator is biased)"
    return ClaimResult(
        "e",
        "Trained machines break detailed balance: σ > 0 beyond its error bar (not nearly reversible).",
        f"{k} of {n} seeds are not nearly reversible (σ ≥ {NEAR_EQ_SIGMA} and beyond 3 error bars){control}",
        verdict,
        key,
        {"k": k, "n": n, "k_rbm": kr, "n_rbm": nr},
    )


def _median(v: np.ndarray) -> float:
    v = v[~np.isnan(v)]
    return float(np.median(v)) if v.size else math.nan


def _best_sampler_note(seeds: Sequence[Mapping[str, Any]], rbms: Sequence[Mapping[str, Any]]) -> str:
    """Beside the chains: the RBM's best sampler per unit of work (lowest median τ_int,class × cost), if recorded.

    Not part of the verdict (the claim is about the chains); a referee's question answered from the same run.
    """
    work: dict[str, list[float]] = {}
    for r in rbms:
        for s in r.get("samplers") or []:
            tau, cost = _f(s.get("tau_int_class")), _f(s.get("sample_cost"))
            if not (math.isnan(tau) or math.isnan(cost)):
                work.setdefault(str(s.get("sampler")), []).append(tau * cost)
    if not work:
        return ""
    best = min(work, key=lambda k: _median(np.array(work[k])))
    nemm_work = _col(seeds, "tau_int_class") * np.array([_f(r.get("sample_cost", 1.0)) for r in seeds])
    return (
        f"; per unit of work (τ_int,class × sweeps per sample) the RBM's best sampler, {best}, has median "
        f"{_fmt(_median(np.array(work[best])))} against nemm's {_fmt(_median(nemm_work))}"
    )


def _mixing_claim(seeds: Sequence[Mapping[str, Any]], rbms: Sequence[Mapping[str, Any]]) -> ClaimResult:
    claim = "Mixing at equal likelihood: the nemm chain decorrelates the classes faster than the RBM's chain."
    gibbs = [r for r in rbms if r.get("sampler", "gibbs") in ("gibbs", None)]
    tau = _col(seeds, "tau_int_class")
    tau = tau[~np.isnan(tau)]
    if not gibbs or tau.size == 0:
        what = "no RBM Gibbs chain" if not gibbs else "no τ_int,class of the nemm seeds"
        return ClaimResult("f", claim, f"{what} in the records", "not testable here")
    ll_n, ll_r = _median(_col(seeds, "loglik")), _median(_col(gibbs, "loglik"))
    t_r = _median(_col(gibbs, "tau_int_class"))
    k, n = int(np.sum(tau < t_r)), int(tau.size)
    above = int(np.sum(tau > t_r))
    p_below, p_above = sign_test(k, n), sign_test(above, n)
    stat = (
        f"{k} of {n} nemm seeds have τ_int,class below the RBM's median {_fmt(t_r)} (nemm median {_fmt(_median(tau))}); "
        f"sign test p = {_fmt(p_below, '.2g')}; median ln p nemm {_fmt(ll_n, '.2f')}, RBM {_fmt(ll_r, '.2f')}"
    )
    stat += _best_sampler_note(seeds, rbms)
    if n < MIN_SEEDS or math.isnan(t_r):
        verdict = "not testable here"
    elif not abs(ll_n - ll_r) <= LIKELIHOOD_TOLERANCE:
        verdict = "not testable here"
        stat += f" (not at equal likelihood: {_fmt(abs(ll_n - ll_r), '.2f')} > {LIKELIHOOD_TOLERANCE:g} nats apart)"
    elif k > n / 2 and p_below < ALPHA:
        verdict = "supported"
    elif above > n / 2 and p_above < ALPHA:
        verdict = "contradicted"
    else:
        verdict = "not supported"
    return ClaimResult("f", claim, stat, verdict, values={"k": k, "n": n, "p": p_below, "tau_rbm": t_r})


def evaluate_claims(
    seeds: Sequence[Mapping[str, Any]],
    rbms: Sequence[Mapping[str, Any]],
    L: int,
    *,
    estimator: str = "sigma",
) -> list[ClaimResult]:
    """The claims (a)-(f) of Section IV tested on the nemm seeds' records (and the RBMs' for (e), (f)).

    Parameters
    ----------
    seeds : sequence of dict
        Records of the trained machines of one variant (``loglik``, ``sigma``, ``sigma_err``,
        ``tau``, ``self_transition``, ``class_kl``, ``tau_int_class``...).
    rbms : sequence of dict
        Records of the equilibrium RBMs (``sampler`` picks the Gibbs rows when present).
    L : int
        Number of hidden states (the random Tr(M)/L is 1/L).
    estimator : str
        The sigma key of the sigma-based claims (b)-(e): one of :data:`ESTIMATORS`.
    """
    errs = {k: e for k, e, _ in ESTIMATORS}
    if estimator not in errs:
        raise ValueError(f"estimator must be one of {', '.join(errs)}, got {estimator!r}")
    ekey = errs[estimator]
    return [
        _self_transition_claim(seeds, L),
        _likelihood_sigma_claim(seeds, estimator, ekey),
        _kl_sigma_claim(seeds, estimator),
        _tau_sigma_claim(seeds, estimator),
        _detailed_balance_claim(seeds, rbms, estimator, ekey),
        _mixing_claim(seeds, rbms),
    ]
