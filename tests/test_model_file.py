"""nemm.model_file: the one npz + JSON format, its registry and its checks (the machine's and
the RBM's own files are tested in test_machine.py, test_resume.py, test_rbm.py and test_io.py)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import nemm
from nemm import model_file


def _write(path: Path, meta: dict, **arrays: np.ndarray) -> Path:
    return model_file.write(path, {"metadata": np.array(json.dumps(meta)), **arrays})


@pytest.mark.parametrize(("given", "written"), [("m", "m.npz"), ("m.bin", "m.bin.npz"), ("m.npz", "m.npz")])
def test_npz_suffix(tmp_path: Path, given: str, written: str) -> None:
    assert model_file.npz_path(tmp_path / given) == tmp_path / written
    assert _write(tmp_path / given, {"format": "x"}).name == written
    assert (tmp_path / written).is_file()


def test_load_dispatches_on_the_registered_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def reader(npz, meta, path):  # type: ignore[no-untyped-def]
        seen.append((sorted(npz.files), meta, path))
        return ("model", int(npz["v"][0]))

    monkeypatch.setitem(model_file._FORMATS, "nemm-test", reader)
    path = _write(tmp_path / "t", {"format": "nemm-test", "k": 1}, v=np.array([7]))
    assert nemm.load(path) == ("model", 7)
    assert seen == [(["metadata", "v"], {"format": "nemm-test", "k": 1}, path)]
    # The bytes of a file read back the same way (what pickling a model carries).
    assert model_file.from_bytes(path.read_bytes(), "bytes") == ("model", 7)


def test_both_models_are_registered() -> None:
    assert {nemm.machine.FORMAT_NAME, nemm.rbm.FORMAT_NAME} <= set(model_file._FORMATS)
    assert nemm.machine.FORMAT_VERSION == nemm.rbm.FORMAT_VERSION == 2
    # Each model's format is its module's: the shared module names none of them.
    assert not hasattr(model_file, "FORMAT_NAME") and not hasattr(model_file, "FORMAT_VERSION")
    assert nemm.machine.load is nemm.load is model_file.load
    assert nemm.machine.register_format is model_file.register_format


@pytest.mark.parametrize("meta", [{"format": "nemm-unknown"}, {"no": "format"}, [1, 2], "text"])
def test_unknown_formats_are_refused(tmp_path: Path, meta: object) -> None:
    path = tmp_path / "u.npz"
    np.savez(path, metadata=np.array(json.dumps(meta)))
    with pytest.raises(ValueError, match="not a nemm model file"):
        nemm.load(path)


def test_an_unknown_format_is_refused_naming_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "u.npz"
    np.savez(path, metadata=np.array(json.dumps({"format": "nemm-unknown"})))
    with pytest.raises(ValueError, match=r"format 'nemm-unknown' is not one of .*'nemm-machine', 'nemm-rbm'"):
        nemm.load(path)


def test_training_arrays_are_read_complete_and_with_the_chains_dtypes(tmp_path: Path) -> None:
    chains = {
        "train/visible": np.zeros((1, 3), np.uint8),
        "train/z": np.zeros(1, np.uint64),
        "train/rng": np.ones((1, 4), np.uint64),
        "train/lanes": np.ones((1, 4, 8), np.uint32),
    }
    path = _write(tmp_path / "t", {}, **chains, **{"train/v": np.zeros(2)})
    with np.load(path) as npz:
        got = model_file.read_training_arrays(npz, {}, model_file.CHAIN_ARRAYS + ("v",), path)
        assert sorted(got) == sorted(model_file.CHAIN_ARRAYS + ("v",))
        with pytest.raises(ValueError, match=r"incomplete training state \(missing \['w'\]\)"):
            model_file.read_training_arrays(npz, {}, ("v", "w"), path)
        with pytest.raises(ValueError, match=r"incomplete training state \(missing metadata\)"):
            model_file.read_training_arrays(npz, None, ("v",), path)
    path = _write(tmp_path / "d", {}, **dict(chains, **{"train/z": np.zeros(1, np.int64)}))
    with np.load(path) as npz, pytest.raises(ValueError, match="train/z must be uint64, got int64"):
        model_file.read_training_arrays(npz, {}, model_file.CHAIN_ARRAYS, path)


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "p.npz").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ValueError, match="not an npz"):
        nemm.load(tmp_path / "p.npz")
    np.savez(tmp_path / "o.npz", metadata=np.array([{"format": "nemm-machine"}], dtype=object))
    with pytest.raises(ValueError, match="Python objects"):
        nemm.load(tmp_path / "o.npz")
    np.savez(tmp_path / "n.npz", w=np.zeros(2))
    with pytest.raises(ValueError, match="no metadata"):
        nemm.load(tmp_path / "n.npz")
    with pytest.raises(FileNotFoundError):
        nemm.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("version", [0, 3, True, "2", None])
def test_check_version(version: object) -> None:
    with pytest.raises(ValueError, match=r"model format version .*reads versions 1, 2$"):
        model_file.check_version({"format_version": version}, "f", (1, 2))
    assert model_file.check_version({"format_version": 2}, "f", (1, 2)) == 2


def test_settings_and_arrays_checks() -> None:
    assert model_file.read_settings({"settings": {"a": 1}}, ("a", "b"), "f") == {"a": 1}
    with pytest.raises(ValueError, match=r"unknown settings \['c'\]"):
        model_file.read_settings({"settings": {"a": 1, "c": 2}}, ("a", "b"), "f")
    with pytest.raises(ValueError, match="no settings"):
        model_file.read_settings({}, ("a",), "f")

    class Npz:
        files = ["w"]

    with pytest.raises(ValueError, match=r"lacks arrays \['a'\]"):
        model_file.require_arrays(Npz(), ("w", "a"), "f")


def test_history_arrays_keep_integer_series() -> None:
    h = {"epoch": [0, 1], "ll": [-1.5, -1.0], "flag": [True, False], "empty": []}
    kept = model_file.history_arrays(h, keep_integers=True)
    assert kept["history/epoch"].dtype == np.int64
    assert kept["history/ll"].dtype == kept["history/flag"].dtype == kept["history/empty"].dtype == np.float64
    assert model_file.history_arrays(h, keep_integers=False)["history/epoch"].dtype == np.float64
    assert model_file.metadata("f", 1, {}, 3, h)["history_keys"] == ["empty", "epoch", "flag", "ll"]
