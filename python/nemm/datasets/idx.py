"""MNIST IDX files: reading (gzip or not) and finding them in a folder."""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Union

import numpy as np

from .._io import check_readable

PathLike = Union[str, "os.PathLike[str]"]
_GZIP_MAGIC = b"\x1f\x8b"


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
    check_readable(path)
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


def _find_file(directory: Path, stem: str) -> Path | None:
    """Return ``stem.gz`` or ``stem`` inside ``directory``, if present."""
    for name in (f"{stem}.gz", stem):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None
