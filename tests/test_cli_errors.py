"""Bad input on the command line: one line ``nemm: error: ...``, a non-zero exit, never a traceback.

Each test runs ``nemm.cli.main`` in this process and reads stderr; the output checks come
before any work (no training, no download, no sampling) wherever the issue asks for it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import nemm
from nemm.cli import main

FAST = [
    "--epochs",
    "2",
    "--steps-per-epoch",
    "2",
    "--batch-size",
    "8",
    "8",
    "--chain-steps",
    "4",
    "--quiet",
    "--no-ceiling",
]


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``nemm argv``; check the exit status and that stderr is one line without a traceback."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli_errors") / "x.npy"
    np.save(path, (np.random.default_rng(0).random((40, 12)) < 0.5).astype(np.uint8))
    return path


@pytest.fixture(scope="module")
def model(data: Path) -> Path:
    out = data.with_name("m.npz")
    assert main(["train", str(data), "--hidden", "3", *FAST, "--out", str(out)]) == 0
    return out


@pytest.fixture()
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any training fail the test loudly (AssertionError is not a user error, so main lets it out)."""

    def fit(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError("training started before the output path was checked")

    monkeypatch.setattr(nemm.Machine, "fit", fit)


# ----------------------------------------------------------------------------- train --out


def test_train_out_directory_fails_before_training(
    data: Path, tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(capsys, ["train", str(data), *FAST, "--out", str(tmp_path)])
    assert "is a directory" in line and str(tmp_path) in line
    (tmp_path / "m.npz").mkdir()  # the file Machine.save would write is a directory
    line = _one_line_error(capsys, ["train", str(data), *FAST, "--out", str(tmp_path / "m")])
    assert "directory" in line and "m.npz" in line


def test_train_out_under_a_file_fails_before_training(
    data: Path, tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    line = _one_line_error(capsys, ["train", str(data), *FAST, "--out", str(tmp_path / "afile" / "m.npz")])
    assert "not a directory" in line and "afile" in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_train_out_fifo_fails_before_training(
    data: Path, tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "pipe.npz")
    line = _one_line_error(capsys, ["train", str(data), *FAST, "--out", str(tmp_path / "pipe.npz")])
    assert "FIFO" in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only directories")
def test_train_out_unwritable_directory_fails_before_training(
    data: Path, tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        line = _one_line_error(capsys, ["train", str(data), *FAST, "--out", str(ro / "sub" / "m.npz")])
    finally:
        ro.chmod(0o755)
    assert "permission" in line and str(ro) in line


def test_train_out_denied_directory_fails_before_training(
    data: Path,
    tmp_path: Path,
    no_training: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The same check where the tests run as root (whom chmod does not stop): the system says "denied".
    real_access, denied = os.access, tmp_path.resolve()
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != denied and real_access(p, mode, **kw))
    line = _one_line_error(capsys, ["train", str(data), *FAST, "--out", str(tmp_path / "new" / "m.npz")])
    assert (
        line == f"nemm: error: cannot write --out {tmp_path / 'new' / 'm.npz'}: no write permission in the "
        f"directory {denied}"
    )


# ----------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--lr", "inf", "learning_rate must be finite"),
        ("--chain-steps", "3000000000", "chain_steps must be at most 2147483647"),
        ("--chains", "0", "n_chains must be at least 1"),
        ("--seed", "-1", "random_state must be at least 0"),
    ],
)
def test_train_bad_setting_is_one_line(
    data: Path, tmp_path: Path, option: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _one_line_error(
        capsys, ["train", str(data), *FAST, option, value, "--out", str(tmp_path / "m.npz")]
    )
    assert words in line
    assert not (tmp_path / "m.npz").exists()


def test_train_digits_are_checked_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nemm import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(datasets.mnist, "load_mnist", offline)
    for digits, words in (("12", "12 is not a digit 0-9"), ("1,1", "repeats"), ("-1", "-1 is not a digit")):
        line = _one_line_error(capsys, ["train", "--digits", digits, *FAST, "--out", str(tmp_path / "m.npz")])
        assert words in line and "--digits" in line


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, ["train", "--hiddn", "3"])
    assert "--hiddn" in line and "--help" in line
    line = _one_line_error(capsys, ["sample"])
    assert "model" in line
    assert main(["--version"]) == 0 and "nemm" in capsys.readouterr().out


def test_train_binary_beyond_the_limit_says_why_instead_of_nan(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "train",
        str(data),
        "--hidden",
        "3",
        "--hidden-type",
        "binary",
        *FAST,
        "--out",
        str(tmp_path / "b.npz"),
    ]
    assert main([*argv, "--max-states", "4"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out
    assert "2^3 = 8 hidden states exceed the limit of 4" in out and "--max-states" in out
    # Within the (default) limit, the same command prints ln p, the mean of a finite negative number.
    assert main(argv) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if "appendix A3" in t)
    value = float(line.split(":")[1].split()[0])
    assert np.isfinite(value) and value < 0
    assert "--max-states" in _one_line_error(capsys, [*argv, "--max-states", "0"])


# ----------------------------------------------------------------------------- sample


def test_sample_too_many_is_refused_with_an_estimate(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nemm import _checks

    monkeypatch.setattr(_checks, "memory_limit", lambda: 8 << 30)  # the same answer on any machine
    line = _one_line_error(
        capsys, ["sample", str(model), "-n", str(10**12), "--out", str(tmp_path / "s.npy")]
    )
    assert "10000000000" in line and "TiB" in line and "8.0 GiB" in line
    assert not (tmp_path / "s.npy").exists()


def test_sample_out_is_checked_before_sampling(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def sample(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError("sampled before the output path was checked")

    monkeypatch.setattr(nemm.Machine, "sample", sample)
    assert "is a directory" in _one_line_error(capsys, ["sample", str(model), "--out", str(tmp_path)])
    (tmp_path / "f").write_text("")
    assert "not a directory" in _one_line_error(
        capsys, ["sample", str(model), "--out", str(tmp_path / "f" / "s.npy")]
    )


@pytest.mark.parametrize(
    "content, words",
    [
        (os.urandom(3000), "not an npz (zip) archive"),
        (b"hello world\n", "not an npz (zip) archive"),
    ],
)
def test_sample_from_a_non_model_never_mentions_pickles(
    tmp_path: Path, content: bytes, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("junk.npz", "junk.npy"):
        (tmp_path / name).write_bytes(content)
        line = _one_line_error(capsys, ["sample", str(tmp_path / name), "--out", str(tmp_path / "s.npy")])
        assert "not a readable nemm model file" in line and words in line and "pickle" not in line


def test_os_errors_are_one_line_without_errno(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line_error(capsys, ["sample", str(tmp_path), "--out", str(tmp_path / "s.npy")])
    assert line == f"nemm: error: {tmp_path}: Is a directory"


# ----------------------------------------------------------------------------- data files


def test_train_bad_data_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X = (np.random.default_rng(1).random((30, 10)) < 0.5).astype(np.uint8)
    out = str(tmp_path / "m.npz")
    (tmp_path / "rand.npz").write_bytes(os.urandom(3000))
    (tmp_path / "text.npy").write_text("0 1 0\n1 0 1\n")
    np.savez(tmp_path / "empty.npz")
    np.savez(tmp_path / "two.npz", a=X, b=X)
    cases = [
        ("rand.npz", "not a valid .npz file"),
        ("text.npy", "not a valid .npy file"),
        ("empty.npz", "contains no arrays"),
        ("two.npz", "['a', 'b']"),
    ]
    for name, words in cases:
        line = _one_line_error(capsys, ["train", str(tmp_path / name), *FAST, "--out", out])
        assert words in line and "pickle" not in line
    assert "--key" in line  # the several-arrays message names the option that chooses
    assert main(["train", str(tmp_path / "two.npz"), "--key", "b", "--hidden", "2", *FAST, "--out", out]) == 0
    assert nemm.load(out).n_visible_ == 10
    assert "no array named 'c'" in _one_line_error(
        capsys, ["train", str(tmp_path / "two.npz"), "--key", "c", *FAST, "--out", out]
    )


def test_train_on_a_scipy_sparse_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sparse = pytest.importorskip("scipy.sparse")
    X = (np.random.default_rng(2).random((30, 10)) < 0.3).astype(np.uint8)
    sparse.save_npz(tmp_path / "x.npz", sparse.csr_matrix(X))
    np.save(tmp_path / "x.npy", X)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["train", str(tmp_path / "x.npz"), "--hidden", "2", *FAST, "--out", str(a)]) == 0
    assert main(["train", str(tmp_path / "x.npy"), "--hidden", "2", *FAST, "--out", str(b)]) == 0
    np.testing.assert_array_equal(nemm.load(a).w_, nemm.load(b).w_)  # the same data, the same model


# ----------------------------------------------------------------------------- reproduce, diagnose


def test_reproduce_out_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    line = _one_line_error(capsys, ["reproduce", "--quick", "--out", str(tmp_path / "afile")])
    assert "exists and is not a directory" in line
    assert (tmp_path / "afile").read_text() == "x"


def test_diagnose_short_runs_adapt_the_windows(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", str(model), "--steps", "10", "--no-data"]) == 0
    assert "error bars over 5 time windows" in capsys.readouterr().out
    line = _one_line_error(capsys, ["diagnose", str(model), "--steps", "3", "--no-data"])
    assert "--steps must be at least 4" in line


# ----------------------------------------------------------------------------- the one-line rule itself


def test_traceback_option_and_env_show_the_error(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "afile").write_text("x")
    argv = ["train", str(data), *FAST, "--out", str(tmp_path / "afile" / "m.npz")]
    with pytest.raises(NotADirectoryError):
        main(["--traceback", *argv])
    monkeypatch.setenv("NEMM_DEBUG", "1")
    with pytest.raises(NotADirectoryError):
        main(argv)


def test_multi_line_messages_become_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from nemm import cli

    def fails(args: object) -> int:
        raise RuntimeError("could not download:\n  mirror 1: offline\n  mirror 2: offline\n")

    monkeypatch.setattr(cli, "_run_sample", fails)
    line = _one_line_error(capsys, ["sample", "m.npz"])
    assert line == "nemm: error: could not download: mirror 1: offline mirror 2: offline"


def test_bugs_stay_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    from nemm import cli

    def bug(args: object) -> int:
        return {}["missing"]  # a KeyError is ours, not the user's: it must not be hidden

    monkeypatch.setattr(cli, "_run_sample", bug)
    with pytest.raises(KeyError):
        main(["sample", "m.npz"])


def test_missing_scipy_for_a_sparse_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sparse = pytest.importorskip("scipy.sparse")
    sparse.save_npz(tmp_path / "x.npz", sparse.csr_matrix(np.eye(4, dtype=np.uint8)))
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    line = _one_line_error(
        capsys, ["train", str(tmp_path / "x.npz"), *FAST, "--out", str(tmp_path / "m.npz")]
    )
    assert "scipy.sparse" in line and "pip install scipy" in line


def test_load_names_what_the_file_is(tmp_path: Path, model: Path) -> None:
    X = np.eye(3, dtype=np.uint8)
    (tmp_path / "rand.npz").write_bytes(bytes(range(256)) * 8)
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "obj.npz", metadata=np.array({"format": "nemm-machine"}, dtype=object))
    for name, words in (
        ("rand.npz", "it is not an npz (zip) archive"),
        ("x.npy", "it is a .npy array"),
        ("obj.npz", "it holds Python objects (an object array), which nemm never unpickles"),
    ):
        with pytest.raises(ValueError) as info:
            nemm.load(tmp_path / name)
        assert str(info.value) == f"{tmp_path / name} is not a readable nemm model file: {words}"
    assert nemm.load(model).n_hidden == 3  # a real model still loads


def test_config_with_an_option_beside_it_is_one_line(
    tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "c.toml").write_text("[model]\nn_hidden = 2\n")
    # A setting given at its default value is still given (the options are absent unless given).
    for option in (
        ["--key", "X"],
        ["--max-states", "10"],
        ["--hidden", "3"],
        ["--epochs", "120"],
        ["--tied"],
    ):
        line = _one_line_error(
            capsys, ["train", "--config", str(tmp_path / "c.toml"), *option, "--out", str(tmp_path / "m.npz")]
        )
        assert f"{option[0]} cannot be given beside it" in line
