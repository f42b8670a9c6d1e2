"""nemm.plots: figures drawn on Figure objects, without touching the user's matplotlib state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

mpl = pytest.importorskip("matplotlib")

from nemm import Machine, plots  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _records(n: int = 3) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for s in range(n):
        out.append(
            {
                "seed": s,
                "loglik": -10.0 - s,
                "sigma": 0.5 * s,
                "sigma_err": 0.1,
                "tau": 2.0 + s,
                "tau_err": "nan",
                "self_transition": 0.1,
                "class_kl": 0.2,
                "regime": "intermediate",
                "history": {
                    "epoch": [1, 2],
                    "loglik": [-12.0, -11.0],
                    "diag_epoch": [0.0, 1.0],
                    "sigma": [0.1, "inf"],
                    "loglik_exact": [-12.5, -11.5],
                },
                "occupancy": rng.dirichlet(np.ones(3)).tolist(),
            }
        )
    return out


def _points(ax, marker: str) -> set[tuple[float, float]]:
    """(x, y) of the single-point markers of one shape on ``ax`` (what errorbar and plot(x, y, marker) draw)."""
    out = set()
    for line in ax.get_lines():
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if line.get_marker() == marker and x.size == 1:
            out.add((round(float(x[0]), 9), round(float(y[0]), 9)))
    return out


def _ydata(ax) -> list[list[float]]:
    return [np.asarray(line.get_ydata(), float).tolist() for line in ax.get_lines()]


def _tiny_machine() -> Machine:
    X = (np.random.default_rng(1).random((40, 16)) < 0.5).astype(np.uint8)
    return Machine(3, n_epochs=1, steps_per_epoch=2, batch_size=(4, 8), chain_steps=4, random_state=0).fit(X)


def test_fig2_draws_every_seed_and_the_baselines() -> None:
    runs = _records()
    fig = plots.draw_fig2(runs, em_ceiling=-9.0, baselines=[runs[0]])
    ax_ll, ax_sig, ax_fin = fig.axes[:3]
    # (a) the tracked exact ln p of every seed, and the EM ceiling; (b) the tracked sigma of every seed.
    assert _ydata(ax_ll) == [[-12.5, -11.5]] * 3 + [[-9.0, -9.0]]
    assert _ydata(ax_sig) == [[0.1, np.inf]] * 3
    # (c) one point per seed at (final sigma, final ln p), the baseline as a square.
    assert _points(ax_fin, "o") == {(0.0, -10.0), (0.5, -11.0), (1.0, -12.0)}
    assert _points(ax_fin, "s") == {(0.0, -10.0)}


def test_fig3_draws_the_machine_its_M_and_its_trajectory() -> None:
    m = _tiny_machine()
    occ, M = [0.2, 0.3, 0.5], np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.7, 0.1, 0.2]])
    fig = plots.draw_fig3(m, occupancy=occ, M=M, n_steps=5, seed=0, title="t")
    images = {ax.get_title(): ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()}
    for a in range(3):
        np.testing.assert_array_equal(images[f"z={a}  p̄={occ[a]:.3f}"], m.w_[:, a].reshape(4, 4))
    np.testing.assert_array_equal(images["M(z', z)"], M)
    X, Z = m.sample(5, burn_in=1000, thin=1, n_chains=1, seed=0, return_hidden=True)
    mu = m.mean_images(Z)
    for t in range(5):
        np.testing.assert_allclose(images[f"t={t} z={int(Z[t])}"], mu[t].reshape(4, 4))
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "ā (hidden bias)"][0].patches
    np.testing.assert_allclose([b.get_height() for b in bars], m.abar_)


def test_fig4_draws_every_seed_with_positive_sigma() -> None:
    runs = _records()
    fig = plots.draw_fig4(runs, L=3)
    ax_kl, ax_tau, ax_self = fig.axes
    # Seed 0 has sigma = 0: not on the log axis, and the title says so.
    assert _points(ax_kl, "o") == {(0.5, 0.2), (1.0, 0.2)}
    assert _points(ax_tau, "o") == {(0.5, 3.0), (1.0, 4.0)}
    assert _points(ax_self, "o") == {(0.5, 0.1), (1.0, 0.1)}
    assert [1 / 3, 1 / 3] in _ydata(ax_self)
    assert "1 run(s) with σ ≤ 0" in fig._suptitle.get_text()


def test_figures_leave_the_backend_and_pyplot_alone(tmp_path: Path) -> None:
    import sys

    from matplotlib.image import imread

    backend = mpl.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    runs = _records()
    p2 = plots.fig2(runs, tmp_path / "f2.png", em_ceiling=-9.0, baselines=[runs[0]])
    p4 = plots.fig4(runs, tmp_path / "f4.png", L=3)
    p3 = plots.fig3(_tiny_machine(), tmp_path / "f3.png", seed=0, title="t")
    for p in (p2, p3, p4):
        assert Path(p).read_bytes()[:8] == PNG_MAGIC
        assert imread(p).std() > 0.05, p  # something is drawn: a blank figure is one colour
    assert mpl.get_backend() == backend
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules


def test_image_shape() -> None:
    assert plots.image_shape(784) == (28, 28)
    assert plots.image_shape(10) == (1, 10)


def _kind_records() -> list[dict]:
    inf = float("inf")
    return (
        [{"kind": "nemm", "loglik": -147.0 - i, "tau_int_class": t} for i, t in enumerate([0.4, 1.3, -0.2])]
        + [
            {"kind": "rbm", "loglik": -146.7, "tau_int_class": inf},
            {"kind": "rbm", "loglik": -149.5, "tau_int_class": "inf"},
        ]  # as results.json writes it
        + [
            {"kind": "tied", "loglik": -183.0, "tau_int_class": 12.0},
            {"kind": "mixture", "loglik": -146.2, "tau_int_class": 1.01},
        ]
    )


def test_mixing_figure_draws_one_point_per_model_by_kind(tmp_path: Path) -> None:
    fig = plots.draw_mixing(_kind_records())
    (ax,) = fig.axes
    counts: dict[str, int] = {}
    where: dict[str, set] = {}
    for coll in ax.collections:
        gid = coll.get_gid()
        if gid:
            kind, part = gid.split(":")
            counts[kind] = counts.get(kind, 0) + len(coll.get_offsets())
            where.setdefault(kind, set()).add(part)
    assert counts == {"nemm": 3, "rbm": 2, "tied": 1, "mixture": 1}
    assert where["rbm"] == {"finite", "inf"} and where["nemm"] == {"finite", "low"}
    top = next(c for c in ax.collections if c.get_gid() == "rbm:inf")
    assert np.all(top.get_offsets()[:, 1] == ax.get_ylim()[1])  # infinite tau at the top edge
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("τ = ∞" in t for t in labels) and any("RBM" in t for t in labels)
    path = plots.fig_mixing(_kind_records(), tmp_path / "m.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigma_figure_draws_both_estimators(tmp_path: Path) -> None:
    recs = [
        {
            "kind": "nemm",
            "sigma_rao_blackwell_curve": {"n": [10, 100, 1000], "sigma": [2.0, 1.6, 1.5]},
            "sigma_counting_curve": {"n": [100, 1000, 10000], "sigma": [0.5, 0.9, 1.2]},
        },
        {
            "kind": "rbm",
            "sigma_rao_blackwell_curve": {"n": [10, 1000], "sigma": [0.01, 0.0]},
            "sigma_counting_curve": None,
        },
    ]
    fig = plots.draw_sigma(recs)
    rb, ct = fig.axes
    assert len(rb.get_lines()) == 2 and len(ct.get_lines()) == 1
    np.testing.assert_allclose(rb.get_lines()[0].get_ydata(), [2.0, 1.6, 1.5])
    assert plots.fig_sigma(recs, tmp_path / "s.png").is_file()
