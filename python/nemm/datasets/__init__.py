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
  :func:`binarize` (by a threshold, the default, or stochastically with
  probability gray/255: ``binarize="stochastic"`` in the loaders).

Only numpy is required; reading a folder of PNG images needs Pillow (the ``images``
extra: ``pip install "nemm[images]"``).
"""

from .files import NPZ_KEYS, load_binary, load_npy
from .idx import read_idx
from .mnist import (
    BINARIZE_METHODS,
    MNIST_MIRRORS,
    DownloadError,
    binarize,
    embedded_digits,
    load_digits,
    load_mnist,
    select_digits,
)
from .planted import planted, planted_model

__all__ = [
    "BINARIZE_METHODS",
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
