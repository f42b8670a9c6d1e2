"""``nemm train`` shows the EM ceiling's progress, records the ceiling with the run, and
``--resume`` reuses it instead of fitting it again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nemm.baselines
from nemm import load
from nemm.cli import main


def _train(tmp_path: Path, *extra: str) -> int:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", (rng.random((120, 30)) < 0.3).astype(np.uint8))
    settings = ["--hidden", "3", "--epochs", "2", "--steps-per-epoch", "3", "--batch-size", "8", "16"]
    return main(["train", str(tmp_path / "x.npy"), *settings, "--out", str(tmp_path / "m.npz"), *extra])


def test_ceiling_shows_progress_and_is_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path) == 0
    out, err = capsys.readouterr()
    assert "EM mixture" in err and "3/3" in err  # the bar over the EM runs
    printed = float(out.split("EM ceiling")[1].split(":")[1].split()[0])
    stored = load(tmp_path / "m.npz")._data_source["em_ceiling"]
    assert stored["n_init"] == 3 and round(stored["log_likelihood"], 2) == printed


def test_resume_reuses_the_recorded_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(tmp_path, "--quiet") == 0
    first = capsys.readouterr().out.split("EM ceiling")[1]
    assert "EM mixture" not in capsys.readouterr().err  # --quiet: no bar

    def refit(*args: object, **kwargs: object) -> float:
        raise AssertionError("--resume fitted the EM ceiling again")

    monkeypatch.setattr(nemm.baselines, "fit_em_ceiling", refit)
    assert main(["train", "--resume", str(tmp_path / "m.npz"), "--quiet"]) == 0
    assert capsys.readouterr().out.split("EM ceiling")[1] == first


def test_a_checkpoint_without_a_ceiling_fits_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _train(tmp_path, "--quiet", "--no-ceiling") == 0
    assert "em_ceiling" not in load(tmp_path / "m.npz")._data_source
    calls = []
    fit = nemm.baselines.fit_em_ceiling
    monkeypatch.setattr(nemm.baselines, "fit_em_ceiling", lambda *a, **k: calls.append(1) or fit(*a, **k))
    for _ in range(2):
        assert main(["train", "--resume", str(tmp_path / "m.npz"), "--quiet"]) == 0
    assert calls == [1]
