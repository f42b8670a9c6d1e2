"""Tests of nemm.datasets: shipped digits, IDX reading, selection, user data
and the download path (against real HTTP servers on 127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import importlib
import json
import shutil
import socket
import struct
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _import_datasets() -> types.ModuleType:
    """Import nemm.datasets; without a built core, load it from the source tree.

    nemm/__init__.py needs the compiled core, which nemm.datasets does not:
    the fallback mounts python/nemm as a private package whose __init__ is
    not run, so these tests also work in a tree that was never compiled.
    """
    try:
        from nemm import datasets as mod

        return mod
    except ImportError:
        name = "_nemm_source_tree"
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [str(REPO / "python" / "nemm")]
            sys.modules[name] = pkg
        return importlib.import_module(f"{name}.datasets")


datasets = _import_datasets()
EMBEDDED_FILE = REPO / "python" / "nemm" / "data" / "mnist012.npz"


@pytest.fixture(scope="module")
def t10k(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    return datasets.load_mnist("test", mnist_dir)


@pytest.fixture(autouse=True)
def _no_user_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own settings must not change what the tests exercise.
    monkeypatch.delenv("NEMM_DATA", raising=False)
    monkeypatch.delenv("NEMM_CACHE", raising=False)


# ---------------------------------------------------------------- helpers


def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    dt = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    head = b"\0\0" + bytes([code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.asarray(arr).astype(dt).tobytes()


def _write_png(path: Path, pixels: np.ndarray, mode: str) -> None:
    """Write ``pixels`` (uint8, (h, w) or (h, w, channels)) as a PNG of Pillow mode ``mode``."""
    from PIL import Image

    im = Image.fromarray(np.asarray(pixels, dtype=np.uint8))  # the mode follows from the shape
    assert im.mode == mode
    im.save(path, format="PNG")


@contextlib.contextmanager
def _http_server(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (random port) in a daemon thread."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mnist/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


# ---------------------------------------------------------------- embedded


def test_embedded_digits_shape_and_counts() -> None:
    X, y = datasets.embedded_digits()
    assert X.shape == (2980, 784) and X.dtype == np.uint8
    assert y.shape == (2980,) and y.dtype == np.uint8
    assert [int((y == d).sum()) for d in range(10)] == [980, 1000, 1000] + [0] * 7
    assert set(np.unique(X).tolist()) == {0, 1}
    # Digits are real images: neither empty nor full, ones thinner than zeros.
    ink = X.sum(axis=1)
    assert ink.min() > 10 and ink.max() < 400
    assert ink[y == 1].mean() < ink[y == 0].mean()
    # Interleaved test-split order, not grouped by class.
    assert y[:6].tolist() == [2, 1, 0, 1, 0, 0]


def test_embedded_digits_returns_independent_copies() -> None:
    X, y = datasets.embedded_digits()
    X[:] = 0
    y[:] = 9
    X2, y2 = datasets.embedded_digits()
    assert X2.sum() > 0 and (y2 != 9).all()


def test_embedded_file_meta_and_size() -> None:
    assert EMBEDDED_FILE.stat().st_size < 1_000_000
    with np.load(EMBEDDED_FILE, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        assert z["bits"].shape == (2980, 98) and z["bits"].dtype == np.uint8
        idx = z["indices"]
        assert idx.dtype == np.int32 and (np.diff(idx) > 0).all()
    assert meta["format"] == "nemm-embedded-digits" and meta["version"] == 1
    assert meta["threshold"] == 127 and meta["n_features"] == 784 and meta["shape"] == [28, 28]
    assert meta["digits"] == [0, 1, 2] and meta["per_class"] == 1000
    assert "MNIST" in meta["source"] and "CC BY-SA" in meta["license"]


def test_embedded_equals_binarized_idx_selection(t10k: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = t10k
    sel_images, sel_labels = datasets.select_digits(images, labels, (0, 1, 2), 1000)
    X, y = datasets.embedded_digits()
    np.testing.assert_array_equal(y, sel_labels)
    np.testing.assert_array_equal(X, datasets.binarize(sel_images, 127))
    with np.load(EMBEDDED_FILE, allow_pickle=False) as z:
        np.testing.assert_array_equal(labels[z["indices"]], y)


def test_load_digits_uses_embedded_without_io(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_mnist must not be called")

    monkeypatch.setattr(datasets.mnist, "load_mnist", boom)
    X, y = datasets.load_digits((2, 1), 10)
    assert X.shape == (20, 784)
    assert sorted(y.tolist()) == [1] * 10 + [2] * 10
    Xe, ye = datasets.embedded_digits()
    keep = np.flatnonzero(np.isin(ye, (1, 2)))
    first = np.concatenate([keep[ye[keep] == 1][:10], keep[ye[keep] == 2][:10]])
    np.testing.assert_array_equal(X, Xe[np.sort(first)])


def test_load_digits_from_directory_and_env(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Xe, ye = datasets.embedded_digits()
    X, y = datasets.load_digits(directory=mnist_dir)
    np.testing.assert_array_equal(X, Xe)
    np.testing.assert_array_equal(y, ye)
    # Outside what is shipped (digit 7, another threshold) the loader reads NEMM_DATA.
    monkeypatch.setenv("NEMM_DATA", str(mnist_dir))
    X7, y7 = datasets.load_digits((7,), 5, threshold=0)
    assert X7.shape == (5, 784) and (y7 == 7).all()
    images, labels = datasets.load_mnist("test", mnist_dir)
    np.testing.assert_array_equal(X7, (images[labels == 7][:5].reshape(5, -1) > 0).astype(np.uint8))


# ---------------------------------------------------------------- read_idx


def test_read_idx_plain_gz_and_magic_detection(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = _idx_bytes(arr)
    (tmp_path / "a-idx3-ubyte").write_bytes(raw)
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "gz-without-suffix").write_bytes(gzip.compress(raw))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz", "gz-without-suffix"):
        got = datasets.read_idx(tmp_path / name)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, arr)
    ints = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    (tmp_path / "i").write_bytes(_idx_bytes(ints, 0x0C))
    got = datasets.read_idx(tmp_path / "i")
    assert got.dtype == np.dtype("=i4") and got.flags.writeable
    np.testing.assert_array_equal(got, ints)


def test_read_idx_shared_labels(mnist_dir: Path) -> None:
    labels = datasets.read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,)
    assert np.bincount(labels)[:3].tolist() == [980, 1135, 1032]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw[:10], "truncated"),
        (lambda raw: raw + b"\0", "trailing"),
        (lambda raw: b"\1" + raw[1:], "magic"),
        (lambda raw: raw[:2] + b"\x07" + raw[3:], "type code"),
        (lambda raw: b"", "too short"),
    ],
)
def test_read_idx_rejects_malformed(tmp_path: Path, mutate, message: str) -> None:
    raw = _idx_bytes(np.zeros((3, 4, 5), dtype=np.uint8))
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(raw))
    with pytest.raises(ValueError, match=message):
        datasets.read_idx(path)


@pytest.mark.parametrize("dims", [(2**31, 2**31, 2**31), (2**16,) * 4, (2**32 - 1, 2**32 - 1)])
def test_read_idx_huge_dimensions_do_not_overflow(tmp_path: Path, dims: tuple[int, ...]) -> None:
    # With int64 the product wraps around (2^93 and 2^64 become 0): an empty payload then "matched".
    path = tmp_path / "huge-idx3-ubyte"
    for payload in (b"", b"\0" * 10):
        path.write_bytes(b"\0\0\x08" + bytes([len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload)
        expected = 1
        for d in dims:
            expected *= d
        with pytest.raises(ValueError, match=f"truncated: {len(payload)} bytes .* expected {expected}$"):
            datasets.read_idx(path)


def test_read_idx_rejects_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(_idx_bytes(np.ones((50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="gzip"):
        datasets.read_idx(path)


def test_load_digits_checks_digits_before_any_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(datasets.mnist, "load_mnist", offline)
    for digits in ((12,), (0, 10), (-1,)):
        with pytest.raises(ValueError, match="MNIST has the digits 0-9"):
            datasets.load_digits(digits)


# ---------------------------------------------------------------- select / binarize


def test_select_digits_order_and_limits() -> None:
    labels = np.array([3, 1, 0, 1, 3, 0, 1, 2], dtype=np.uint8)
    images = np.arange(8)[:, None] * np.ones((1, 2), dtype=int)
    im, lb = datasets.select_digits(images, labels, (1, 0), per_class=2)
    assert lb.tolist() == [1, 0, 1, 0]
    assert im[:, 0].tolist() == [1, 2, 3, 5]
    _, lb = datasets.select_digits(images, labels, (1, 2), per_class=None)
    assert lb.tolist() == [1, 1, 1, 2]
    _, lb = datasets.select_digits(images, labels, (2,), per_class=5)  # fewer than asked
    assert lb.tolist() == [2]
    with pytest.raises(ValueError, match="digit 7"):
        datasets.select_digits(images, labels, (0, 7))
    with pytest.raises(ValueError):
        datasets.select_digits(images[:3], labels)
    with pytest.raises(ValueError, match="per_class"):
        datasets.select_digits(images, labels, (0,), per_class=0)


def test_binarize_threshold_and_shape() -> None:
    imgs = np.array([[[0, 127], [128, 255]], [[126, 127], [127, 200]]], dtype=np.uint8)
    out = datasets.binarize(imgs)
    assert out.dtype == np.uint8 and out.shape == (2, 4)
    assert out.tolist() == [[0, 0, 1, 1], [0, 0, 0, 1]]
    assert datasets.binarize(imgs, threshold=0).tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    assert datasets.binarize(np.array([[0.2, 0.7]]), 0.5).tolist() == [[0, 1]]
    with pytest.raises(ValueError, match="NaN"):
        datasets.binarize(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        datasets.binarize(np.zeros(5))


def test_binarize_stochastic_is_reproducible_and_unbiased() -> None:
    gray = np.array([[0, 1, 64, 127, 128, 200, 254, 255]], dtype=np.uint8)
    images = np.repeat(gray, 20_000, axis=0)
    a = datasets.binarize(images, method="stochastic", seed=3)
    assert a.dtype == np.uint8 and a.shape == images.shape
    np.testing.assert_array_equal(a, datasets.binarize(images, method="stochastic", seed=3))
    assert not np.array_equal(a, datasets.binarize(images, method="stochastic", seed=4))
    # Each pixel is on with probability gray/255: 0 never, 255 always, the rest within 5 sigma.
    p = gray[0] / 255.0
    freq = a.mean(axis=0)
    assert freq[0] == 0.0 and freq[-1] == 1.0
    sigma = np.sqrt(p * (1 - p) / images.shape[0])
    assert (np.abs(freq - p) <= 5 * sigma + 1e-12).all(), (freq, p)
    # Pixels are drawn independently: two pixels of the same gray level do not agree more than chance.
    both = datasets.binarize(np.full((20_000, 2), 128, dtype=np.uint8), method="stochastic", seed=5)
    assert abs((both[:, 0] == both[:, 1]).mean() - 0.5) < 0.02


def test_binarize_options_are_checked() -> None:
    imgs = np.array([[0, 300]])
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        datasets.binarize(imgs, method="stochastic", seed=0)
    with pytest.raises(ValueError, match="threshold applies only"):
        datasets.binarize(np.zeros((2, 2)), 100, method="stochastic")
    with pytest.raises(ValueError, match="seed applies only"):
        datasets.binarize(np.zeros((2, 2)), seed=1)
    with pytest.raises(ValueError, match="'threshold', 'stochastic'"):
        datasets.binarize(np.zeros((2, 2)), method="random")
    with pytest.raises(ValueError, match="seed must be"):
        datasets.binarize(np.zeros((2, 2)), method="stochastic", seed=-1)
    # The threshold is the default and unchanged: None means 127.
    ramp = np.arange(256, dtype=np.uint8)[None, :]
    np.testing.assert_array_equal(datasets.binarize(ramp), datasets.binarize(ramp, 127))
    assert int(datasets.binarize(ramp).sum()) == 128


def test_load_digits_stochastic(mnist_dir: Path, t10k: tuple[np.ndarray, np.ndarray]) -> None:
    X1, y1 = datasets.load_digits((0, 1, 2), 100, directory=mnist_dir, binarize="stochastic", seed=7)
    X2, _ = datasets.load_digits((0, 1, 2), 100, directory=mnist_dir, binarize="stochastic", seed=7)
    np.testing.assert_array_equal(X1, X2)
    images, labels = datasets.select_digits(*t10k, (0, 1, 2), 100)
    np.testing.assert_array_equal(y1, labels)
    np.testing.assert_array_equal(X1, datasets.binarize(images, method="stochastic", seed=7))
    # Over many draws each pixel's mean approaches gray/255.
    draws = np.mean([datasets.binarize(images[:20], method="stochastic", seed=s) for s in range(400)], axis=0)
    target = images[:20].reshape(20, -1) / 255.0
    assert np.abs(draws - target).max() < 0.1
    assert np.abs(draws - target).mean() < 0.01
    # The default is still the threshold (and the embedded digits when they suffice).
    Xt, _ = datasets.load_digits((0, 1, 2), 100)
    np.testing.assert_array_equal(Xt, datasets.binarize(images))
    with pytest.raises(ValueError, match="threshold applies only"):
        datasets.load_digits((0,), 5, binarize="stochastic", threshold=100)
    with pytest.raises(ValueError, match="seed applies only"):
        datasets.load_digits((0,), 5, seed=1)


def test_load_binary_stochastic_idx_directory(mnist_dir: Path, t10k: tuple[np.ndarray, np.ndarray]) -> None:
    X = datasets.load_binary(mnist_dir, binarize="stochastic", seed=2)
    np.testing.assert_array_equal(X, datasets.binarize(t10k[0], method="stochastic", seed=2))
    np.testing.assert_array_equal(datasets.load_binary(mnist_dir), datasets.binarize(t10k[0]))
    with pytest.raises(ValueError, match="seed applies only"):
        datasets.load_binary(mnist_dir, seed=2)


# ---------------------------------------------------------------- load_binary


def test_load_binary_npy_and_npz(tmp_path: Path) -> None:
    X = (np.arange(12).reshape(3, 4) % 3 == 0).astype(np.int64)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "b.npy", X.astype(bool))
    for name in ("x.npy", "b.npy"):
        got = datasets.load_binary(tmp_path / name)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, X)
    np.savez(tmp_path / "named.npz", X=X, other=np.zeros((2, 2)))
    np.testing.assert_array_equal(datasets.load_binary(tmp_path / "named.npz"), X)
    np.testing.assert_array_equal(datasets.load_binary(tmp_path / "named.npz", key="other"), np.zeros((2, 2)))
    np.savez(tmp_path / "single.npz", data=X)
    np.testing.assert_array_equal(datasets.load_binary(tmp_path / "single.npz"), X)
    np.savez(tmp_path / "two.npz", a=X, b=X)
    with pytest.raises(ValueError, match="key"):
        datasets.load_binary(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="nope"):
        datasets.load_binary(tmp_path / "named.npz", key="nope")


@pytest.mark.parametrize(
    "array, message",
    [
        (np.array([[0, 2], [1, 0]]), "only 0 and 1"),
        (np.array([[0.0, np.nan]]), "NaN"),
        (np.array([0, 1, 1]), "two-dimensional"),
        (np.zeros((2, 2, 2)), "two-dimensional"),
        (np.array([["a", "b"]]), "numeric"),
    ],
)
def test_load_binary_rejects_bad_arrays(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message) as info:
        datasets.load_binary(path)
    assert str(path) in str(info.value)


def test_load_binary_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        datasets.load_binary(tmp_path / "missing.npy")
    (tmp_path / "x.csv").write_text("0,1\n")
    with pytest.raises(ValueError, match="unsupported"):
        datasets.load_binary(tmp_path / "x.csv")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="junk.npy"):
        datasets.load_binary(tmp_path / "junk.npy")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="neither PNG"):
        datasets.load_binary(empty)


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("rand.npz", bytes(range(256)) * 8, "rand.npz is not a valid .npz file: it is not a zip archive"),
        (
            "text.npy",
            b"0 1 0\n1 0 1\n",
            "text.npy is not a valid .npy file: it does not start with the NumPy",
        ),
        ("zip.npy", b"PK\x03\x04" + b"x" * 60, "zip.npy is a damaged .npz archive"),
        ("cut.npz", b"PK\x03\x04" + b"x" * 60, "cut.npz is a damaged .npz archive"),
    ],
)
def test_load_binary_invalid_files_never_advise_unpickling(
    tmp_path: Path, name: str, content: bytes, words: str
) -> None:
    # numpy takes unknown bytes for a pickle and suggests allow_pickle=: an unsafe act, and not the problem.
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError) as info:
        datasets.load_binary(tmp_path / name)
    assert words in str(info.value) and "pickle" not in str(info.value)


def test_load_binary_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    obj = np.array([[0, 1], [1, 0]], dtype=object)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    np.savez(tmp_path / "obj.npz", X=obj)
    for name, where in (("obj.npy", "obj.npy holds"), ("obj.npz", "array 'X' of")):
        with pytest.raises(ValueError, match=f"{where}.*never unpickles") as info:
            datasets.load_binary(tmp_path / name)
        assert "allow_pickle" not in str(info.value)
    with pytest.raises(ValueError, match="never unpickles"):
        datasets.load_npy(tmp_path / "obj.npy")


def test_load_npy(tmp_path: Path) -> None:
    y = np.arange(5)
    np.save(tmp_path / "y.npy", y)
    np.testing.assert_array_equal(datasets.load_npy(tmp_path / "y.npy"), y)
    np.savez(tmp_path / "y.npz", y=y)
    with pytest.raises(ValueError, match="not a valid .npy file: it is an .npz archive"):
        datasets.load_npy(tmp_path / "y.npz")
    with pytest.raises(FileNotFoundError):
        datasets.load_npy(tmp_path / "missing.npy")


def test_load_binary_npz_choice_of_array(tmp_path: Path) -> None:
    X = np.eye(3, dtype=np.uint8)
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(ValueError, match="empty.npz contains no arrays$"):
        datasets.load_binary(tmp_path / "empty.npz")
    for name in datasets.NPZ_KEYS:  # picked by name among several arrays
        np.savez(tmp_path / "named.npz", **{name: X, "y": np.arange(3)})
        np.testing.assert_array_equal(datasets.load_binary(tmp_path / "named.npz"), X)
    np.savez(tmp_path / "two.npz", a=X, b=1 - X)
    with pytest.raises(
        ValueError,
        match=r"holds several arrays \['a', 'b'\] and none is named X, x or data; "
        r"choose one with key= \(on the command line: --key\)",
    ):
        datasets.load_binary(tmp_path / "two.npz")
    np.testing.assert_array_equal(datasets.load_binary(tmp_path / "two.npz", key="b"), 1 - X)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_load_binary_scipy_sparse_npz(tmp_path: Path, fmt: str) -> None:
    sparse = pytest.importorskip("scipy.sparse")
    X = (np.random.default_rng(3).random((20, 9)) < 0.3).astype(np.uint8)
    sparse.save_npz(tmp_path / "x.npz", getattr(sparse, f"{fmt}_matrix")(X))
    got = datasets.load_binary(tmp_path / "x.npz")
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, X)
    sparse.save_npz(tmp_path / "bad.npz", sparse.csr_matrix(2 * X))
    with pytest.raises(ValueError, match="only 0 and 1"):
        datasets.load_binary(tmp_path / "bad.npz")


def test_load_binary_scipy_sparse_npz_without_scipy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The file a scipy user writes, read where scipy is missing: say so, do not pick its "data" array.
    np.savez(
        tmp_path / "x.npz",
        indices=np.array([0, 1], dtype=np.int32),
        indptr=np.array([0, 1, 2]),
        format=np.array(b"csr"),
        shape=np.array([2, 2]),
        data=np.array([1, 1], dtype=np.uint8),
    )
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(ImportError, match="scipy.sparse.save_npz.*pip install scipy"):
        datasets.load_binary(tmp_path / "x.npz")


def test_load_binary_png_directory(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(4, 5, 6), dtype=np.uint8)
    d = tmp_path / "pngs"
    d.mkdir()
    # Names sorted out of creation order; gray, gray+alpha, RGB and RGBA.
    _write_png(d / "b.png", gray[1], "L")
    rgb = np.stack([gray[0], gray[0], gray[0]], axis=2)
    rgb[..., 0] = np.minimum(rgb[..., 0].astype(int) + 3, 255)  # mean still rounds near gray
    rgb[..., 2] = np.maximum(rgb[..., 2].astype(int) - 3, 0)
    _write_png(d / "a.png", rgb, "RGB")
    rgba = np.concatenate([np.repeat(gray[2][..., None], 3, axis=2), np.full((5, 6, 1), 7, np.uint8)], axis=2)
    _write_png(d / "c.png", rgba, "RGBA")  # alpha 7 of 255: dropped, never composited
    _write_png(d / "d.png", np.stack([gray[3], np.zeros((5, 6), np.uint8)], axis=2), "LA")
    (d / "notes.txt").write_text("ignored")
    got = datasets.load_binary(d, threshold=100)
    expected_rgb = np.rint(rgb.astype(float).mean(axis=2)).astype(np.uint8)
    expected = np.stack([expected_rgb, gray[1], gray[2], gray[3]]).reshape(4, -1) > 100
    assert got.shape == (4, 30) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected.astype(np.uint8))


def test_load_binary_png_errors(tmp_path: Path) -> None:
    d = tmp_path / "sizes"
    d.mkdir()
    _write_png(d / "a.png", np.zeros((4, 4)), "L")
    _write_png(d / "b.png", np.zeros((4, 5)), "L")
    with pytest.raises(ValueError, match="differ in size"):
        datasets.load_binary(d)
    d2 = tmp_path / "corrupt"
    d2.mkdir()
    _write_png(d2 / "x.png", np.arange(64 * 64).reshape(64, 64) % 251, "L")
    raw = (d2 / "x.png").read_bytes()
    (d2 / "x.png").write_bytes(raw[: len(raw) // 2])  # cut inside the image data
    with pytest.raises(ValueError, match="x.png"):
        datasets.load_binary(d2)
    d3 = tmp_path / "fake"
    d3.mkdir()
    (d3 / "y.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="y.png"):
        datasets.load_binary(d3)


def test_load_binary_png_without_pillow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_png(tmp_path / "a.png", np.zeros((2, 2)), "L")
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "nemm\[images\]"'):
        datasets.load_binary(tmp_path)


def test_load_binary_idx_directory(tmp_path: Path) -> None:
    imgs = np.array([[[0, 200], [130, 10]], [[255, 0], [0, 128]]], dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(imgs))
    got = datasets.load_binary(tmp_path)
    assert got.tolist() == [[0, 1, 1, 0], [1, 0, 0, 1]]


# ---------------------------------------------------------------- load_mnist


def test_load_mnist_directory_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_mnist("test", tmp_path)
    assert str(tmp_path) in str(info.value) and "t10k-images-idx3-ubyte" in str(info.value)
    monkeypatch.setenv("NEMM_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="NEMM_DATA"):
        datasets.load_mnist("train")
    monkeypatch.delenv("NEMM_DATA")
    with pytest.raises(FileNotFoundError, match="download=False"):
        datasets.load_mnist("test", cache_dir=tmp_path / "cache", download=False)
    with pytest.raises(ValueError, match="split"):
        datasets.load_mnist("validation", tmp_path)


def test_load_mnist_plain_files(tmp_path: Path, mnist_dir: Path, t10k) -> None:
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(mnist_dir / f"{stem}.gz", "rb") as src, open(tmp_path / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    images, labels = datasets.load_mnist("test", tmp_path)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, t10k[0])
    np.testing.assert_array_equal(labels, t10k[1])


def _mirror_dirs(tmp_path: Path, shared: Path) -> tuple[Path, Path]:
    """A good mirror (copies of the shared files) and a corrupted one."""
    good = tmp_path / "good" / "mnist"
    bad = tmp_path / "bad" / "mnist"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared / name, good / name)
    # Valid gzip, wrong content: only the checksum can catch it.
    payload = bytearray(gzip.decompress((shared / "t10k-images-idx3-ubyte.gz").read_bytes()))
    payload[5000] ^= 0x01
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(payload), compresslevel=1))
    # Truncated gzip for the labels.
    labels_gz = (shared / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (bad / "t10k-labels-idx1-ubyte.gz").write_bytes(labels_gz[: len(labels_gz) // 2])
    return good.parent, bad.parent


def test_download_rejects_corrupt_mirror_and_falls_back(tmp_path: Path, mnist_dir: Path, t10k) -> None:
    good, bad = _mirror_dirs(tmp_path, mnist_dir)
    cache = tmp_path / "cache"
    missing = tmp_path / "missing"  # 404 from the good server
    missing.mkdir()
    with _http_server(bad) as bad_url, _http_server(good) as good_url, _http_server(missing) as missing_url:
        images, labels = datasets.load_mnist(
            "test", cache_dir=cache, mirrors=[bad_url, missing_url, good_url]
        )
    np.testing.assert_array_equal(images, t10k[0])
    np.testing.assert_array_equal(labels, t10k[1])
    # Only the verified files are cached, byte for byte the good ones; no temp files.
    assert sorted(p.name for p in cache.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    for p in cache.iterdir():
        assert p.read_bytes() == (good / "mnist" / p.name).read_bytes()
    # Cached files are used without any network access.
    images2, _ = datasets.load_mnist("test", cache_dir=cache, mirrors=[_closed_port_url()])
    np.testing.assert_array_equal(images2, images)


def test_download_all_corrupt_leaves_cache_empty(tmp_path: Path, mnist_dir: Path) -> None:
    _, bad = _mirror_dirs(tmp_path, mnist_dir)
    cache = tmp_path / "cache"
    with _http_server(bad) as bad_url:
        with pytest.raises(datasets.DownloadError, match="checksum mismatch"):
            datasets.load_mnist("test", cache_dir=cache, mirrors=[bad_url])
    assert list(cache.iterdir()) == []


def test_download_offline_error_is_helpful(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = _closed_port_url()
    monkeypatch.setenv("NEMM_CACHE", str(tmp_path / "envcache"))
    with pytest.raises(datasets.DownloadError) as info:
        datasets.load_mnist("test", mirrors=[url, url + "alt/"])
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "offline" in msg and "NEMM_DATA" in msg and url in msg and url + "alt/" in msg
    assert "t10k-images-idx3-ubyte.gz" in msg
    assert [p for p in (tmp_path / "envcache").iterdir()] == []


# --------------------------------------------------------------------------- planted machine


def test_planted_onehot_kernel_is_the_exact_posterior() -> None:
    """pi(z) A(z, x) = p(x) Abar(x, z) for every x of a small D: detailed balance, so pi is stationary."""
    import itertools

    pytest.importorskip("nemm._core")

    from nemm.datasets import planted_model
    from nemm.exact import backward_kernel

    m, pi = planted_model(7, 3, 11, weights=[0.5, 0.3, 0.2])
    X = np.array(list(itertools.product([0, 1], repeat=7)), dtype=np.uint8)
    log_joint = np.log(pi)[None, :] + m.log_A(X)  # (2^D, L)
    post = np.exp(log_joint - np.logaddexp.reduce(log_joint, axis=1, keepdims=True))
    Abar = backward_kernel(m.wbar_, m.abar_, m.xbar_, X, "onehot", "softmax", True)
    np.testing.assert_allclose(Abar, post, rtol=1e-10, atol=1e-14)
    # Hence the stationary distribution of M(z', z) = sum_x A(z', x) Abar(x, z) is pi.
    M = np.exp(m.log_A(X)).T @ Abar
    np.testing.assert_allclose(pi @ M, pi, rtol=1e-10)


def test_planted_data_are_deterministic_and_follow_the_prototypes() -> None:
    pytest.importorskip("nemm._core")
    from nemm.datasets import planted, planted_model

    X, z = planted(200, 4, 4000, 5)
    X2, z2 = planted(200, 4, 4000, 5)
    assert X.dtype == np.uint8 and X.shape == (4000, 200) and z.shape == (4000,)
    assert (
        np.array_equal(X, X2) and np.array_equal(z, z2) and not np.array_equal(planted(200, 4, 4000, 6)[0], X)
    )
    m, pi = planted_model(200, 4, 5)
    mu = m.mean_images()  # (L, D): sigmoid(+-2)
    assert np.allclose(
        np.sort(np.unique(np.round(mu, 6))), np.round([1 / (1 + np.exp(2)), 1 / (1 + np.exp(-2))], 6)
    )
    for k in range(4):
        rows = X[z == k]
        assert abs(len(rows) / 4000 - pi[k]) < 0.03
        # Per-pixel means within 5 standard errors of the prototype's.
        assert np.all(np.abs(rows.mean(axis=0) - mu[k]) < 5 * np.sqrt(mu[k] * (1 - mu[k]) / len(rows)))
    Xb, zb = planted(30, 16, 500, 2, hidden="binary")
    assert Xb.shape == (500, 30) and zb.min() >= 0 and zb.max() < 2**16
    with pytest.raises(ValueError, match="L <= 16"):
        planted(30, 17, 5, 0, hidden="binary")
    with pytest.raises(ValueError, match="weights"):
        planted(30, 3, 5, 0, weights=[1, -1, 1])


def test_a_machine_recovers_the_planted_log_likelihood() -> None:
    """Trained on planted one-hot data with the planted L, a Machine reaches the planted model's exact ln p."""
    pytest.importorskip("nemm._core")
    import nemm
    from nemm.datasets import planted, planted_model

    D, L = 64, 4
    X, _ = planted(D, L, 3000, 7)
    truth, pi = planted_model(D, L, 7)
    lp_true = float(np.mean(truth.score_samples(X, pbar=pi)))
    m = nemm.Machine(L, n_epochs=40, random_state=0).fit(X)
    lp = float(np.mean(m.score_samples(X, n_steps=20_000)))
    # Per data point ln p is about -D * 0.37 = -23.5 nats; recovery within 0.25 nats (the planted
    # model is not the maximum-likelihood fit of a finite sample, so lp may exceed lp_true a little).
    assert abs(lp - lp_true) < 0.25, (lp, lp_true)
    # A machine with too few states cannot: the test can fail.
    small = nemm.Machine(2, n_epochs=40, random_state=0).fit(X)
    assert float(np.mean(small.score_samples(X, n_steps=20_000))) < lp_true - 3
