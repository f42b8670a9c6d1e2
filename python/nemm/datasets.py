"""Binary data sets: the shipped MNIST digits, MNIST IDX files and user data.

nemm works on binary vectors.  This module provides

* :func:`embedded_digits` -- 2980 binarized MNIST test digits 0, 1, 2 that
  ship with the package (no download, no network);
* :func:`load_mnist` -- the full MNIST splits, read from a directory given by
  the user or the ``NEMM_DATA`` environment variable, or downloaded once into
  a cache from the public mirrors with checksums checked;
* :func:`load_digits` -- the paper's protocol (first ``per_class`` examples of
  the chosen digits, binarized), from the embedded data when it suffices;
* :func:`load_binary` -- user data from ``.npy``/``.npz`` files (dense or
  ``scipy.sparse.save_npz``), a directory of PNG images or a directory of IDX files;
* :func:`load_npy` -- one ``.npy`` array, never unpickled;
* the building blocks :func:`read_idx`, :func:`select_digits` and
  :func:`binarize`.

Only numpy is required; reading a folder of PNG images needs Pillow (the ``images``
extra: ``pip install "nemm[images]"``).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import math
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from tqdm.auto import tqdm

from ._checks import as_binary_matrix

if TYPE_CHECKING:  # pragma: no cover - typing only
    from nemm.machine import Machine

__all__ = [
    "DownloadError",
    "MNIST_MIRRORS",
    "NPZ_KEYS",
    "binarize",
    "embedded_digits",
    "load_binary",
    "load_digits",
    "load_mnist",
    "load_npy",
    "planted",
    "planted_model",
    "read_idx",
    "select_digits",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Public mirrors of the MNIST gzip files, tried in order.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# MD5 of the *uncompressed* IDX files.  The gzip bytes are not stable: the
# copies in ../shared were re-compressed and do not match the widely quoted
# gzip checksums (f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...), while
# their payloads do match these.  Checking the payload accepts any faithful
# copy and still rejects every corrupted one.
_MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_DOWNLOAD_TIMEOUT_S = 30.0
_EMBEDDED_FORMAT = "nemm-embedded-digits"
_EMBEDDED_VERSION = 1
_EMBEDDED = {"digits": (0, 1, 2), "per_class": 1000, "threshold": 127, "split": "test"}
_GZIP_MAGIC = b"\x1f\x8b"


class DownloadError(RuntimeError):
    """Raised when the MNIST files could not be fetched from any mirror."""


# --------------------------------------------------------------------------
# Embedded digits
# --------------------------------------------------------------------------


def _embedded_bytes() -> bytes:
    """Return the raw bytes of the shipped ``mnist012.npz``."""
    from importlib.resources import files

    try:
        return (files("nemm") / "data" / "mnist012.npz").read_bytes()
    except Exception:
        # importlib.resources imports the package; when that fails (e.g. the
        # compiled core is missing and this module was loaded on its own),
        # the file still sits next to this module.
        return (Path(__file__).resolve().parent / "data" / "mnist012.npz").read_bytes()


@functools.lru_cache(maxsize=1)
def _embedded_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Decode the shipped digits once; the arrays are made read-only."""
    try:
        raw = _embedded_bytes()
    except OSError as exc:
        raise FileNotFoundError(
            "the embedded digits file nemm/data/mnist012.npz is missing from this installation"
        ) from exc
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        missing = {"bits", "labels", "meta"} - set(npz.files)
        if missing:
            raise ValueError(f"embedded digits file lacks arrays {sorted(missing)}")
        try:
            meta = json.loads(str(npz["meta"]))
        except json.JSONDecodeError as exc:
            raise ValueError("embedded digits file has unreadable metadata") from exc
        if meta.get("format") != _EMBEDDED_FORMAT or meta.get("version") != _EMBEDDED_VERSION:
            raise ValueError(
                f"embedded digits file has format {meta.get('format')!r} version {meta.get('version')!r}; "
                f"this nemm expects {_EMBEDDED_FORMAT!r} version {_EMBEDDED_VERSION} "
                "(regenerate it with tools/make_embedded_data.py)"
            )
        n_features = int(meta["n_features"])
        X = np.unpackbits(npz["bits"], axis=1, count=n_features)
        y = np.asarray(npz["labels"], dtype=np.uint8)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"embedded digits file is inconsistent: {X.shape[0]} images, {y.shape[0]} labels")
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def embedded_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return the 2980 binarized MNIST digits shipped with nemm.

    They are the first 1000 zeros, ones and twos of the MNIST test split (the
    split has only 980 zeros), in their original interleaved order, with
    pixels binarized as gray level > 127.

    Returns
    -------
    X : numpy.ndarray of uint8, shape (2980, 784)
        Images of 0/1 values, rows are 28 x 28 images in row-major order.
    y : numpy.ndarray of uint8, shape (2980,)
        Digit labels (980 zeros, 1000 ones, 1000 twos).

    Notes
    -----
    The arrays are fresh copies: modifying them does not affect later calls.
    MNIST is by Y. LeCun, C. Cortes and C. J. C. Burges (CC BY-SA 3.0).
    """
    X, y = _embedded_arrays()
    return X.copy(), y.copy()


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------

# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def _read_maybe_gzip(path: Path) -> bytes:
    """Return the content of ``path``, decompressed if it is gzip."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    if path.name.endswith(".gz") or head == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return path.read_bytes()


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), optionally gzip-compressed.

    Parameters
    ----------
    path : str or path-like
        File to read.  It is decompressed when its name ends in ``.gz`` or
        it starts with the gzip magic bytes.

    Returns
    -------
    numpy.ndarray
        Array with the file's dimensions and element type, in native byte
        order (``uint8`` for MNIST).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a well-formed IDX file: bad magic, unknown type
        code, zero dimensions, or a payload that is truncated or too long.
    """
    path = Path(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    if raw[0:2] != b"\0\0":
        raise ValueError(f"{path}: bad IDX magic {raw[0:4].hex()} (expected 0000TTNN)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{path}: IDX file declares zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[code])
    # Python ints: a product of up to 255 32-bit dimensions must not wrap around (int64 would).
    expected = math.prod(dims) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing data"
        raise ValueError(
            f"{path}: IDX payload {what}: {actual} bytes for dimensions {tuple(dims)}, expected {expected}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    # astype copies, giving a writable native-endian array.
    return arr.astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------
# MNIST: local directories, cache and download
# --------------------------------------------------------------------------


def _split_stems(split: str) -> tuple[str, str]:
    """Return the image and label file stems of an MNIST split."""
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    prefix = _SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find_file(directory: Path, stem: str) -> Path | None:
    """Return ``stem.gz`` or ``stem`` inside ``directory``, if present."""
    for name in (f"{stem}.gz", stem):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _default_cache_dir() -> Path:
    env = os.environ.get("NEMM_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "nemm" / "mnist"


def _payload_md5(path: Path) -> str:
    """MD5 of the decompressed content of a gzip file, streamed."""
    digest = hashlib.md5()
    with gzip.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{type(exc.reason).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _fetch_one(url: str, dest: Path, timeout: float) -> None:
    """Copy ``url`` into the (already created) file ``dest``."""
    if not url.lower().startswith(("http://", "https://", "file://")):
        raise ValueError(f"unsupported URL scheme in {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": "nemm"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            size = response.headers.get("Content-Length")
            # disable=None: a bar on terminals only, silent in logs and pipes.
            with tqdm(total=int(size) if size and size.isdigit() else None, desc=url.rsplit("/", 1)[-1],
                      unit="B", unit_scale=True, leave=False, disable=None) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        exc.close()  # the error carries an open response; close it now
        raise


def _download(stem: str, cache: Path, mirrors: Sequence[str], timeout: float) -> Path:
    """Download ``stem.gz`` into ``cache``, trying each mirror in turn.

    Each attempt goes to its own temporary file in ``cache``; a file is moved
    into place with ``os.replace`` only after its checksum matched, so the
    cache never holds partial or corrupted data, even with concurrent runs.
    """
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{stem}.gz"
    want = _MNIST_MD5[stem]
    errors: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + f"/{stem}.gz"
        fd, tmp_name = tempfile.mkstemp(dir=cache, prefix=f".{stem}.", suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _fetch_one(url, tmp, timeout)
            try:
                got = _payload_md5(tmp)
            except (OSError, EOFError, zlib.error) as exc:
                raise ValueError(f"not valid gzip data ({exc})") from exc
            if got != want:
                raise ValueError(f"checksum mismatch: MD5 of content {got}, expected {want}")
            os.replace(tmp, target)
            return target
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            errors.append(f"  {url}: {_describe(exc)}")
        finally:
            if tmp.exists():
                tmp.unlink()
    tried = "\n".join(errors) if errors else "  (no mirrors given)"
    raise DownloadError(
        f"could not download {stem}.gz from any MNIST mirror; this machine seems to be offline "
        f"or the mirrors are unavailable. Attempts:\n{tried}\n"
        "Download the four MNIST files (train/t10k images-idx3 and labels-idx1, .gz or not) "
        "by other means and set the NEMM_DATA environment variable to their directory, "
        "or pass directory=... (for digits 0-2 of the test split, nemm.datasets.embedded_digits() "
        "needs no download)."
    )


def _check_mnist_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{where}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{where}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{where}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{where}: labels must be digits 0-9, found {int(labels.max())}")


def load_mnist(
    split: str = "test",
    directory: PathLike | None = None,
    *,
    download: bool = True,
    cache_dir: PathLike | None = None,
    mirrors: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST split as gray-level images and labels.

    The files are looked up in, by priority: ``directory``; the directory in
    the ``NEMM_DATA`` environment variable; a cache directory (``cache_dir``,
    else ``NEMM_CACHE``, else ``~/.cache/nemm/mnist``), into which they are
    downloaded when missing.  Files may be gzip-compressed or not:
    ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.

    Parameters
    ----------
    split : {"test", "train"}
        Which split to load (``test`` is the 10,000-digit t10k split).
    directory : str or path-like, optional
        Directory holding the IDX files.  Nothing is downloaded into it.
    download : bool
        In cache mode, download missing files from the mirrors.
    cache_dir : str or path-like, optional
        Cache directory to use instead of ``NEMM_CACHE`` or the default.
    mirrors : sequence of str, optional
        Base URLs tried in order (default :data:`MNIST_MIRRORS`).

    Returns
    -------
    images : numpy.ndarray of uint8, shape (N, 28, 28)
        Gray levels 0-255.
    labels : numpy.ndarray of uint8, shape (N,)

    Raises
    ------
    FileNotFoundError
        If a user-given directory (argument or ``NEMM_DATA``) lacks the files,
        or the cache lacks them and ``download`` is False.
    DownloadError
        If a missing file could not be downloaded from any mirror.
    ValueError
        If a file is malformed.

    Notes
    -----
    Downloads are checked against the MD5 of the uncompressed standard
    files; a corrupted download is deleted and the next mirror is tried.
    """
    stems = _split_stems(split)
    user_dir = directory if directory is not None else (os.environ.get("NEMM_DATA") or None)
    paths: list[Path] = []
    if user_dir is not None:
        base = Path(user_dir).expanduser()
        source = "directory" if directory is not None else "NEMM_DATA directory"
        for stem in stems:
            found = _find_file(base, stem)
            if found is None:
                expected = ", ".join(f"{s}[.gz]" for s in stems)
                raise FileNotFoundError(
                    f"MNIST {split} files not found in {source} {base}: expected {expected}"
                )
            paths.append(found)
    else:
        cache = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_dir()
        mirror_list = tuple(MNIST_MIRRORS if mirrors is None else mirrors)
        for stem in stems:
            found = _find_file(cache, stem)
            if found is None:
                if not download:
                    raise FileNotFoundError(
                        f"MNIST file {stem}[.gz] not in cache {cache} and download=False; "
                        "pass download=True, or set NEMM_DATA to a directory holding the files"
                    )
                found = _download(stem, cache, mirror_list, _DOWNLOAD_TIMEOUT_S)
            paths.append(found)
    images, labels = (read_idx(p) for p in paths)
    _check_mnist_pair(images, labels, f"MNIST {split} files {paths[0].parent}")
    return images, labels


# --------------------------------------------------------------------------
# Selection and binarization
# --------------------------------------------------------------------------


def _check_mnist_digits(digits: tuple[int, ...]) -> None:
    bad = [d for d in digits if not 0 <= d <= 9]
    if bad:
        raise ValueError(f"MNIST has the digits 0-9; got {bad[0]} in digits={digits}")


def _as_digit_tuple(digits: Iterable[int]) -> tuple[int, ...]:
    try:
        values = tuple(int(d) for d in digits)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"digits must be an iterable of integers, got {digits!r}") from exc
    if not values:
        raise ValueError("digits must not be empty")
    if len(set(values)) != len(values):
        raise ValueError(f"digits must not repeat, got {values}")
    return values


def _check_per_class(per_class: int | None) -> int | None:
    if per_class is None:
        return None
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive integer or None, got {per_class!r}")
    return int(per_class)


def select_digits(
    images: np.ndarray,
    labels: np.ndarray,
    digits: Iterable[int] = (0, 1, 2),
    per_class: int | None = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the first ``per_class`` examples of each digit, in original order.

    Parameters
    ----------
    images : numpy.ndarray, shape (N, ...)
        Images (any trailing shape).
    labels : numpy.ndarray, shape (N,)
        Integer labels.
    digits : iterable of int
        Digits to keep (distinct).
    per_class : int or None
        At most this many of each digit (fewer when the data has fewer);
        None keeps all.

    Returns
    -------
    images, labels : numpy.ndarray
        The selected rows, interleaved as in the input.

    Raises
    ------
    ValueError
        If the lengths differ or a requested digit does not occur.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    wanted = _as_digit_tuple(digits)
    limit = _check_per_class(per_class)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if images.ndim < 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images.shape[0] if images.ndim else 0} images but {labels.shape[0]} labels")
    keep = np.zeros(labels.shape[0], dtype=bool)
    for d in wanted:
        where = np.flatnonzero(labels == d)
        if where.size == 0:
            raise ValueError(f"digit {d} does not occur in the labels")
        keep[where if limit is None else where[:limit]] = True
    # A boolean mask (not a concatenation per digit) keeps the original order.
    return images[keep], labels[keep]


def binarize(images: np.ndarray, threshold: float = 127) -> np.ndarray:
    """Binarize and flatten images: pixel > ``threshold`` becomes 1.

    Parameters
    ----------
    images : array_like, shape (N, ...)
        Gray-level images, e.g. (N, 28, 28) or (N, 784).
    threshold : float
        Pixels strictly above it become 1, the others 0.

    Returns
    -------
    numpy.ndarray of uint8, shape (N, D)
        D is the product of the trailing dimensions.

    Raises
    ------
    TypeError
        If the images are not real numbers.
    ValueError
        If they have fewer than two dimensions or contain NaN, or the
        threshold is not finite.
    """
    arr = np.asarray(images)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"images must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"images must have shape (N, ...) with at least two dimensions, got {arr.shape}")
    threshold = float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError("images contain NaN")
    return np.ascontiguousarray((arr.reshape(arr.shape[0], -1) > threshold).astype(np.uint8))


def load_digits(
    digits: Iterable[int] = (0, 1, 2),
    per_class: int | None = 1000,
    *,
    split: str = "test",
    directory: PathLike | None = None,
    threshold: float = 127,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Binarized MNIST digits following the paper's protocol.

    Takes the first ``per_class`` examples of each of ``digits`` from an
    MNIST split, in their original order, and binarizes them.  When the
    request is covered by the shipped data (test split, threshold 127,
    digits among 0, 1, 2, ``per_class`` at most 1000, no ``directory`` and
    no ``NEMM_DATA``) nothing is read from disk or the network.

    Parameters
    ----------
    digits : iterable of int
        Digits to keep.
    per_class : int or None
        At most this many of each digit; None keeps all.
    split : {"test", "train"}
        MNIST split.
    directory : str or path-like, optional
        Directory with the IDX files (see :func:`load_mnist`).
    threshold : float
        Binarization threshold (pixel > threshold -> 1).
    download : bool
        Allow downloading into the cache (see :func:`load_mnist`).

    Returns
    -------
    X : numpy.ndarray of uint8, shape (N, 784)
    y : numpy.ndarray of uint8, shape (N,)
    """
    wanted = _as_digit_tuple(digits)
    _check_mnist_digits(wanted)  # before any download
    limit = _check_per_class(per_class)
    use_embedded = (
        directory is None
        and not os.environ.get("NEMM_DATA")
        and split == _EMBEDDED["split"]
        and float(threshold) == _EMBEDDED["threshold"]
        and set(wanted) <= set(_EMBEDDED["digits"])
        and limit is not None
        and limit <= _EMBEDDED["per_class"]
    )
    if use_embedded:
        X, y = _embedded_arrays()
        Xs, ys = select_digits(X, y, wanted, limit)
        return Xs.copy(), ys.copy()
    images, labels = load_mnist(split, directory, download=download)
    images, labels = select_digits(images, labels, wanted, limit)
    return binarize(images, threshold), labels


# --------------------------------------------------------------------------
# PNG images (Pillow, the ``images`` extra)
# --------------------------------------------------------------------------


def _read_png_gray(path: Path) -> np.ndarray:
    """Gray levels of a PNG file, shape (height, width), uint8.

    Gray (with or without alpha) is read as is; colour becomes the rounded mean of R, G and B;
    alpha is dropped, never composited.
    """
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError('reading a folder of PNG images needs Pillow: pip install "nemm[images]"') from exc
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise ValueError(f"not a PNG file (Pillow reads it as {im.format})")
            im.load()
            if im.mode in ("L", "LA"):
                return np.array(im.getchannel(0), dtype=np.uint8)
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        # Pillow reports corrupt files as OSError (UnidentifiedImageError) or SyntaxError.
        raise ValueError(str(exc) or type(exc).__name__) from exc
    return np.rint(rgb.mean(axis=2)).astype(np.uint8)


# --------------------------------------------------------------------------
# User data
# --------------------------------------------------------------------------


def _validated(arr: object, path: Path) -> np.ndarray:
    try:
        return as_binary_matrix(arr, name=f"array in {path}")
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


_NPY_MAGIC = b"\x93NUMPY"
# An npz is a zip archive: it starts with a local file header, or, with no arrays at all, the end record.
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
#: Arrays of an .npz file taken, in this order, when it holds several and no key is given.
NPZ_KEYS = ("X", "x", "data")


def _file_kind(path: Path) -> str | None:
    """"npy" or "npz" from the file's first bytes (never from its name), else None."""
    with open(path, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGICS):
        return "npz"
    return None


def _pickle_refused(exc: ValueError, where: str) -> ValueError:
    """numpy's advice on object arrays ("load it unsafely using allow_pickle=") is not ours to give."""
    if "pickle" in str(exc):
        return ValueError(f"{where} holds Python objects (an object array), which nemm never unpickles; "
                          "save the data as a numeric array of 0/1 values")
    return exc


def load_npy(path: PathLike) -> np.ndarray:
    """Read a ``.npy`` array safely (never unpickling), with messages that name the file.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a ``.npy`` array (checked on its first bytes), is damaged, or holds
        Python objects (which would need unpickling).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    kind = _file_kind(path)
    if kind != "npy":
        why = "it is an .npz archive" if kind == "npz" else "it does not start with the NumPy magic bytes"
        raise ValueError(f"{path} is not a valid .npy file: {why}")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        err = _pickle_refused(exc, str(path))
        if err is exc:
            raise ValueError(f"{path} is a damaged .npy file: {exc}") from exc
        raise err from exc
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path} is a damaged .npy file: {exc}") from exc


def _is_scipy_sparse_npz(names: list[str]) -> bool:
    # scipy.sparse.save_npz writes format, shape, data and the index arrays of the format
    # (indices/indptr, row/col or offsets).
    return {"format", "shape", "data"} <= set(names)


def _load_scipy_sparse(path: Path) -> object:
    try:
        import scipy.sparse
    except ImportError as exc:
        raise ImportError(f"{path} holds a scipy.sparse matrix (written by scipy.sparse.save_npz); reading it "
                          "needs scipy: pip install scipy") from exc
    try:
        return scipy.sparse.load_npz(path)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"{path} looks like a scipy.sparse file (arrays format, shape, data) but cannot be "
                         f"read as one: {exc}") from exc


def _load_npz(path: Path, key: str | None) -> object:
    # Our own handle: numpy leaks its own when the archive is corrupt.
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
        names = list(npz.files)
        if not names:
            raise ValueError(f"{path} contains no arrays")
        if key is not None:
            if key not in names:
                raise ValueError(f"{path} has no array named {key!r}; it holds {names}")
            chosen = key
        elif _is_scipy_sparse_npz(names):
            return _load_scipy_sparse(path)
        elif len(names) == 1:
            chosen = names[0]
        else:
            found = [k for k in NPZ_KEYS if k in names]
            if not found:
                raise ValueError(f"{path} holds several arrays {names} and none is named "
                                 f"{', '.join(NPZ_KEYS[:-1])} or {NPZ_KEYS[-1]}; choose one with key= "
                                 "(on the command line: --key)")
            chosen = found[0]
        try:
            return npz[chosen]
        except ValueError as exc:
            raise _pickle_refused(exc, f"array {chosen!r} of {path}") from exc


def _load_png_dir(directory: Path, files: list[Path], threshold: float) -> np.ndarray:
    images = []
    for f in files:
        try:
            img = _read_png_gray(f)
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot read PNG {f}: {exc}") from exc
        if images and img.shape != images[0].shape:
            raise ValueError(
                f"PNG images in {directory} differ in size: {files[0].name} is {images[0].shape}, "
                f"{f.name} is {img.shape}"
            )
        images.append(img)
    return binarize(np.stack(images), threshold)


def load_binary(path: PathLike, *, threshold: float = 127, key: str | None = None) -> np.ndarray:
    """Load a user data set as a binary matrix.

    Parameters
    ----------
    path : str or path-like
        One of:

        * a ``.npy`` file holding a 2-D array of 0/1 values;
        * a ``.npz`` file: the array ``key``, else its only array, else the first of
          ``X``, ``x``, ``data`` (:data:`NPZ_KEYS`); a file written by
          ``scipy.sparse.save_npz`` is read as that sparse matrix (needs scipy);
        * a directory of ``.png`` files (gray or colour, all the same size;
          needs Pillow), read in name order, colour converted to gray by the
          rounded mean of R, G and B, binarized and flattened;
        * a directory with MNIST IDX files: the binarized test images (the
          training images when only those are present).
    threshold : float
        Binarization threshold for images (pixel > threshold -> 1).
    key : str, optional
        Array name inside a ``.npz`` file.

    Returns
    -------
    numpy.ndarray of uint8, shape (N, D)
        Rows of 0/1 values.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the content is not usable: not an .npy/.npz file (judged by its
        first bytes), an .npz without arrays or with several and none chosen,
        object arrays (never unpickled), wrong dimensions, values other than 0
        and 1, NaN, no images in a directory, unreadable files.  The message
        names the file.
    ImportError
        If ``path`` is a folder of PNG images and Pillow is not installed, or
        a scipy.sparse ``.npz`` and scipy is not installed.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    if path.is_dir():
        for stem in ("t10k-images-idx3-ubyte", "train-images-idx3-ubyte"):
            found = _find_file(path, stem)
            if found is not None:
                images = read_idx(found)
                if images.ndim < 2:
                    raise ValueError(f"{found}: expected images, got an array of shape {images.shape}")
                return binarize(images, threshold)
        pngs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png")
        if not pngs:
            raise ValueError(f"{path} contains neither PNG images nor MNIST IDX image files")
        return _load_png_dir(path, pngs, threshold)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: unsupported file type {suffix!r} (expected .npy, .npz or a directory)")
    kind = _file_kind(path)  # the content decides, as for numpy; the name only admits the file
    if kind is None:
        why = "it does not start with the NumPy magic bytes" if suffix == ".npy" else "it is not a zip archive"
        raise ValueError(f"{path} is not a valid {suffix} file: {why}")
    if kind == "npy":
        return _validated(load_npy(path), path)
    try:
        arr = _load_npz(path, key)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is a damaged .npz archive: {exc}") from exc
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"cannot read {path}: {exc}") from exc
    return _validated(arr, path)


# --------------------------------------------------------------------------
# Synthetic data from a planted machine
# --------------------------------------------------------------------------


def planted_model(
    D: int,
    L: int,
    seed: int,
    *,
    hidden: str = "onehot",
    separation: float = 2.0,
    weights: Sequence[float] | None = None,
) -> tuple["Machine", np.ndarray]:
    """The planted machine behind :func:`planted` and its stationary hidden distribution.

    Every hidden unit gets a random prototype: a uniformly random sign pattern
    ``s in {-1, +1}^D``, and ``w[:, alpha] = separation * s``, so a one-hot state
    draws each pixel as 1 with probability ``sigmoid(+-separation)`` (0.88 or 0.12
    by default) and two prototypes differ in about D/2 pixels: the states are well
    separated for any D of a few dozen or more.

    * ``hidden="onehot"``: ``a = 0``, and the x -> z kernel is the exact posterior
      of the states, ``Abar(x, z) = pi(z) A(z, x) / sum_z' pi(z') A(z', x)``
      (``wbar = w.T``, ``abar(z) = ln pi(z) - sum_i ln(1 + exp(w_iz)) + wbar_z . xbar``,
      centered on ``xbar = 1/2``). Then ``pi(z) A(z, x) = p(x) Abar(x, z)`` holds
      exactly: the chain obeys detailed balance and its stationary hidden
      distribution is exactly ``pi`` (uniform unless ``weights`` is given), so
      ``ln p(x) = logsumexp_z [ln pi(z) + log A(z, x)]`` (appendix A3) is exact.
    * ``hidden="binary"``: L independent hidden bits, ``z`` uniform over the
      ``2**L`` states, field ``w z + a`` with ``a = -w.sum(axis=1) / 2`` (symmetric
      around zero). The returned machine's x -> z kernel is the factorized
      (mean-field) approximation ``wbar = w.T``; the data of :func:`planted` are
      drawn from the uniform prior, and ``pi`` is that uniform prior.

    Parameters
    ----------
    D : int
        Visible bits.
    L : int
        Hidden states (one-hot) or hidden bits (binary, at most 16 so that ``pi`` is a vector).
    seed : int
        Seed of the prototypes (the data of :func:`planted` use a derived stream).
    hidden : {"onehot", "binary"}
    separation : float
        Magnitude of the weights (positive).
    weights : sequence of float, optional
        One-hot only: ``pi``, the mixing weights of the states (positive; normalized here).

    Returns
    -------
    machine : Machine
        Ready to sample and score (``machine.score_samples(X, pbar=pi)`` is the exact ln p).
    pi : numpy.ndarray, shape (L,) or (2**L,)
        Its stationary hidden distribution (one-hot) or the prior of the data (binary).
    """
    from nemm._checks import as_float, as_int, as_seed
    from nemm.machine import Machine

    D = as_int(D, "D", minimum=1)
    L = as_int(L, "L", minimum=1)
    seed = as_seed(seed, "seed")
    if seed is None:
        raise TypeError("seed must be an integer: the planted machine is fixed by it")
    sep = as_float(separation, "separation", lower=0.0)
    if hidden not in ("onehot", "binary"):
        raise ValueError(f"hidden must be 'onehot' or 'binary', got {hidden!r}")
    if hidden == "onehot" and L < 2:
        raise ValueError("a one-hot planted machine needs L >= 2")
    if hidden == "binary" and L > 16:
        raise ValueError(f"a binary planted machine supports L <= 16 (2**L prior states), got {L}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x504C414E]))  # "PLAN": the prototype stream
    w = sep * (2.0 * rng.integers(0, 2, size=(D, L)) - 1.0)
    xbar = np.full(D, 0.5)
    if hidden == "onehot":
        if weights is None:
            pi = np.full(L, 1.0 / L)
        else:
            pi = np.asarray(weights, dtype=np.float64)
            if pi.shape != (L,) or not np.isfinite(pi).all() or (pi <= 0).any():
                raise ValueError(f"weights must be {L} positive finite numbers, got {weights!r}")
            pi = pi / pi.sum()
        a = np.zeros(D)
        # ln(1 + e^w) in the log domain: logaddexp(0, w).
        abar = np.log(pi) - np.logaddexp(0.0, w).sum(axis=0) + w.T @ xbar
        m = Machine.from_params(w, a, w.T.copy(), abar, xbar, hidden="onehot", centered=True, random_state=seed)
        return m, pi
    if weights is not None:
        raise ValueError("weights apply to one-hot planted machines only")
    a = -0.5 * w.sum(axis=1)
    m = Machine.from_params(w, a, w.T.copy(), np.zeros(L), xbar, hidden="binary", centered=True,
                            random_state=seed)
    return m, np.full(2**L, 2.0**-L)


def planted(
    D: int,
    L: int,
    n: int,
    seed: int,
    *,
    hidden: str = "onehot",
    separation: float = 2.0,
    weights: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary data drawn from a planted machine (:func:`planted_model`), for tests of scale and recovery.

    Each row is an independent draw of the planted model's stationary pair:
    ``z ~ pi``, then ``x ~ A(z, .)`` (independent pixels with means
    ``sigmoid(w z + a)``, eq. 14). For one-hot states this is exactly the
    machine's stationary visible distribution, whose ``ln p`` is
    ``planted_model(...)[0].score_samples(X, pbar=pi)``.

    Parameters
    ----------
    D, L, seed, hidden, separation, weights
        As in :func:`planted_model` (the same arguments give the same machine).
    n : int
        Number of rows.

    Returns
    -------
    X : numpy.ndarray of uint8, shape (n, D)
    z : numpy.ndarray of int64, shape (n,)
        The planted hidden state of every row: the index (one-hot) or the code
        ``sum_b z_b 2**b`` (binary).
    """
    from nemm._checks import as_int, check_memory

    n = as_int(n, "n", minimum=1)
    machine, pi = planted_model(D, L, seed, hidden=hidden, separation=separation, weights=weights)
    D = int(machine.n_visible_)
    check_memory(n * D * 2, f"{n} planted rows of {D} bits", "ask for fewer rows")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x44415441]))  # "DATA": the draws
    z = rng.choice(pi.size, size=n, p=pi).astype(np.int64)
    w, a = machine.w_, machine.a_
    X = np.empty((n, D), dtype=np.uint8)
    block = max(1, (1 << 20) // max(D, 1))  # rows per block: float temporaries of 8 MiB, whatever n
    for lo in range(0, n, block):
        zz = z[lo:lo + block]
        if hidden == "onehot":
            h = w[:, zz].T + a
        else:
            bits = ((zz[:, None] >> np.arange(L)) & 1).astype(np.float64)
            h = bits @ w.T + a
        mu = 0.5 * (1.0 + np.tanh(0.5 * h))  # sigmoid without overflow
        X[lo:lo + block] = rng.random(mu.shape) < mu
    return X, z
