"""What report.md and the figures say, from synthetic records (no training): claims, wording, infinities, variants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nemm.reproduce import report as rpt

mpl = pytest.importorskip("matplotlib")
mpl.use("Agg")

from nemm import plots  # noqa: E402

PROTOCOL = {
    "mode": "test",
    "data": "synthetic",
    "n_hidden": 6,
    "hidden": "onehot",
    "n_epochs": 3,
    "steps_per_epoch": 30,
    "batch_size": [16, 160],
    "chain_steps": 48,
    "n_chains": 1,
    "learning_rate": 0.1,
    "centered": True,
    "normalization": "softmax",
    "variants": ["softmax"],
    "seeds": list(range(8)),
    "rbm_seeds": [0],
    "tied_seeds": [0],
    "em_restarts": 2,
    "n_jobs": 1,
    "track_every": 1,
    "track_steps": 500,
    "diag_steps": 4000,
    "mixing_steps": 1000,
    "rao_blackwell_draws": 100,
}


def _machine(kind: str, seed: int, variant: str = "softmax", **kw: float) -> dict:
    r = {
        "kind": kind,
        "variant": variant,
        "seed": seed,
        "normalization": variant,
        "hidden": "onehot",
        "centered": True,
        "loglik": -147.0 - 0.3 * seed,
        "sigma": 5.0 + seed,
        "sigma_err": 0.2,
        "sigma_counting": 2.0 + 0.5 * seed,
        "sigma_counting_err": 0.1,
        "sigma_rao_blackwell": 5.0 + seed,
        "n_one_way": 1,
        "pseudocount": 0.5,
        "tau": 3.0 + seed,
        "tau_err": 0.1,
        "self_transition": 0.01,
        "class_kl": 0.05 - 0.004 * seed,
        "tau_int_class": 1.2,
        "tau_int_class_envelope": 1.3,
        "cover_time": 4.0,
        "class_kl_samples": 0.01,
        "regime": "intermediate",
        "sampling": {"n_chains": 2, "n_steps": 2000, "burn_in": 100, "n_segments": 10},
    }
    r.update(kw)
    return r


def _models(*, variants: tuple[str, ...] = ("softmax",), n: int = 8, **seed_kw: float) -> list[dict]:
    out = [_machine("nemm", i, v, **seed_kw) for v in variants for i in range(n)]
    out.append(_machine("rbm", 0, "shared", loglik=-147.5, sigma=0.0, sigma_err=0.01, tau_int_class=math.inf))
    # The tied machine: about 34 nats/digit below the machines.
    out.append(
        _machine("tied", 0, "shared", loglik=-182.05, sigma=0.001, sigma_err=0.002, regime="near-equilibrium")
    )
    out.append(
        {
            "kind": "mixture",
            "variant": "shared",
            "seed": 0,
            "loglik": -146.25,
            "n_init": 2,
            "sigma": math.nan,
            "sigma_err": math.nan,
            "tau": math.nan,
            "self_transition": math.nan,
            "class_kl": None,
            "n_one_way": None,
            "regime": "",
            "tau_int_class": 1.0,
            "probability_clip": 1e-6,
        }
    )
    return out


def _report(models: list[dict], variants: tuple[str, ...] = ("softmax",)) -> tuple[dict, str]:
    res = rpt.assemble(models, dict(PROTOCOL, variants=list(variants)))
    return res, rpt.report_markdown(res)


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end >= 0 else None]


def test_claims_section_gives_each_claim_a_verdict_and_its_rules() -> None:
    _, text = _report(_models())
    sec = _section(text, "## The paper's claims, tested")
    for key in "abcdef":
        assert f"| ({key}) " in sec
    # Here sigma and tau rise together, the KL falls: (c) and (d) are supported by both estimators.
    row_d = next(line for line in sec.splitlines() if line.startswith("| (d) The decorrelation"))
    assert "**supported**" in row_d and "Spearman ρ(τ, σ) = 1.00" in row_d
    assert "`sigma_counting` (paper, counting, 4000 steps, pseudo-count 0.5)" in sec
    assert "Rules:" in sec and "at least 5 nemm seeds" in sec


def test_claims_section_says_when_the_verdict_depends_on_the_estimator() -> None:
    models = _models()
    for r in models:
        if r["kind"] == "nemm":
            r["sigma_counting"] = 20.0 - r["seed"]  # the counting estimator orders the seeds the other way
    _, text = _report(models)
    row_d = next(
        line for line in _section(text, "## The paper's claims").splitlines() if line.startswith("| (d)")
    )
    assert "depends on the estimator: `sigma_counting`: contradicted" in row_d


def test_claims_not_testable_with_few_seeds() -> None:
    _, text = _report(_models(n=3))
    sec = _section(text, "## The paper's claims, tested")
    assert sec.count("**not testable here**") == 6


def test_tied_machine_is_not_called_comparable() -> None:
    res, text = _report(_models())
    assert "comparable likelihood" not in text
    tied = next(line for line in text.splitlines() if line.startswith("- **Tied machine**"))
    assert "34.0 nats/digit below the median nemm machine" in tied and "not at equal likelihood" in tied
    assert "35.8 below the EM ceiling" in tied
    assert "Not at equal likelihood: tied (34.0 nats/digit below)" in text
    title = plots.draw_mixing(res["models"], equal_likelihood=2.0).axes[0].get_title()
    assert "comparable" not in title and "not at equal likelihood" in title and "tied -34.0" in title


def test_medians_show_infinities() -> None:
    models = _models()
    for r in models[:3]:
        r["tau"] = math.inf  # three stuck chains out of eight
    res, text = _report(models)
    assert res["summary"]["n_inf"]["tau"] == 3
    assert "Decorrelation time τ: median 9.5 steps" not in text  # the finite median would hide them
    assert "(3 of 8 ∞) steps" in text
    nemm = next(k for k in res["summary"]["kinds"] if k["kind"] == "nemm")
    assert nemm["n_inf"]["tau"] == 3


def test_em_ceiling_states_its_clip_and_binary_loglik_its_chain_noise() -> None:
    models = _models(loglik_err=0.1)
    _, text = _report(models)
    em = next(line for line in text.splitlines() if line.startswith("- **EM mixture**"))
    assert "clipped to [1e-6, 1 − 1e-6]" in em
    assert "`loglik_err`" in text and "median ± 0.1 over 8 of 8 seeds" in text
    assert "| -147.00 ± 0.1 |" in _section(text, "## All models")


def test_compare_normalization_writes_bullets_and_draws_rows_per_variant(tmp_path) -> None:
    variants = ("softmax", "sigmoid")
    models = _models(variants=variants)
    for r in models:
        if r.get("variant") == "sigmoid":
            r["loglik"] -= 1.0
    res, text = _report(models, variants)
    for v in variants:
        assert f"- **Log-likelihood** [{v}]" in text and f"- **Entropy production** [{v}]" in text
        assert f"### Variant {v} (8 seeds)" in text
    seeds = [r for v in res["variants"] for r in v["seeds"]]
    fig2 = plots.draw_fig2(seeds, em_ceiling=-146.2)
    titles = [ax.get_title() for ax in fig2.axes]
    assert "(c) quality against entropy production — softmax" in titles
    assert "(c) quality against entropy production — sigmoid" in titles
    fig4 = plots.draw_fig4(seeds, L=6)
    assert sum(t.endswith("— sigmoid") for t in (ax.get_title() for ax in fig4.axes)) == 3
    # Each variant's points in its own row: the sigmoid row of Fig. 2 (c) holds the sigmoid ln p only.
    ax_c = next(
        ax for ax in fig2.axes if ax.get_title().endswith("— sigmoid") and ax.get_title().startswith("(c)")
    )
    ys = {
        round(float(np.asarray(line.get_ydata())[0]), 2)
        for line in ax_c.get_lines()
        if line.get_marker() == "o"
    }
    assert ys == {round(-148.0 - 0.3 * i, 2) for i in range(8)}
    jobs = rpt.figure_jobs(dict(res, seeds=res["seeds"]), tmp_path)
    assert {j["name"] for j in jobs if j["kind"] == "fig2"} == {"fig2"}
    assert len(next(j for j in jobs if j["kind"] == "fig4")["seeds"]) == 16


def test_axes_name_the_sigma_estimator() -> None:
    seeds = [_machine("nemm", i, sigma_method="annealed importance sampling") for i in range(3)]
    fig2 = plots.draw_fig2(
        seeds, training_sigma="σ_counting (paper, counting, 2 × 500 steps, pseudo-count 0.5)"
    )
    ax_ll, ax_sig, ax_fin = fig2.axes[:3]
    assert ax_sig.get_ylabel().startswith("σ_counting (paper, counting")
    assert ax_fin.get_xlabel() == "final σ (headline, annealed importance sampling)"
    fig4 = plots.draw_fig4(seeds, L=6)
    assert fig4.axes[1].get_xlabel() == "σ (headline, annealed importance sampling) (nats per step)"
    # Records from before the converged estimator: their headline was the Rao-Blackwell sigma.
    old = [_machine("nemm", i) for i in range(3)]
    assert plots.headline_sigma_label(old) == "σ (headline, eq. 21 on the Rao–Blackwell M)"


def test_binary_machine_loglik_carries_its_chain_noise() -> None:
    from nemm import Machine
    from nemm import diagnostics as diag

    X = (np.random.default_rng(2).random((60, 12)) < 0.4).astype(np.uint8)
    m = Machine(
        4, hidden="binary", n_epochs=2, steps_per_epoch=3, batch_size=(8, 8), chain_steps=4, random_state=1
    )
    m.fit(X)
    d = diag.diagnose(m, X, n_steps=400, seed=5, n_chains=4, n_segments=4, rao_blackwell_draws=0)
    ts = diag.transition_statistics(m, 400, n_chains=4, seed=5, n_segments=4)
    # The per-chain occupancies pool to the occupancy that ln p uses.
    np.testing.assert_allclose(ts.pbar_e_chains.mean(axis=0), ts.pbar_e)
    per_chain = [diag.mean_log_likelihood(m, X, p) for p in ts.pbar_e_chains]
    assert d.loglik_err == pytest.approx(np.std(per_chain, ddof=1) / 2.0)
    assert 0.0 < d.loglik_err < 5.0
    onehot = Machine(3, n_epochs=1, steps_per_epoch=2, batch_size=(8, 8), chain_steps=4, random_state=1).fit(
        X
    )
    assert (
        diag.diagnose(onehot, X, n_steps=400, seed=5, n_segments=4, rao_blackwell_draws=0).loglik_err is None
    )


def test_binary_runs_have_no_fig3_jobs(tmp_path) -> None:
    res, _ = _report(_models())
    assert any(j["kind"] == "fig3" for j in rpt.figure_jobs(dict(res, seeds=res["seeds"]), tmp_path)) is False
    for r in res["seeds"]:
        r["model"] = "runs/x/model.npz"
    assert {j["name"] for j in rpt.figure_jobs(res, tmp_path) if j["kind"] == "fig3"} == {
        "fig3_best",
        "fig3_worst",
    }
    binary = dict(res, protocol=dict(res["protocol"], hidden="binary"))
    assert not [j for j in rpt.figure_jobs(binary, tmp_path) if j["kind"] == "fig3"]
