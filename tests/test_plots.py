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
        out.append({"seed": s, "loglik": -10.0 - s, "sigma": 0.5 * s, "sigma_err": 0.1, "tau": 2.0 + s,
                    "tau_err": "nan", "self_transition": 0.1, "class_kl": 0.2, "regime": "intermediate",
                    "history": {"epoch": [1, 2], "loglik": [-12.0, -11.0], "diag_epoch": [0.0, 1.0],
                                "sigma": [0.1, "inf"], "loglik_exact": [-12.5, -11.5]},
                    "occupancy": rng.dirichlet(np.ones(3)).tolist()})
    return out


def test_figures_leave_the_backend_and_pyplot_alone(tmp_path: Path) -> None:
    import sys

    backend = mpl.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    runs = _records()
    p2 = plots.fig2(runs, tmp_path / "f2.png", em_ceiling=-9.0, baselines=[runs[0]])
    p4 = plots.fig4(runs, tmp_path / "f4.png", L=3)
    rng = np.random.default_rng(1)
    X = (rng.random((40, 16)) < 0.5).astype(np.uint8)
    m = Machine(3, n_epochs=1, steps_per_epoch=2, batch_size=(4, 8), chain_steps=4, random_state=0).fit(X)
    p3 = plots.fig3(m, tmp_path / "f3.png", seed=0, title="t")
    for p in (p2, p3, p4):
        assert Path(p).read_bytes()[:8] == PNG_MAGIC and Path(p).stat().st_size > 5000
    assert mpl.get_backend() == backend
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules


def test_image_shape() -> None:
    assert plots.image_shape(784) == (28, 28)
    assert plots.image_shape(10) == (1, 10)


def _kind_records() -> list[dict]:
    inf = float("inf")
    return ([{"kind": "nemm", "loglik": -147.0 - i, "tau_int_class": t} for i, t in enumerate([0.4, 1.3, -0.2])]
            + [{"kind": "rbm", "loglik": -146.7, "tau_int_class": inf},
               {"kind": "rbm", "loglik": -149.5, "tau_int_class": "inf"}]  # as results.json writes it
            + [{"kind": "tied", "loglik": -183.0, "tau_int_class": 12.0},
               {"kind": "mixture", "loglik": -146.2, "tau_int_class": 1.01}])


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
    recs = [{"kind": "nemm", "sigma_rao_blackwell_curve": {"n": [10, 100, 1000], "sigma": [2.0, 1.6, 1.5]},
             "sigma_counting_curve": {"n": [100, 1000, 10000], "sigma": [0.5, 0.9, 1.2]}},
            {"kind": "rbm", "sigma_rao_blackwell_curve": {"n": [10, 1000], "sigma": [0.01, 0.0]},
             "sigma_counting_curve": None}]
    fig = plots.draw_sigma(recs)
    rb, ct = fig.axes
    assert len(rb.get_lines()) == 2 and len(ct.get_lines()) == 1
    np.testing.assert_allclose(rb.get_lines()[0].get_ydata(), [2.0, 1.6, 1.5])
    assert plots.fig_sigma(recs, tmp_path / "s.png").is_file()
