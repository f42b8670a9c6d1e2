"""``nemm reproduce --compare recipe``: the paper's protocol and the auto recipe in one report."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from nemm import reproduce as rp  # noqa: E402
from nemm.config import parse_config  # noqa: E402


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


def test_compare_recipe_runs_both_recipes_in_one_report(tmp_path: Path, tiny_compare: Any) -> None:
    res = tiny_compare(tmp_path, "recipe")
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
