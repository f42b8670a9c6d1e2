#!/usr/bin/env python3
"""Build ``python/nemm/data/mnist012.npz``, the digits shipped with nemm.

The file holds the first 1000 zeros, ones and twos of the MNIST test split
(there are only 980 zeros, so 2980 digits in all), binarized at gray level
> 127 and bit-packed, in their original test-split order.

Usage::

    python tools/make_embedded_data.py [MNIST_DIR] [--out PATH]

``MNIST_DIR`` defaults to ``../shared/data/mnist`` beside the repository
(``/work/shared/data/mnist`` on the development machine).  The script is
self-contained (numpy only) so that it does not depend on the compiled core.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_OUT = REPO_ROOT / "python" / "nemm" / "data" / "mnist012.npz"

# MD5 of the *uncompressed* t10k images: gzip bytes differ between mirrors
# (re-compression), the IDX payload does not.
T10K_IMAGES_MD5 = "2646ac647ad5339dbf082846283269ea"
T10K_LABELS_MD5 = "27ae3e4e09519cfbb04c329615203637"

DIGITS = (0, 1, 2)
PER_CLASS = 1000
THRESHOLD = 127

META = {
    "format": "nemm-embedded-digits",
    "version": 1,
    "source": "MNIST test split (t10k), Y. LeCun, C. Cortes, C. J. C. Burges",
    "license": "CC BY-SA 3.0 (MNIST)",
    "threshold": THRESHOLD,
    "n_features": 784,
    "shape": [28, 28],
    "digits": list(DIGITS),
    "per_class": PER_CLASS,
}


def read_raw(directory: Path, stem: str) -> bytes:
    """Return the uncompressed bytes of ``stem`` or ``stem.gz`` in ``directory``."""
    for path, opener in ((directory / f"{stem}.gz", gzip.open), (directory / stem, open)):
        if path.is_file():
            with opener(path, "rb") as fh:
                return fh.read()
    raise FileNotFoundError(f"neither {stem}.gz nor {stem} found in {directory}")


def parse_idx(raw: bytes, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX payload with ``ndim`` dimensions."""
    if len(raw) < 4 or raw[0:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise ValueError("not an unsigned-byte IDX file of the expected rank")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    header = 4 + 4 * ndim
    if len(raw) - header != int(np.prod(dims)):
        raise ValueError(f"IDX payload size {len(raw) - header} does not match dims {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def build(mnist_dir: Path) -> dict[str, np.ndarray]:
    """Return the arrays to store, after checking the source checksums."""
    raw_images = read_raw(mnist_dir, "t10k-images-idx3-ubyte")
    raw_labels = read_raw(mnist_dir, "t10k-labels-idx1-ubyte")
    for name, raw, want in (("t10k images", raw_images, T10K_IMAGES_MD5),
                            ("t10k labels", raw_labels, T10K_LABELS_MD5)):
        got = hashlib.md5(raw).hexdigest()
        if got != want:
            raise ValueError(f"MD5 of uncompressed {name} is {got}, expected {want}")
    images = parse_idx(raw_images, 3)
    labels = parse_idx(raw_labels, 1)
    if images.shape != (10000, 28, 28) or labels.shape != (10000,):
        raise ValueError(f"unexpected t10k shapes {images.shape}, {labels.shape}")

    # First PER_CLASS of each digit, kept in the interleaved test-split order.
    keep = np.zeros(labels.shape, dtype=bool)
    for d in DIGITS:
        keep[np.flatnonzero(labels == d)[:PER_CLASS]] = True
    indices = np.flatnonzero(keep).astype(np.int32)

    X = (images[indices].reshape(len(indices), -1) > THRESHOLD).astype(np.uint8)
    return {
        "bits": np.packbits(X, axis=1),
        "labels": labels[indices].astype(np.uint8),
        "indices": indices,
        "meta": np.array(json.dumps(META, sort_keys=True)),
    }


def write_atomic(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``out`` via a temporary file and ``os.replace``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the file ships with the package
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist_dir", nargs="?", type=Path, default=DEFAULT_MNIST_DIR,
                        help=f"directory with the t10k IDX files (default {DEFAULT_MNIST_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    arrays = build(args.mnist_dir)
    write_atomic(args.out, arrays)
    counts = {d: int((arrays["labels"] == d).sum()) for d in DIGITS}
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes): "
          f"{len(arrays['labels'])} digits, per class {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
