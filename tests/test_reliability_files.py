"""Reliability of what nemm reads (issue 20): FIFOs and other special files are refused before
they are opened, and crafted model files are refused before they can take memory.

The crafted files are small and built here: a few compressed bytes that declare gigabytes.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nemm
from nemm import RBM, Machine

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def data(n: int = 40, D: int = 10, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, D)) < 0.3).astype(np.uint8)


def _run(code: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


# ---------------------------------------------------------------- FIFOs
@needs_fifo
@pytest.mark.parametrize(
    "call",
    [
        "nemm.load(fifo)",
        "nemm.datasets.load_binary(fifo)",
        "nemm.datasets.load_npy(fifo)",
        "nemm.datasets.read_idx(fifo)",
        "__import__('nemm.config').config.load_config(fifo)",
    ],
)
def test_reading_a_fifo_is_refused_at_once(tmp_path: Path, call: str) -> None:
    # Opening a FIFO for reading blocks until a writer comes: in a subprocess, so that a
    # regression fails the test rather than hanging the run.
    os.mkfifo(tmp_path / "pipe")
    out = _run(
        f"""
        import nemm, nemm.datasets
        fifo = "pipe"
        try:
            {call}
        except Exception as e:
            print(type(e).__name__, e)
        """,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "refusing to read pipe: it is a FIFO (named pipe)" in out.stdout


@needs_fifo
@pytest.mark.parametrize("command", [["sample", "pipe"], ["diagnose", "pipe"], ["train", "pipe"]])
def test_the_cli_refuses_a_fifo_in_one_line(tmp_path: Path, command: list[str]) -> None:
    os.mkfifo(tmp_path / "pipe")
    out = subprocess.run(
        [sys.executable, "-m", "nemm", *command], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "FIFO" in lines[0] and lines[0].startswith("nemm: error:"), out.stderr


@needs_fifo
def test_a_sweep_data_path_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    from nemm.config import ConfigError, parse_config

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ConfigError, match=r"\[data\] path.*FIFO"):
        parse_config('[data]\npath = "pipe"\n', base_dir=tmp_path)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_device_is_no_model_file() -> None:
    with pytest.raises(OSError, match="refusing to read /dev/null: it is a character device"):
        nemm.load("/dev/null")


# ---------------------------------------------------------------- crafted model files
def arrays_of(m: Any) -> dict[str, Any]:
    return dict(np.load(io.BytesIO(m._file_bytes()), allow_pickle=False))


def write(path: Path, arrays: dict[str, Any], meta: dict[str, Any] | None = None) -> Path:
    arrays = dict(arrays)
    if meta is not None:
        arrays["metadata"] = np.array(json.dumps(meta))
    np.savez_compressed(path, **arrays)
    return path


def meta_of(arrays: dict[str, Any]) -> dict[str, Any]:
    return json.loads(str(arrays["metadata"][()]))


@pytest.fixture(scope="module")
def machine() -> Machine:
    return Machine(3, n_epochs=2, random_state=0).fit(data())


def test_a_long_history_of_zeros_is_refused(machine: Machine, tmp_path: Path) -> None:
    a = arrays_of(machine)
    a["history/loglik"] = np.zeros(10**7)  # 10 kB compressed, 80 MB of numbers, 320 MB as a list
    path = write(tmp_path / "h.npz", a)
    assert path.stat().st_size < 200_000
    with pytest.raises(ValueError, match=rf"{path}: history/loglik has shape \(10000000,\).*2 epochs"):
        nemm.load(path)


def test_arrays_declaring_more_than_they_hold_are_refused(machine: Machine, tmp_path: Path) -> None:
    # An .npy header may claim any shape: numpy allocates it before it finds the data short.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in arrays_of(machine).items():
            if k == "history/seconds":
                continue  # written below, with a header alone
            with z.open(f"{k}.npy", "w") as fh:
                np.lib.format.write_array(fh, v)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
        )
        z.writestr("history/seconds.npy", header.getvalue())
    path = tmp_path / "liar.npz"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match=r"declares shape \(1000000000,\).*holds only"):
        nemm.load(path)


def test_a_model_larger_than_memory_is_refused_before_it_loads(
    machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nemm._checks as checks

    a = arrays_of(machine)
    meta = meta_of(a)
    L = 200_000
    meta["settings"]["n_hidden"] = L
    a.update(w=np.zeros((10, L)), wbar=np.zeros((L, 10)), abar=np.zeros(L))
    path = write(tmp_path / "big.npz", a, meta)
    monkeypatch.setattr(checks, "memory_limit", lambda: 100 << 20)  # a 100 MiB process, anywhere
    with pytest.raises(MemoryError, match=rf"loading {path}.*too large"):
        nemm.load(path)


@pytest.mark.parametrize("kind", ["machine", "rbm"])
def test_more_chains_than_the_settings_say_are_refused(machine: Machine, tmp_path: Path, kind: str) -> None:
    m = (
        machine
        if kind == "machine"
        else RBM(3, gradient="pcd", n_chains=2, n_epochs=1, random_state=0).fit(data())
    )
    a = arrays_of(m)
    for k in ("visible", "z", "rng", "lanes"):
        a[f"train/{k}"] = np.repeat(a[f"train/{k}"][:1], 200_000, axis=0)
    path = write(tmp_path / "chains.npz", a)
    n = m.training_settings_["n_chains"] if kind == "machine" else 2
    with pytest.raises(ValueError, match=rf"{path}: train/visible has shape \(200000, 10\).*n_chains={n}"):
        nemm.load(path)
    unpickled = type(m).__new__(type(m))  # pickling carries the same bytes
    with pytest.raises(ValueError, match=r"n_chains"):
        unpickled.__setstate__({"model_npz": path.read_bytes()})


def test_a_minibatch_order_longer_than_the_data_is_refused(machine: Machine, tmp_path: Path) -> None:
    a = arrays_of(machine)
    a["train/perm"] = np.zeros(10**6, dtype=np.int64)
    path = write(tmp_path / "perm.npz", a)
    with pytest.raises(ValueError, match=rf"{path}: train/perm has shape \(1000000,\).*40 rows"):
        nemm.load(path)


def test_deeply_nested_metadata_is_refused(machine: Machine, tmp_path: Path) -> None:
    a = arrays_of(machine)
    a["metadata"] = np.array("[" * 100_000 + "]" * 100_000)
    path = write(tmp_path / "deep.npz", a)
    with pytest.raises(ValueError, match=rf"{path}: corrupt metadata: nested too deeply"):
        nemm.load(path)


@pytest.mark.parametrize("bad", [-7, 2.5, True, "3"])
def test_a_bad_epoch_count_is_refused(machine: Machine, tmp_path: Path, bad: object) -> None:
    a = arrays_of(machine)
    meta = meta_of(a)
    meta["epochs_done"] = bad
    path = write(tmp_path / "epochs.npz", a, meta)
    with pytest.raises(ValueError, match=rf"{path}: epochs_done must be a non-negative integer"):
        nemm.load(path)


def test_errors_of_settings_and_arrays_name_the_file(machine: Machine, tmp_path: Path) -> None:
    a = arrays_of(machine)
    meta = meta_of(a)
    meta["settings"]["n_hidden"] = -3
    path = write(tmp_path / "settings.npz", a, meta)
    with pytest.raises(ValueError, match=rf"^{path}: n_hidden"):
        nemm.load(path)
    a = arrays_of(machine)
    a["xbar"] = np.full(10, 2.0)
    path = write(tmp_path / "xbar.npz", a)
    with pytest.raises(ValueError, match=rf"^{path}: xbar"):
        nemm.load(path)


def test_unpickling_bytes_that_are_no_zip_gives_nemms_message(machine: Machine) -> None:
    state = machine.__getstate__()
    state["model_npz"] = pickle.dumps([1, 2, 3])  # what numpy would take for a pickle
    m = Machine.__new__(Machine)
    with pytest.raises(ValueError, match=r"pickled Machine is not a readable nemm model file") as info:
        m.__setstate__(state)
    assert "allow_pickle" not in str(info.value)
