"""The statistics and verdicts of nemm.reproduce.claims (the report's "The paper's claims, tested")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nemm.reproduce import claims
from nemm.reproduce.claims import betainc, evaluate_claims, rankdata, sign_test, spearman, student_t_two_sided

L = 6


# --------------------------------------------------------------------------- statistics against known values


def test_rankdata_averages_ties_and_ranks_inf_last() -> None:
    np.testing.assert_array_equal(rankdata([3.0, 1.0, 3.0, math.inf, 2.0]), [3.5, 1.0, 3.5, 5.0, 2.0])
    np.testing.assert_array_equal(rankdata([math.inf, math.inf, 0.0]), [2.5, 2.5, 1.0])
    with pytest.raises(ValueError, match="NaN"):
        rankdata([1.0, math.nan])


@pytest.mark.parametrize(
    ("a", "b", "x", "expected"),
    [
        (1.0, 1.0, 0.37, 0.37),  # I_x(1, 1) = x
        (2.0, 3.0, 0.4, 0.5248),  # = P(Binomial(4, 0.4) >= 2)
        (2.5, 0.5, 0.3, 0.018927124071945658),  # scipy.special.betainc
        (0.5, 7.5, 0.9, 0.9999999932897103),
        (30.0, 40.0, 0.45, 0.6447480085585666),
    ],
)
def test_betainc_known_values(a: float, b: float, x: float, expected: float) -> None:
    assert betainc(a, b, x) == pytest.approx(expected, rel=1e-10, abs=1e-14)
    assert betainc(a, b, x) + betainc(b, a, 1.0 - x) == pytest.approx(1.0, abs=1e-12)


def test_betainc_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="a > 0"):
        betainc(0.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        betainc(1.0, 1.0, 1.5)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 12.0])
def test_student_t_tail_closed_forms(t: float) -> None:
    # df = 1 is the Cauchy distribution, df = 2 has a closed form too.
    assert student_t_two_sided(t, 1) == pytest.approx(1.0 - 2.0 / math.pi * math.atan(t), abs=1e-12)
    assert student_t_two_sided(-t, 2) == pytest.approx(1.0 - t / math.sqrt(t * t + 2.0), abs=1e-12)


def test_student_t_tail_scipy_values() -> None:
    assert student_t_two_sided(2.0, 10) == pytest.approx(0.07338803477074037, rel=1e-9)
    assert student_t_two_sided(0.7, 33) == pytest.approx(0.4888330835019771, rel=1e-9)


def test_spearman_matches_scipy_t_approximation() -> None:
    s = spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7], method="t")  # scipy.stats.spearmanr's documented example
    assert s.rho == pytest.approx(0.8207826816681233, rel=1e-12)
    assert s.p_value == pytest.approx(0.08858700531354384, rel=1e-9)
    x = [0.126, -0.132, 0.64, 0.105, -0.536, 0.362, 1.304, 0.947, -0.704, -1.265, -0.623, 0.041]
    y = [-4.524, -0.57, -1.851, -1.36, -1.624, -0.271, 2.127, 3.032, -0.961, 1.468, -1.954, 0.744]
    s = spearman(x, y)
    assert (s.method, s.n) == ("t approximation", 12)
    assert s.rho == pytest.approx(0.2447552447552448, rel=1e-12)
    assert s.p_value == pytest.approx(0.44326193645018325, rel=1e-9)
    ties = spearman([1, 2, 2, 3, 4, 4, 5, 6, 7, 8, 9, 10], [2, 1, 3, 3, 5, 4, 7, 6, 9, 8, 10, 10])
    assert ties.rho == pytest.approx(0.9665492957746478, rel=1e-12)
    assert ties.p_value == pytest.approx(3.118236463628404e-07, rel=1e-8)


def test_spearman_exact_permutation_small_samples() -> None:
    s = spearman([1, 2, 3, 4], [10, 20, 30, 40])
    assert (s.rho, s.method) == (1.0, "exact permutation")
    assert s.p_value == pytest.approx(2 / 24)  # only the identity and the reversal reach |rho| = 1
    assert spearman([5, 4, 3, 2, 1], [1, 2, 3, 4, 5]).p_value == pytest.approx(2 / 120)
    # Exact and t agree roughly at n = 8 on a moderate correlation.
    x, y = [1, 2, 3, 4, 5, 6, 7, 8], [2, 1, 4, 3, 6, 8, 5, 7]
    assert spearman(x, y).p_value == pytest.approx(spearman(x, y, method="t").p_value, abs=0.02)


def test_spearman_drops_nan_keeps_inf_and_reports_degenerate_cases() -> None:
    s = spearman([1.0, 2.0, math.nan, 3.0, 4.0], [1.0, 2.0, 7.0, math.inf, math.nan])
    assert s.n == 3 and s.rho == pytest.approx(1.0)
    assert math.isnan(spearman([1, 2], [1, 2]).rho)
    assert math.isnan(spearman([1, 1, 1, 1], [1, 2, 3, 4]).p_value)
    with pytest.raises(ValueError, match="equal length"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="method"):
        spearman([1, 2, 3], [1, 2, 3], method="kendall")


def test_sign_test_exact_binomial_tail() -> None:
    assert sign_test(5, 5) == pytest.approx(1 / 32)
    assert sign_test(0, 7) == 1.0
    assert sign_test(8, 10) == pytest.approx((45 + 10 + 1) / 1024)
    with pytest.raises(ValueError, match="k <= n"):
        sign_test(4, 3)


# --------------------------------------------------------------------------- verdicts on synthetic records


def _seed(
    i: int, *, ll: float, sigma: float, err: float, kl: float, tau: float, st: float, tic: float
) -> dict:
    return {
        "kind": "nemm",
        "seed": i,
        "loglik": ll,
        "sigma": sigma,
        "sigma_err": err,
        "sigma_counting": sigma,
        "sigma_counting_err": err,
        "class_kl": kl,
        "tau": tau,
        "self_transition": st,
        "tau_int_class": tic,
    }


def _rbm(*, ll: float = -154.0, sigma: float = 0.01, err: float = 0.05, tic: float = math.inf) -> dict:
    return {"kind": "rbm", "seed": 0, "loglik": ll, "sigma": sigma, "sigma_err": err, "tau_int_class": tic}


def _verdicts(seeds: list[dict], rbms: list[dict], estimator: str = "sigma") -> dict[str, str]:
    return {c.key: c.verdict for c in evaluate_claims(seeds, rbms, L, estimator=estimator)}


def _paper_world(n: int = 12) -> list[dict]:
    """Records that behave as the paper says: ln p, tau rise with sigma, the KL falls, low ln p is reversible."""
    out = []
    for i in range(n):
        sigma = 0.1 if i < 3 else 0.5 * i  # the three worst machines are nearly reversible
        out.append(
            _seed(
                i,
                ll=-160.0 + i,
                sigma=sigma,
                err=0.05,
                kl=0.5 - 0.03 * i,
                tau=2.0 + i,
                st=0.02,
                tic=1.5 + 0.01 * i,
            )
        )
    return out


def test_claims_supported_when_the_records_behave_as_the_paper_says() -> None:
    v = _verdicts(_paper_world(), [_rbm()])
    assert v == dict.fromkeys("abcdf", "supported") | {"e": "not supported"}
    # (e) is about all machines: the three reversible ones are counter-examples, 9 of 12 break detailed balance.
    c = {c.key: c for c in evaluate_claims(_paper_world(), [_rbm()], L)}
    assert c["e"].values["k"] == 9 and c["e"].values["n"] == 12


def test_claims_contradicted_when_the_records_say_the_opposite() -> None:
    seeds = []
    for i in range(12):
        seeds.append(
            _seed(
                i,
                ll=-150.0 - i,  # the worst machines have the largest sigma
                sigma=10.0 + 5 * i,
                err=0.5,
                kl=0.05 + 0.03 * i,  # the KL grows with sigma
                tau=50.0 - 3 * i,  # tau falls with sigma
                st=0.3,  # above 1/L = 0.167 for every seed
                tic=20.0,
            )
        )
    v = _verdicts(seeds, [_rbm(ll=-156.0, tic=1.2)])
    assert v == {
        "a": "contradicted",
        "b": "contradicted",
        "c": "contradicted",
        "d": "contradicted",
        "e": "supported",
        "f": "contradicted",
    }


def test_claims_not_testable_with_too_few_seeds_or_missing_values() -> None:
    few = _paper_world(4)
    assert set(_verdicts(few, [_rbm()]).values()) == {"not testable here"}
    missing = [dict(r, class_kl=math.nan, tau=math.nan) for r in _paper_world()]
    v = _verdicts(missing, [])
    assert v["c"] == v["d"] == v["f"] == "not testable here"
    assert v["a"] == "supported"


def test_biased_estimator_makes_detailed_balance_untestable() -> None:
    # The estimator finds the equilibrium RBM irreversible too: no test of (e) with it.
    v = _verdicts(_paper_world()[3:], [_rbm(sigma=5.0, err=0.1)])
    assert v["e"] == "not testable here"
    assert _verdicts(_paper_world()[3:], [_rbm()])["e"] == "supported"


def test_mixing_claim_needs_equal_likelihood() -> None:
    c = {c.key: c for c in evaluate_claims(_paper_world(), [_rbm(ll=-120.0)], L)}
    assert c["f"].verdict == "not testable here"
    assert "not at equal likelihood" in c["f"].statistic
    # Only the RBM's Gibbs rows count (a sampler column from the samplers comparison).
    rbms = [_rbm() | {"sampler": "gibbs"}, _rbm(tic=1.0) | {"sampler": "exact"}]
    assert _verdicts(_paper_world(), rbms)["f"] == "supported"


def test_claims_follow_the_chosen_estimator() -> None:
    seeds = _paper_world()
    for r in seeds:  # the counting estimator sees the opposite ordering of tau
        r["sigma_counting"] = 100.0 - r["sigma"]
    assert _verdicts(seeds, [_rbm()])["d"] == "supported"
    assert _verdicts(seeds, [_rbm()], "sigma_counting")["d"] == "contradicted"
    with pytest.raises(ValueError, match="estimator"):
        evaluate_claims(seeds, [], L, estimator="sigma_bogus")


def test_rules_state_the_thresholds() -> None:
    text = " ".join(claims.RULES)
    assert f"at least {claims.MIN_SEEDS}" in text and f"{claims.ALPHA}" in text
    assert f"{claims.LIKELIHOOD_TOLERANCE:g} nats" in text


def test_self_transition_claim_uses_the_random_value_of_the_records() -> None:
    # A binary hidden layer of L = 6 has S = 64 states: 0.02 is above its random value 1/64.
    seeds = [dict(r, random_self_transition=1 / 64) for r in _paper_world()]
    c = evaluate_claims(seeds, [_rbm()], L)[0]
    assert c.verdict == "contradicted" and "1/S = 0.0156" in c.statistic
    assert evaluate_claims(_paper_world(), [_rbm()], L)[0].statistic.startswith("12 of 12 seeds")
