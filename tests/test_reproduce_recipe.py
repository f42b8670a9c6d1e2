"""``nemm reproduce --compare recipe``: the paper's protocol and the auto recipe in one report."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from nemm import reproduce as rp  # noqa: E402
from nemm.config import parse_config  # noqa: E402


def _labelled_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    protos = rng.random((3, 16)) < 0.5
    y = rng.integers(0, 3, 120)
    X = np.array([np.where(rng.random(16) < 0.1, ~protos[k], protos[k]) for k in y], dtype=np.uint8)
    return X, y


def test_the_recipe_axis_leaves_each_recipe_its_own_settings() -> None:
    """Only explicit settings are fixed; the paper's numbers are not written over the auto recipe's."""
    config = parse_config(rp.reproduce_config(quick=True, compare="recipe"))
    assert config.axes == [("recipe", ["paper", "auto"])]
    assert [p["recipe"] for p in config.grid()] == ["paper", "auto"]
    assert all("n_epochs" not in p and "learning_rate" not in p for p in config.grid())
    given = parse_config(rp.reproduce_config(compare="recipe", n_epochs=3, learning_rate=0.05)).grid()
    assert [(p["recipe"], p["n_epochs"], p["learning_rate"]) for p in given] == [
        ("paper", 3, 0.05),
        ("auto", 3, 0.05),
    ]


def test_compare_recipe_runs_both_recipes_in_one_report(tmp_path: Path) -> None:
    X, y = _labelled_data()
    res = rp.reproduce(
        tmp_path,
        seeds=2,
        n_epochs=2,
        n_jobs=1,
        data=(X, y),
        n_hidden=3,
        em_restarts=1,
        rbm_seeds=1,
        tied_seeds=1,
        figures=False,
        progress=False,
        diag_steps=2000,
        track_every=0,
        mixing_steps=500,
        rao_blackwell_draws=50,
        compare="recipe",
    )
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    nemm_rows = [(r["variant"], r["recipe"]) for r in rows if r["kind"] == "nemm"]
    assert sorted(nemm_rows) == [("auto", "auto")] * 2 + [("paper", "paper")] * 2
    # The RBM (one row per sampler) and the mixture do not depend on the machines' recipe: one run each.
    assert sorted(r["sampler"] for r in rows if r["kind"] == "rbm") == ["exact", "gibbs", "pt"]
    assert {r["variant"] for r in rows if r["kind"] in ("rbm", "mixture")} == {"shared"}
    assert [r["kind"] for r in rows].count("mixture") == 1
    assert [v["name"] for v in res["variants"]] == ["paper", "auto"]
    text = (tmp_path / "report.md").read_text()
    assert "| paper |" in text and "| auto |" in text
    # The normalization line names the normalization, not the recipes.
    assert "normalization (eq. 19): softmax;" in text


def test_the_command_line_compares_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    from nemm.cli import main

    assert main(["reproduce", "--quick", "--compare", "recipe", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert 'recipe = ["paper", "auto"]' in text
    assert "n_epochs" not in text
