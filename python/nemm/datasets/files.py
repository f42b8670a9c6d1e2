"""User data: .npy/.npz files (never unpickled), folders of PNG images (Pillow) or of IDX files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .._checks import as_binary_matrix
from .._io import check_readable
from .idx import PathLike, _find_file, read_idx
from .mnist import _binarize, _check_binarize_options

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
    """ "npy" or "npz" from the file's first bytes (never from its name), else None."""
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
        return ValueError(
            f"{where} holds Python objects (an object array), which nemm never unpickles; "
            "save the data as a numeric array of 0/1 values"
        )
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
    check_readable(path)
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
        raise ImportError(
            f"{path} holds a scipy.sparse matrix (written by scipy.sparse.save_npz); reading it "
            "needs scipy: pip install scipy"
        ) from exc
    try:
        return scipy.sparse.load_npz(path)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(
            f"{path} looks like a scipy.sparse file (arrays format, shape, data) but cannot be "
            f"read as one: {exc}"
        ) from exc


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
                raise ValueError(
                    f"{path} holds several arrays {names} and none is named "
                    f"{', '.join(NPZ_KEYS[:-1])} or {NPZ_KEYS[-1]}; choose one with key= "
                    "(on the command line: --key)"
                )
            chosen = found[0]
        try:
            return npz[chosen]
        except ValueError as exc:
            raise _pickle_refused(exc, f"array {chosen!r} of {path}") from exc


def _load_png_dir(
    directory: Path, files: list[Path], threshold: float | None, method: str, seed: int | None
) -> np.ndarray:
    images: list[np.ndarray] = []
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
    return _binarize(np.stack(images), threshold, method=method, seed=seed)


def load_binary(
    path: PathLike,
    *,
    threshold: float | None = None,
    binarize: str = "threshold",
    seed: int | None = None,
    key: str | None = None,
) -> np.ndarray:
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
    threshold : float, optional
        Binarization threshold for images (pixel > threshold -> 1; default 127).
    binarize : {"threshold", "stochastic"}
        How images become bits; ``"stochastic"`` turns each pixel on with probability
        gray/255 (see :func:`nemm.datasets.binarize`). Arrays of 0/1 are never redrawn.
    seed : int, optional
        Seed of the stochastic draw (only with ``binarize="stochastic"``).
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
        names the file.  Also an unknown ``binarize``, a ``threshold`` with
        ``"stochastic"`` or a ``seed`` with ``"threshold"``.
    ImportError
        If ``path`` is a folder of PNG images and Pillow is not installed, or
        a scipy.sparse ``.npz`` and scipy is not installed.
    """
    threshold = _check_binarize_options(binarize, threshold, seed)
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such file or directory: {path}")
    check_readable(path)
    if path.is_dir():
        for stem in ("t10k-images-idx3-ubyte", "train-images-idx3-ubyte"):
            found = _find_file(path, stem)
            if found is not None:
                images = read_idx(found)
                if images.ndim < 2:
                    raise ValueError(f"{found}: expected images, got an array of shape {images.shape}")
                return _binarize(images, threshold, method=binarize, seed=seed)
        pngs = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png")
        if not pngs:
            raise ValueError(f"{path} contains neither PNG images nor MNIST IDX image files")
        return _load_png_dir(path, pngs, threshold, binarize, seed)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: unsupported file type {suffix!r} (expected .npy, .npz or a directory)")
    kind = _file_kind(path)  # the content decides, as for numpy; the name only admits the file
    if kind is None:
        why = (
            "it does not start with the NumPy magic bytes" if suffix == ".npy" else "it is not a zip archive"
        )
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
