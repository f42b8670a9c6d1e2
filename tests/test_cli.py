"""Every ``nemm`` subcommand, run in this process through ``nemm.cli.main``, checked by its outputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nemm import load
from nemm.cli import build_parser, main


def _toy_data(path: Path, n: int = 90, D: int = 16) -> np.ndarray:
    """Three noisy prototypes, saved as .npy (the labels beside them)."""
    rng = np.random.default_rng(0)
    protos = rng.random((3, D)) < 0.5
    y = rng.integers(0, 3, n)
    X = np.array([np.where(rng.random(D) < 0.1, ~protos[k], protos[k]) for k in y], dtype=np.uint8)
    np.save(path, X)
    np.save(path.with_name("labels.npy"), y)
    return X


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """`nemm train` on toy data: (data path, model path, X)."""
    d = tmp_path_factory.mktemp("cli")
    X = _toy_data(d / "x.npy")
    model = d / "m.npz"
    rc = main(
        [
            "train",
            str(d / "x.npy"),
            "--hidden",
            "3",
            "--epochs",
            "3",
            "--steps-per-epoch",
            "4",
            "--batch-size",
            "8",
            "16",
            "--chain-steps",
            "6",
            "--seed",
            "2",
            "--out",
            str(model),
            "--quiet",
        ]
    )
    assert rc == 0
    return d / "x.npy", model, X


def test_parser_has_every_subcommand() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"train", "sample", "diagnose", "reproduce", "bench", "sweep"}


def test_train_writes_a_model_with_the_given_settings(trained, capsys: pytest.CaptureFixture[str]) -> None:
    data, model, X = trained
    m = load(model)
    assert m.n_hidden == 3 and m.n_epochs == 3 and m.random_state == 2 and m.n_visible_ == X.shape[1]
    assert len(m.history_["loglik"]) == 3
    # Same command, same seed: the same parameters (training is deterministic).
    again = model.with_name("again.npz")
    assert (
        main(
            [
                "train",
                str(data),
                "--hidden",
                "3",
                "--epochs",
                "3",
                "--steps-per-epoch",
                "4",
                "--batch-size",
                "8",
                "16",
                "--chain-steps",
                "6",
                "--seed",
                "2",
                "--out",
                str(again),
                "--quiet",
                "--no-ceiling",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(load(again).w_, m.w_)
    text = capsys.readouterr().out
    assert "model written to" in text and "log-likelihood" in text and "EM ceiling" not in text


def test_sample_writes_binary_rows(trained) -> None:
    _, model, X = trained
    out = model.with_name("s.npy")
    assert (
        main(
            [
                "sample",
                str(model),
                "-n",
                "7",
                "--seed",
                "1",
                "--burn-in",
                "10",
                "--thin",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    S = np.load(out, allow_pickle=False)
    assert S.shape == (7, X.shape[1]) and S.dtype == np.uint8 and set(np.unique(S)) <= {0, 1}
    np.testing.assert_array_equal(S, load(model).sample(7, burn_in=10, thin=2, seed=1))


def test_diagnose_json_and_text(trained, capsys: pytest.CaptureFixture[str]) -> None:
    data, model, _ = trained
    labels = data.with_name("labels.npy")
    assert (
        main(
            [
                "diagnose",
                str(model),
                "--json",
                "--steps",
                "4000",
                "--data",
                str(data),
                "--labels",
                str(labels),
            ]
        )
        == 0
    )
    d = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c))
    assert d["n_states"] == 3 and d["sampling"]["n_steps"] == 4000 and d["sampling"]["seed"] == 0
    assert d["loglik_exact"] < 0 and d["class_kl"]["classes"] == [0, 1, 2]
    assert np.sum(d["occupancy"]) == pytest.approx(1.0)
    # Currents (antisymmetric), the dominant cycle and its affinity, the RB sigma with its error bar.
    J = np.array(d["currents"])
    assert J.shape == (3, 3) and np.allclose(J, -J.T)
    assert isinstance(d["dominant_cycle"], list) and "cycle_affinity" in d and "cycle_current" in d
    assert d["sigma_rao_blackwell_err"] >= 0 and d["sigma_rao_blackwell_curve"]["n"]
    assert main(["diagnose", str(model), "--steps", "4000", "--no-data"]) == 0
    text = capsys.readouterr().out
    assert "entropy production" in text and "regime:" in text and "log-likelihood on" not in text
    # The three estimators, each under its own name.
    assert "entropy production sigma" in text and "sigma_counting" in text and "sigma_rao_blackwell" in text
    assert "Rao-Blackwell" in text and "counting transitions" in text and "one-way pair" in text
    assert "probability currents" in text and "dominant cycle" in text


def test_diagnose_bad_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", str(tmp_path / "missing.npz")]) == 2
    assert "nemm: error:" in capsys.readouterr().err


def test_reproduce_tiny(trained, capsys: pytest.CaptureFixture[str]) -> None:
    data, _, _ = trained
    out = data.parent / "rep"
    assert (
        main(
            [
                "reproduce",
                "--quick",
                "--out",
                str(out),
                "--seeds",
                "2",
                "--epochs",
                "2",
                "--jobs",
                "1",
                "--hidden",
                "3",
                "--data",
                str(data),
                "--labels",
                str(data.with_name("labels.npy")),
                "--em-restarts",
                "1",
                "--rbm-seeds",
                "0",
                "--tied-seeds",
                "0",
                "--no-figures",
                "--diag-steps",
                "2000",
                "--track-every",
                "0",
                "--mixing-steps",
                "500",
                "--normalization",
                "sigmoid",
                "--no-centering",
                "--chains",
                "2",
                "--chain-steps",
                "10",
                "--lr",
                "0.05",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "quick" in text and "Report:" in text and "regimes" in text
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["kind"], int(r["seed"])) for r in rows] == [("nemm", 0), ("nemm", 1), ("mixture", 0)]
    assert all(r["class_kl"] for r in rows[:2]) and all(r["tau_int_class"] for r in rows)
    assert {r["normalization"] for r in rows} == {"sigmoid"} and rows[0]["centered"] == "False"
    res = json.loads((out / "results.json").read_text())
    assert res["protocol"]["n_hidden"] == 3 and res["protocol"]["n_epochs"] == 2
    p = res["protocol"]
    assert (p["normalization"], p["centered"], p["n_chains"], p["chain_steps"], p["learning_rate"]) == (
        "sigmoid",
        False,
        2,
        10,
        0.05,
    )
    assert (out / "report.md").is_file() and not list(out.glob("*.png"))


def test_bench_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--threads", "1", "--json", str(out)]) == 0
    assert "chain.C1.t1" in capsys.readouterr().out
    results = json.loads(out.read_text())["results"]
    assert results["fit_s"]["value"] > 0 and results["chain.C1.t1"]["value"] > 0


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 1
    assert "train" in capsys.readouterr().out


def test_train_binarizes_gray_images_stochastically_and_records_it(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "gray"
    folder.mkdir()
    for i, img in enumerate(np.random.default_rng(1).integers(0, 256, size=(40, 3, 4)).astype(np.uint8)):
        Image.fromarray(img, mode="L").save(folder / f"{i:02d}.png")
    common = ["train", str(folder), "--hidden", "2", "--epochs", "2", "--quiet", "--no-ceiling"]
    for seed in (3, 3, 4):
        out = tmp_path / f"m{seed}.npz"
        assert (
            main([*common, "--binarize", "stochastic", "--binarize-seed", str(seed), "--out", str(out)]) == 0
        )
    a, b, c = (load(tmp_path / f"m{s}.npz") for s in (3, 3, 4))
    assert a._data_source["binarize"] == "stochastic" and a._data_source["binarize_seed"] == 3
    assert a._train_data_sha == b._train_data_sha != c._train_data_sha  # the seed draws the bits
    assert (
        main([*common, "--binarize", "stochastic", "--threshold", "100", "--out", str(tmp_path / "x.npz")])
        == 2
    )
    assert main([*common, "--binarize-seed", "1", "--out", str(tmp_path / "y.npz")]) == 2
