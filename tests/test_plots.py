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
