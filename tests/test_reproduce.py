"""End-to-end tests of ``nemm.reproduce`` (driver, report, regimes); the command line is in test_cli.py."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from nemm import reproduce as rp  # noqa: E402
from nemm.results import as_float  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EXPECTED_COLUMNS = {
    "kind",
    "variant",
    "seed",
    "normalization",
    "hidden",
    "n_hidden",
    "centered",
    "loglik",
    "loglik_on_the_fly",
    "em_ceiling",
    "gap_to_em",
    "tau_int_class",
    "tau_int_class_envelope",
    "cover_time",
    "class_kl_samples",
    "sigma",
    "sigma_err",
    "sigma_counting",
    "n_one_way",
    "counting_steps",
    "tau",
    "tau_err",
    "self_transition",
    "class_kl",
    "cycle_affinity",
    "regime",
    "occupancy",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A shortened quick run: 2 seeds x 5 epochs in 2 worker processes, with every output."""
    out = tmp_path_factory.mktemp("reproduce")
    res = rp.reproduce(
        out,
        quick=True,
        seeds=2,
        n_epochs=5,
        n_jobs=2,
        em_restarts=1,
        track_every=2,
        track_steps=2000,
        diag_steps=20_000,
        progress=False,
        mixing_steps=3000,
    )
    return out, res


def test_reproduce_writes_every_output(quick_run: tuple[Path, dict]) -> None:
    out, res = quick_run
    for name in (
        "results.csv",
        "results.json",
        "fig2.png",
        "fig3_best.png",
        "fig3_worst.png",
        "fig4.png",
        "fig5_mixing.png",
        "fig6_sigma.png",
        "report.md",
    ):
        assert (out / name).is_file(), name
    for name in (
        "fig2.png",
        "fig3_best.png",
        "fig3_worst.png",
        "fig4.png",
        "fig5_mixing.png",
        "fig6_sigma.png",
    ):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, (
            name
        )  # what they show: test_figures_show_the_records
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*.png"))  # atomic writes leave nothing behind
    # A sweep directory: every model under runs/<run id>/ (the mixture has no model file), named by the table.
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    saved = {r["model"] for r in rows if r["model"]}
    assert (
        saved == {f"runs/{r['run_id']}/model.npz" for r in rows if r["kind"] != "mixture"} and len(saved) == 4
    )
    assert all((out / m).is_file() for m in saved)


def _points(ax: Any, marker: str = "o") -> set[tuple[float, float]]:
    """(x, y) of the single-point markers of one shape on ``ax`` (what errorbar draws)."""
    out = set()
    for line in ax.get_lines():
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if line.get_marker() == marker and x.size == 1:
            out.add((round(float(x[0]), 9), round(float(y[0]), 9)))
    return out


def _check_figure(kind: str, fig: Any, job: dict) -> None:
    """What each figure must show of the records it was drawn from."""
    if kind == "fig2":  # (c): one point per seed at (final sigma, final ln p)
        want = {(round(as_float(r["sigma"]), 9), round(as_float(r["loglik"]), 9)) for r in job["seeds"]}
        assert _points(fig.axes[2]) == want
    elif kind == "fig4":  # (a): class KL against sigma of the seeds with sigma > 0 (a log axis)
        want = {
            (round(as_float(r["sigma"]), 9), round(as_float(r["class_kl"]), 9))
            for r in job["seeds"]
            if as_float(r["sigma"]) > 0
        }
        assert want and _points(fig.axes[0]) == want
    elif kind == "fig3":  # row 1: the columns of the saved model's forward weights
        from nemm import load

        w = load(job["model"]).w_
        shown = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_title().startswith("z=")]
        assert len(shown) == w.shape[1]
        for a, img in enumerate(shown):
            np.testing.assert_array_equal(img, w[:, a].reshape(28, 28))
    elif kind == "fig5":  # one point per model, by kind
        counts: dict[str, int] = {}
        for coll in fig.axes[0].collections:
            if coll.get_gid():
                k = coll.get_gid().split(":")[0]
                counts[k] = counts.get(k, 0) + len(coll.get_offsets())
        want_counts: dict[str, int] = {}
        for r in job["models"]:
            want_counts[r["kind"]] = want_counts.get(r["kind"], 0) + 1
        assert counts == want_counts
    else:  # fig6: every model's Rao-Blackwell sigma curve
        curves = [r["sigma_rao_blackwell_curve"] for r in job["models"]]
        got = [np.asarray(line.get_ydata(), float) for line in fig.axes[0].get_lines()]
        assert len(got) == len(curves) == 4
        for g, c in zip(got, curves):
            np.testing.assert_allclose(g, [as_float(v) for v in c["sigma"]])


def test_figures_show_the_records(quick_run: tuple[Path, dict], tmp_path: Path) -> None:
    """Every PNG is the figure of its records (pixel for pixel), and that figure shows them."""
    from matplotlib.image import imread

    from nemm.plots import save_png
    from nemm.reproduce import report

    out, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    jobs = report.figure_jobs(res, out)
    assert sorted(j["name"] for j in jobs) == ["fig2", "fig3_best", "fig3_worst", "fig4", "fig5", "fig6"]
    for job in jobs:
        fig = report.figure_of(job)
        _check_figure(job["kind"], fig, job)
        redrawn = save_png(fig, tmp_path / f"{job['name']}.png")
        np.testing.assert_array_equal(imread(redrawn), imread(job["path"]), err_msg=job["name"])


def test_results_csv_and_json(quick_run: tuple[Path, dict]) -> None:
    out, res = quick_run
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert EXPECTED_COLUMNS <= set(rows[0])
    # One row per model, the four kinds in report order, and the RBM once per sampler.
    assert [r["kind"] for r in rows] == ["nemm", "nemm", "rbm", "rbm", "rbm", "tied", "mixture"]
    assert [int(r["seed"]) for r in rows] == [0, 1, 0, 0, 0, 0, 0]
    assert [r["sampler"] for r in rows] == ["chain", "chain", "gibbs", "pt", "exact", "chain", "iid"]
    costs = [float(r["sample_cost"]) for r in rows]
    assert costs[:4] == [1.0, 1.0, 1.0, 16.0] and costs[5:] == [1.0, 0.5]
    assert costs[4] == pytest.approx(0.5 + 0.5 * 6 / 3000)  # a half sweep, and p(h) of 6 states once
    # The RBM is trained once: its three rows share the model and its ln p, not the mixing measures.
    rbm = rows[2:5]
    assert len({(r["model"], r["loglik"], r["sigma"]) for r in rbm}) == 1
    assert len({r["tau_int_class"] for r in rbm}) == 3
    # Exact i.i.d. draws: tau_int_class about 1, like the mixture's.
    assert abs(float(rbm[2]["tau_int_class"]) - 1.0) < 0.25
    for r in rows:
        assert math.isfinite(float(r["loglik"])) and float(r["loglik"]) < 0
        assert r["normalization"] == "softmax" and r["hidden"] == "onehot" and r["n_hidden"] == "6"
        # Every kind has its mixing measured on its own chain (or draws).
        tau = float(r["tau_int_class"])
        assert not math.isnan(tau)
        assert float(r["cover_time"]) >= 3
        if r["kind"] == "mixture":
            assert r["sigma"] in ("", "nan") and r["regime"] in ("", "–")
            continue
        assert float(r["sigma"]) >= 0 and float(r["sigma_err"]) >= 0
        assert float(r["sigma_counting"]) >= 0 and int(r["n_one_way"]) >= 0
        occ = [float(v) for v in r["occupancy"].split()]
        assert len(occ) == 6 and sum(occ) == pytest.approx(1.0, abs=1e-4)
        assert r["regime"] in rp.REGIMES
        assert float(r["em_ceiling"]) == pytest.approx(res["baselines"]["em"]["loglik"])

    data = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert (
        len(data["seeds"]) == 2 and len(data["baselines"]["rbm"]) == 1 and len(data["baselines"]["tied"]) == 1
    )
    assert [m["kind"] for m in data["models"]] == ["nemm", "nemm", "rbm", "tied", "mixture"]
    (rbm_rec,) = data["baselines"]["rbm"]
    assert [m["sampler"] for m in rbm_rec["samplers"]] == ["gibbs", "pt", "exact"]
    pt = rbm_rec["samplers"][1]
    assert len(pt["pt_swap_rates"]) == 15 and all(0 <= r <= 1 for r in pt["pt_swap_rates"])
    assert pt["pt_betas"][0] == 1.0 and pt["pt_betas"][-1] == pytest.approx(0.2)
    assert data["baselines"]["em"]["n_init"] == 1
    em = data["baselines"]["em"]["loglik"]
    assert -170 < em < -140
    s = data["summary"]
    assert set(s["regimes"]) == set(rp.REGIMES)
    assert sum(v["count"] for v in s["regimes"].values()) == 2
    assert s["gap_to_em_median"] == pytest.approx(s["loglik_median"] - em)
    seed0 = data["seeds"][0]
    assert {"diag_epoch", "sigma_counting", "loglik_exact", "loglik"} <= set(seed0["history"])
    assert seed0["history"]["diag_epoch"] == [0.0, 1.0, 3.0, 4.0]
    assert len(seed0["history"]["loglik"]) == 5


def test_equilibrium_models_are_near_equilibrium(quick_run: tuple[Path, dict]) -> None:
    _, res = quick_run
    (rbm,) = res["baselines"]["rbm"]
    (tied,) = res["baselines"]["tied"]
    assert rbm["kind"] == "rbm" and not rbm["tied"] and tied["kind"] == "tied" and tied["tied"]
    for r in (rbm, tied):
        # Detailed balance: zero entropy production (the headline estimator) within its error bar and bias.
        assert r["sigma"] <= 3 * r["sigma_err"] + 1e-3
        assert r["regime"] == "near-equilibrium"
        assert r["sigma_rao_blackwell_curve"]["n"][-1] == r["rao_blackwell_draws"]


def test_kind_summary_compares_the_kinds(quick_run: tuple[Path, dict]) -> None:
    _, res = quick_run
    kinds = {k["kind"]: k for k in res["summary"]["kinds"]}
    assert set(kinds) == {"nemm", "rbm", "tied", "mixture"}
    assert kinds["nemm"]["n"] == 2 and kinds["mixture"]["n"] == 1
    # i.i.d. ancestral draws: about 1 (the ideal mixer), on 3000 draws.
    assert abs(kinds["mixture"]["tau_int_class_median"] - 1.0) < 0.25


def test_report_compares_mixing_per_unit_of_work(quick_run: tuple[Path, dict]) -> None:
    """The sampler table: every kind and sampler once, with tau_int_class x cost from the rows."""
    out, _ = quick_run
    text = (out / "report.md").read_text()
    assert "### Mixing per unit of work" in text
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    table = [line for line in text.splitlines() if line.startswith("| ") and line.count("|") == 10]
    shown = {tuple(c.strip() for c in line.split("|")[1:3]) for line in table[1:]}
    assert shown == {(r["kind"], r["sampler"]) for r in rows}
    exact = next(line for line in table if line.startswith("| rbm | exact |"))
    r = next(r for r in rows if r["sampler"] == "exact")
    work = float(r["tau_int_class"]) * float(r["sample_cost"])
    assert exact.split("|")[7].strip() == format(work, ".3g")


def test_report_states_regimes_and_baselines(quick_run: tuple[Path, dict]) -> None:
    out, res = quick_run
    text = (out / "report.md").read_text()
    for word in (
        "near-equilibrium",
        "intermediate",
        "cycling",
        "EM mixture",
        "Equilibrium RBM",
        "Tied machine",
        "median",
        "τ_int,class",
        "envelope",
        "Rao–Blackwell",
        "one-way",
        "affinity",
    ):
        assert word in text, word
    assert "RBM baseline" not in text  # the tied machine is never called that
    for fig in (
        "fig2.png",
        "fig3_best.png",
        "fig3_worst.png",
        "fig4.png",
        "fig5_mixing.png",
        "fig6_sigma.png",
    ):
        assert f"]({fig})" in text
    for rule in rp.regime_rules(6).values():
        assert rule in text


def test_report_is_rebuilt_from_the_results_table_alone(quick_run: tuple[Path, dict], tmp_path: Path) -> None:
    """report.md, results.csv and the figures come back from results.json, without any training."""
    import shutil

    out, res = quick_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for name in ("report.md", "results.csv", "fig2.png", "fig4.png"):
        (copy / name).unlink()
    files = rp.rebuild_report(copy)
    assert (copy / "report.md").read_text() == (out / "report.md").read_text()
    assert (copy / "results.csv").read_text() == (out / "results.csv").read_text()
    for fig in ("fig2", "fig3_best", "fig3_worst", "fig4", "fig5", "fig6"):
        assert Path(files[fig]).read_bytes()[:8] == PNG_MAGIC


def test_classify_regime_thresholds() -> None:
    L = 6
    assert rp.classify_regime(0.1, 0.01, 3.0, 0.5, L) == "near-equilibrium"
    assert rp.classify_regime(2.0, 1.0, 3.0, 0.5, L) == "near-equilibrium"  # within 3 error bars of 0
    assert rp.classify_regime(5.0, 0.05, 10.0, 0.01, L) == "cycling"
    assert rp.classify_regime(5.0, 0.05, math.inf, 0.0, L) == "cycling"
    assert rp.classify_regime(5.0, 0.05, 3.0, 0.01, L) == "intermediate"  # loses its phase quickly
    assert rp.classify_regime(5.0, 0.05, 10.0, 0.3, L) == "intermediate"  # lingers in its states
    assert rp.classify_regime(0.7, 0.05, 10.0, 0.0, L) == "intermediate"  # weakly irreversible


def test_reproduce_with_user_data(tmp_path: Path) -> None:
    """Small user data (D = 16, no labels): in-process, no figures, no baselines."""
    rng = np.random.default_rng(0)
    protos = rng.random((3, 16)) < 0.5
    X = np.array(
        [np.where(rng.random(16) < 0.1, ~protos[k], protos[k]) for k in rng.integers(0, 3, 90)],
        dtype=np.uint8,
    )
    res = rp.reproduce(
        tmp_path,
        seeds=[3],
        n_epochs=2,
        n_jobs=1,
        data=X,
        n_hidden=3,
        em_restarts=0,
        rbm_seeds=0,
        tied_seeds=0,
        figures=False,
        progress=False,
        diag_steps=2000,
        track_every=1,
        track_steps=500,
        rao_blackwell_draws=50,
    )
    (r,) = res["seeds"]
    assert r["seed"] == 3 and r["class_kl"] is None and len(r["occupancy"]) == 3
    assert math.isnan(as_float(r["tau_int_class"]))  # no labels, no classes
    assert res["baselines"]["em"] is None
    assert "user data" in (tmp_path / "report.md").read_text()


def test_reproduce_without_matplotlib_still_writes_tables_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    rng = np.random.default_rng(0)
    X = (rng.random((60, 16)) < 0.3).astype(np.uint8)
    res = rp.reproduce(
        tmp_path,
        seeds=[1],
        n_epochs=2,
        n_jobs=1,
        data=X,
        n_hidden=3,
        em_restarts=0,
        rbm_seeds=0,
        tied_seeds=0,
        progress=False,
        diag_steps=2000,
        track_steps=500,
        rao_blackwell_draws=50,
    )
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
    for name in ("results.csv", "results.json", "report.md"):
        assert (tmp_path / name).stat().st_size > 100
    assert "## Figures" not in (tmp_path / "report.md").read_text()
    assert res["files"].get("fig2") is None


def test_compare_normalization_runs_both_variants(tmp_path: Path, tiny_compare: Any) -> None:
    """Small labelled data, in-process: every variant's machines get rows; the RBM and mixture run once."""
    res = tiny_compare(tmp_path, "normalization")
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pairs = [(r["kind"], r["variant"], r["normalization"]) for r in rows]
    for norm in ("softmax", "sigmoid"):
        assert pairs.count(("nemm", norm, norm)) == 2
    # The RBM, the tied machine (always the softmax kernel) and the mixture do not depend on eq. 19: once each.
    assert [p for p in pairs if p[0] != "nemm"] == [
        ("rbm", "shared", "softmax"),
        ("rbm", "shared", "softmax"),
        ("rbm", "shared", "softmax"),
        ("tied", "shared", "softmax"),
        ("mixture", "shared", "softmax"),
    ]
    assert [v["name"] for v in res["variants"]] == ["softmax", "sigmoid"]
    # The comparison of kinds covers both variants; each variant has its own regime counts.
    kinds = {(k["kind"], k["variant"]): k["n"] for k in res["summary"]["kinds"]}
    assert kinds == {
        ("nemm", "sigmoid"): 2,
        ("nemm", "softmax"): 2,
        ("rbm", "shared"): 1,
        ("tied", "shared"): 1,
        ("mixture", "shared"): 1,
    }
    for v in res["variants"]:
        assert sum(c["count"] for c in v["summary"]["regimes"].values()) == 2
    text = (tmp_path / "report.md").read_text()
    assert "| softmax |" in text and "| sigmoid |" in text
    with pytest.raises(ValueError, match="compare must be one of"):
        tiny_compare(tmp_path / "x", "lr")


TINY_FLAGS = [
    "--seeds",
    "2",
    "--epochs",
    "2",
    "--hidden",
    "3",
    "--diag-steps",
    "2000",
    "--mixing-steps",
    "400",
    "--track-every",
    "1",
    "--track-steps",
    "300",
    "--em-restarts",
    "1",
    "--rbm-seeds",
    "1",
    "--tied-seeds",
    "1",
    "--compare",
    "normalization",
    "--no-figures",
    "--quiet",
]


def test_reproduce_equals_its_printed_config_run_through_nemm_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nemm reproduce --print-config` run by `nemm sweep` gives the reproduction's table, to the byte."""
    from nemm.cli import main
    from nemm.config import load_config

    assert main(["reproduce", *TINY_FLAGS, "--print-config"]) == 0
    cfg_path = tmp_path / "r.toml"
    cfg_path.write_text(capsys.readouterr().out)
    cfg = load_config(cfg_path)
    assert cfg.diagnostics.report == "reproduce" and cfg.axes == [("normalization", ["softmax", "sigmoid"])]
    assert (
        cfg.baselines.rbm_seeds == (0,)
        and cfg.baselines.tied_seeds == (0,)
        and cfg.baselines.mixture_restarts == 1
    )
    assert (
        cfg.diagnostics.diagnostic_steps == 1000
        and cfg.diagnostics.n_chains == 2
        and cfg.diagnostics.track_every == 1
    )
    # reproduce in this process, the sweep on 2 worker processes.
    assert main(["reproduce", *TINY_FLAGS, "--jobs", "1", "--out", str(tmp_path / "rep")]) == 0
    assert main(["sweep", str(cfg_path), "--out", str(tmp_path / "swp"), "--workers", "2", "--quiet"]) == 0
    capsys.readouterr()
    rep = (tmp_path / "rep" / "results.csv").read_text()
    swp = (tmp_path / "swp" / "results.csv").read_text()
    with open(tmp_path / "rep" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["kind"], r["variant"]) for r in rows] == [("nemm", "softmax")] * 2 + [
        ("nemm", "sigmoid")
    ] * 2 + [("rbm", "shared")] * 3 + [("tied", "shared"), ("mixture", "shared")]
    assert all(math.isfinite(float(r["loglik"])) and r["status"] == "ok" for r in rows)
    # seven different models, not one copied (the RBM has a row per sampler)
    assert len({r["loglik"] for r in rows}) == len({r["run_id"] for r in rows}) == 7
    assert swp == rep
    # The sweep writes the reproduction's report, from the same code.
    assert (tmp_path / "swp" / "report.md").read_text().startswith("# nemm reproduction")
    assert json.loads((tmp_path / "swp" / "results.json").read_text())["protocol"]["variants"] == [
        "softmax",
        "sigmoid",
    ]
    # ... and is resumable like every sweep: a second run trains nothing and rewrites nothing.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "swp").rglob("*") if p.is_file()}
    assert main(["sweep", str(cfg_path), "--out", str(tmp_path / "swp"), "--workers", "2", "--quiet"]) == 0
    assert "(7 already done, 0 run now)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "swp").rglob("*") if p.is_file()} == before


def test_reproduce_keys_need_the_reproduce_report() -> None:
    from nemm.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=r"\[baselines\] rbm_seeds.*report = \"reproduce\""):
        parse_config("[baselines]\nrbm_seeds = 2\n")
    with pytest.raises(ConfigError, match=r"\[diagnostics\] rao_blackwell_draws"):
        parse_config("[diagnostics]\nrao_blackwell_draws = 10\n")
    with pytest.raises(ConfigError, match=r"\[diagnostics\] report"):
        parse_config("[diagnostics]\nreport = 'paper'\n")
    cfg = parse_config(
        "[diagnostics]\nreport = 'reproduce'\n[baselines]\nrbm_seeds = [3, 5]\nmixture_restarts = 0\n"
    )
    assert cfg.baselines.rbm_seeds == (3, 5) and cfg.baselines.mixture_restarts == 0


def test_a_failing_run_of_a_reproduce_sweep_is_reported_and_the_others_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nemm import sweep
    from nemm.config import parse_config
    from nemm.reproduce import records

    real = records.run_record

    def flaky(kind: str, settings: dict, *args: object, **kw: object) -> object:
        if kind == "nemm" and settings["random_state"] == 1:
            raise FloatingPointError("diverged (injected)")
        return real(kind, settings, *args, **kw)

    monkeypatch.setattr(records, "run_record", flaky)
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 60)
    X = (rng.random((60, 12)) < np.where(y[:, None] == np.arange(12) % 3, 0.8, 0.2)).astype(np.uint8)
    text = rp.reproduce_config(
        seeds=2,
        n_epochs=2,
        n_hidden=3,
        diag_steps=1000,
        track_every=0,
        em_restarts=1,
        rbm_seeds=0,
        tied_seeds=1,
        mixing_steps=300,
        rao_blackwell_draws=20,
    )
    res = sweep.run_sweep(parse_config(text), tmp_path, workers=0, progress=False, data=(X, y), figures=False)
    assert [r["status"] for r in res.rows] == ["ok", "error", "ok", "ok"] and res.n_errors == 1
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["kind"], r["seed"], r["status"]) for r in rows] == [
        ("nemm", "0", "ok"),
        ("nemm", "1", "error"),
        ("tied", "0", "ok"),
        ("mixture", "0", "ok"),
    ]
    assert rows[1]["error"] == "FloatingPointError: diverged (injected)" and rows[1]["loglik"] == ""
    assert float(rows[0]["em_ceiling"]) == float(rows[3]["loglik"])
    report = (tmp_path / "report.md").read_text()
    assert "## Failed runs" in report and "diverged (injected)" in report
