"""Input checked at the door: bad outputs, options and configuration values are refused before any work."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from nemm import sweep
from nemm.cli import main
from nemm.config import MAX_RUNS, ConfigError, parse_config


def _fail_if_called(*args: object, **kwargs: object) -> None:
    raise AssertionError("the work started before the input was checked")


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the data or training fails the test: every check here must fire before."""
    from nemm import cli, datasets

    monkeypatch.setattr(sweep, "load_data", _fail_if_called)
    monkeypatch.setattr(datasets, "load_digits", _fail_if_called)
    monkeypatch.setattr(datasets, "load_binary", _fail_if_called)
    monkeypatch.setattr(cli, "_load_training_data", _fail_if_called)


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    t0 = time.monotonic()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("nemm") and len(err.strip().splitlines()) == 1, (rc, err)
    assert time.monotonic() - t0 < 10
    return err


# --------------------------------------------------------------------------- outputs


def test_sweep_into_an_existing_file_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[train]\nn_epochs = 1\n")
    target = tmp_path / "results"
    target.write_text("not a directory")
    err = _one_line_error(capsys, ["sweep", str(cfg), "--out", str(target)])
    assert f"--out {target} exists and is not a directory" in err


def test_run_sweep_into_an_existing_file_is_refused_before_reading_data(
    tmp_path: Path, no_work: None
) -> None:
    target = tmp_path / "f"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a directory"):
        sweep.run_sweep(parse_config(""), target, progress=False)


def test_train_into_proc_names_the_users_path_before_training(
    capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    err = _one_line_error(capsys, ["train", "--out", "/proc/m.npz", "--quiet"])
    assert "--out /proc/m.npz" in err and ".tmp" not in err


# --------------------------------------------------------------------------- options


def test_divergence_on_the_command_line_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.npy"
    np.save(data, (np.random.default_rng(0).random((40, 12)) < 0.5).astype(np.uint8))
    argv = ["train", str(data), "--lr", "1.7e308", "--epochs", "2", "--steps-per-epoch", "3"]
    err = _one_line_error(capsys, [*argv, "--out", str(tmp_path / "m.npz"), "--quiet", "--no-ceiling"])
    assert err.startswith("nemm: error: training diverged") and "learning_rate" in err


@pytest.mark.parametrize("value", ["300", "-5", "nan", "inf", "255", "gray"])
def test_a_threshold_outside_the_gray_levels_is_refused(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    err = _one_line_error(capsys, ["train", "--threshold", value, "--out", str(tmp_path / "m.npz")])
    assert "--threshold" in err


@pytest.mark.parametrize(
    ("flag", "value"), [("--diag-steps", "0"), ("--diag-steps", "39"), ("--track-steps", "3")]
)
def test_reproduce_chains_too_short_for_error_bars_are_refused(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    err = _one_line_error(capsys, ["reproduce", flag, value, "--out", str(tmp_path / "r"), "--quiet"])
    assert f"{flag} must be at least" in err and not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- configuration values


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[diagnostics]\nchain_steps = 5\n", "[diagnostics] chain_steps: is now called diagnostic_steps"),
        ("[diagnostics]\npseudocount = inf\n", "[diagnostics] pseudocount"),
        ("[diagnostics]\npseudocount = nan\n", "[diagnostics] pseudocount"),
        ("[diagnostics]\ndiagnostic_steps = 5\n", "[diagnostics] diagnostic_steps: must be at least 20"),
        ("[diagnostics]\ndiagnostic_steps = 19\n", "[diagnostics] diagnostic_steps: must be at least 20"),
        (
            '[diagnostics]\nreport = "reproduce"\ntrack_steps = 3\n',
            "[diagnostics] track_steps: must be at least 4",
        ),
        ("[data]\nthreshold = nan\n", "[data] threshold"),
        ("[data]\nthreshold = 300\n", "[data] threshold"),
        ("[data]\nthreshold = -5\n", "[data] threshold"),
        ("[data]\nthreshold = inf\n", "[data] threshold"),
        ("[sweep]\nmax_runs = 0\n", "[sweep] max_runs"),
    ],
)
def test_every_value_is_checked_when_the_file_is_read(text: str, key: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    from nemm.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ") and key in str(info.value)


def test_a_config_refused_on_the_command_line_starts_no_download(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nthreshold = nan\n")
    err = _one_line_error(capsys, ["sweep", str(cfg), "--out", str(tmp_path / "o")])
    assert f"{cfg}: [data] threshold" in err


# --------------------------------------------------------------------------- the grid's size


@pytest.mark.parametrize(
    "text",
    [
        "[sweep]\nseeds = 1000000000\n",
        "[model]\nn_hidden = [{a}]\n[train]\nsteps_per_epoch = [{b}]\n",
        '[diagnostics]\nreport = "reproduce"\n[baselines]\nrbm_seeds = 1000000000\n',
    ],
)
def test_a_grid_beyond_the_limit_is_refused_before_it_is_expanded(text: str) -> None:
    text = text.format(a=", ".join(map(str, range(1, 1001))), b=", ".join(map(str, range(1, 1001))))
    t0 = time.monotonic()
    with pytest.raises(
        ConfigError,
        match=r"more than the limit of 100,000; if that is meant, raise it with \[sweep\] max_runs",
    ):
        parse_config(text, source="big.toml")
    assert time.monotonic() - t0 < 5  # a 10^6-point grid took 39 s and 1.35 GB to expand
    assert MAX_RUNS == 100_000


def test_max_runs_sets_the_limit() -> None:
    with pytest.raises(ConfigError, match=r"\[sweep\] seeds: the configuration asks for 3 runs"):
        parse_config("[sweep]\nseeds = 3\nmax_runs = 2\n")
    with pytest.raises(ConfigError, match=r"asks for 4 runs, more than the limit of 3"):
        parse_config("[model]\nn_hidden = [2, 3]\n[sweep]\nseeds = 2\nmax_runs = 3\n")
    assert parse_config("[model]\nn_hidden = [2, 3]\n[sweep]\nseeds = 2\nmax_runs = 4\n").n_runs == 4
