"""The time that ``nemm reproduce`` prints ("done in X s") and writes in report.md includes the figures."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nemm.reproduce as rp
from nemm.reproduce import report


def test_reproduce_time_includes_the_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def slow_figures(*args: Any, **kwargs: Any) -> dict[str, str]:
        time.sleep(1.0)  # the figures take seconds: they must show in the time
        return {}

    monkeypatch.setattr(report, "draw_figures", slow_figures)
    rng = np.random.default_rng(0)
    X = (rng.random((60, 12)) < 0.3).astype(np.uint8)
    res = rp.reproduce(
        tmp_path, seeds=[0], n_epochs=2, n_jobs=1, data=X, n_hidden=3, em_restarts=0, rbm_seeds=0,
        tied_seeds=0, diag_steps=1000, track_every=0, rao_blackwell_draws=20, mixing_steps=200,
    )  # fmt: skip
    assert res["figure_seconds"] >= 1.0 and res["seconds"] >= res["figure_seconds"]
    done = re.search(r"done in ([\d.]+) s \(([\d.]+) s of it the figures\)", capsys.readouterr().out)
    assert done is not None and float(done.group(1)) >= float(done.group(2)) >= 1.0
    written = re.search(
        r"([\d.]+) s on 1 process\(es\), ([\d.]+) s of it the figures", (tmp_path / "report.md").read_text()
    )
    assert written is not None and float(written.group(1)) >= float(written.group(2)) >= 1.0
