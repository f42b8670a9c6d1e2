#!/usr/bin/env python3
"""Build ``python/nemm/data/mnist012.npz``, the digits shipped with nemm.

The file holds the first 1000 zeros, ones and twos of the MNIST test split
(there are only 980 zeros, so 2980 digits in all), binarized at gray level
> 127 and bit-packed, in their original test-split order.

Usage::

    python tools/make_embedded_data.py [MNIST_DIR] [--out PATH]

``MNIST_DIR`` defaults to ``../shared/data/mnist`` beside the repository
(``/work/shared/data/mnist`` on the development machine).  It reads, checks and
selects with the installed package's own code (``nemm.datasets``) and writes
through ``nemm._io.atomic_open``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from nemm._io import atomic_open
from nemm.datasets import idx, mnist

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"
DEFAULT_OUT = REPO_ROOT / "python" / "nemm" / "data" / "mnist012.npz"

SPEC = mnist._EMBEDDED  # digits, per_class, threshold, split: what embedded_digits() promises
META = {
    "format": mnist._EMBEDDED_FORMAT,
    "version": mnist._EMBEDDED_VERSION,
    "source": "MNIST test split (t10k), Y. LeCun, C. Cortes, C. J. C. Burges",
    "license": "CC BY-SA 3.0 (MNIST)",
    "threshold": SPEC["threshold"],
    "n_features": 784,
    "shape": [28, 28],
    "digits": list(SPEC["digits"]),
    "per_class": SPEC["per_class"],
}


def read_checked(directory: Path, stem: str) -> np.ndarray:
    """``stem[.gz]`` in ``directory`` as an array, after checking the MD5 of its uncompressed bytes."""
    path = idx._find_file(directory, stem)
    if path is None:
        raise FileNotFoundError(f"neither {stem}.gz nor {stem} found in {directory}")
    got = hashlib.md5(idx._read_maybe_gzip(path)).hexdigest()
    if got != mnist._MNIST_MD5[stem]:
        raise ValueError(f"MD5 of uncompressed {path} is {got}, expected {mnist._MNIST_MD5[stem]}")
    return idx.read_idx(path)


def build(mnist_dir: Path) -> dict[str, np.ndarray]:
    """Return the arrays to store, after checking the source checksums."""
    images_stem, labels_stem = mnist._split_stems(SPEC["split"])
    images = read_checked(mnist_dir, images_stem)
    labels = read_checked(mnist_dir, labels_stem)
    mnist._check_mnist_pair(images, labels, f"MNIST files in {mnist_dir}")
    # First per_class of each digit, kept in the interleaved test-split order: select the row
    # numbers themselves, so that the file also records which rows were taken.
    indices, kept = mnist.select_digits(
        np.arange(len(labels), dtype=np.int32), labels, SPEC["digits"], SPEC["per_class"]
    )
    X = mnist.binarize(images[indices], SPEC["threshold"])
    return {
        "bits": np.packbits(X, axis=1),
        "labels": kept.astype(np.uint8),
        "indices": indices,
        "meta": np.array(json.dumps(META, sort_keys=True)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "mnist_dir",
        nargs="?",
        type=Path,
        default=DEFAULT_MNIST_DIR,
        help=f"directory with the t10k IDX files (default {DEFAULT_MNIST_DIR})",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    arrays = build(args.mnist_dir)
    with atomic_open(args.out) as fh:
        np.savez_compressed(fh, **arrays)
    counts = {d: int((arrays["labels"] == d).sum()) for d in SPEC["digits"]}
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes): "
        f"{len(arrays['labels'])} digits, per class {counts}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
