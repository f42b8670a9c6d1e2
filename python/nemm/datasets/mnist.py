"""MNIST: the shipped digits, the full splits (download, mirrors, checksums, cache) and the paper's selection."""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
from tqdm.auto import tqdm

from .idx import PathLike, _find_file, read_idx

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


class _EmbeddedInfo(TypedDict):
    digits: tuple[int, ...]
    per_class: int
    threshold: int
    split: str


_EMBEDDED: _EmbeddedInfo = {"digits": (0, 1, 2), "per_class": 1000, "threshold": 127, "split": "test"}


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
        return (Path(__file__).resolve().parent.parent / "data" / "mnist012.npz").read_bytes()


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
# MNIST: local directories, cache and download
# --------------------------------------------------------------------------


def _split_stems(split: str) -> tuple[str, str]:
    """Return the image and label file stems of an MNIST split."""
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    prefix = _SPLIT_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


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
            with tqdm(
                total=int(size) if size and size.isdigit() else None,
                desc=url.rsplit("/", 1)[-1],
                unit="B",
                unit_scale=True,
                leave=False,
                disable=None,
            ) as bar:
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
        raise ValueError(
            f"{where}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
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


#: The ways to turn gray levels into bits.
BINARIZE_METHODS: tuple[str, ...] = ("threshold", "stochastic")
_DEFAULT_THRESHOLD = 127.0


def _check_binarize_options(method: str, threshold: float | None, seed: int | None) -> float | None:
    """The threshold to use (None for ``"stochastic"``), after checking the options agree."""
    if method not in BINARIZE_METHODS:
        raise ValueError(
            f"the binarization must be one of {', '.join(map(repr, BINARIZE_METHODS))}, got {method!r}"
        )
    if method == "stochastic":
        if threshold is not None:
            raise ValueError(
                "a threshold applies only to binarize='threshold'; "
                "binarize='stochastic' turns each pixel on with probability gray/255"
            )
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        return None
    if seed is not None:
        raise ValueError("a seed applies only to binarize='stochastic'; thresholding draws nothing")
    threshold = _DEFAULT_THRESHOLD if threshold is None else float(threshold)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite, got {threshold}")
    return threshold


def binarize(
    images: np.ndarray,
    threshold: float | None = None,
    *,
    method: str = "threshold",
    seed: int | None = None,
) -> np.ndarray:
    """Binarize and flatten images, by a threshold (default) or stochastically.

    Parameters
    ----------
    images : array_like, shape (N, ...)
        Gray-level images, e.g. (N, 28, 28) or (N, 784). For ``method="stochastic"`` they must
        be gray levels in [0, 255].
    threshold : float, optional
        ``method="threshold"``: pixels strictly above it become 1, the others 0 (default 127,
        the paper's "gray level > 50%"). Not allowed with ``method="stochastic"``.
    method : {"threshold", "stochastic"}
        ``"stochastic"`` turns each pixel on independently with probability gray/255, the
        binarization of most published binarized-MNIST likelihoods; every call draws anew.
    seed : int, optional
        Seed of the stochastic draw: the same seed gives the same bits. ``None`` draws from
        fresh operating-system entropy (not reproducible). Not allowed with ``"threshold"``.

    Returns
    -------
    numpy.ndarray of uint8, shape (N, D)
        D is the product of the trailing dimensions.

    Raises
    ------
    TypeError
        If the images are not real numbers.
    ValueError
        If they have fewer than two dimensions or contain NaN, the threshold is not finite,
        the method is unknown, a threshold is given with ``"stochastic"`` or a seed with
        ``"threshold"``, or stochastic gray levels lie outside [0, 255].
    """
    arr = np.asarray(images)
    if (
        arr.dtype == object
        or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_)
        or np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise TypeError(f"images must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim < 2:
        raise ValueError(f"images must have shape (N, ...) with at least two dimensions, got {arr.shape}")
    threshold = _check_binarize_options(method, threshold, seed)
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError("images contain NaN")
    flat = arr.reshape(arr.shape[0], -1)
    if threshold is not None:
        return np.ascontiguousarray((flat > threshold).astype(np.uint8))
    if flat.size and (flat.min() < 0 or flat.max() > 255):
        raise ValueError(
            f"stochastic binarization needs gray levels in [0, 255], "
            f"got values from {flat.min()} to {flat.max()}"
        )
    # One uniform per pixel, compared with gray/255: P(on) = gray/255 exactly for 0 and 255 too.
    uniforms = np.random.default_rng(seed).random(flat.shape)
    return np.ascontiguousarray((uniforms < flat / 255.0).astype(np.uint8))


# The loaders name their option ``binarize`` (the spelling), which hides the function there.
_binarize = binarize


def load_digits(
    digits: Iterable[int] = (0, 1, 2),
    per_class: int | None = 1000,
    *,
    split: str = "test",
    directory: PathLike | None = None,
    threshold: float | None = None,
    binarize: str = "threshold",
    seed: int | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Binarized MNIST digits following the paper's protocol.

    Takes the first ``per_class`` examples of each of ``digits`` from an
    MNIST split, in their original order, and binarizes them.  When the
    request is covered by the shipped data (test split, threshold 127,
    digits among 0, 1, 2, ``per_class`` at most 1000, no ``directory`` and
    no ``NEMM_DATA``) nothing is read from disk or the network; stochastic
    binarization always reads the gray levels.

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
    threshold : float, optional
        ``binarize="threshold"``: pixel > threshold -> 1 (default 127).
    binarize : {"threshold", "stochastic"}
        ``"stochastic"``: each pixel on with probability gray/255 (see :func:`binarize`).
    seed : int, optional
        Seed of the stochastic draw (only with ``binarize="stochastic"``).
    download : bool
        Allow downloading into the cache (see :func:`load_mnist`).

    Returns
    -------
    X : numpy.ndarray of uint8, shape (N, 784)
    y : numpy.ndarray of uint8, shape (N,)

    Raises
    ------
    ValueError
        Besides the selection errors: an unknown ``binarize``, a ``threshold`` with
        ``"stochastic"`` or a ``seed`` with ``"threshold"``.
    """
    wanted = _as_digit_tuple(digits)
    _check_mnist_digits(wanted)  # before any download
    limit = _check_per_class(per_class)
    cut = _check_binarize_options(binarize, threshold, seed)
    use_embedded = (
        directory is None
        and not os.environ.get("NEMM_DATA")
        and split == _EMBEDDED["split"]
        and cut == _EMBEDDED["threshold"]
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
    return _binarize(images, cut, method=binarize, seed=seed), labels
