"""A hash over trained parameters, samples and hidden trajectories in the four modes.

Refactors must leave it unchanged: run it before and after and compare the lines with
``behaviour_hash.expected``. Every build path must print them too: the default build (AVX-512 and
AVX2 clones), ``-Ccmake.define.CMAKE_CXX_FLAGS=-DNEMM_NO_AVX512`` and ``-DNEMM_PORTABLE`` (SSE2).

    python tools/behaviour_hash.py

A deliberate change of arithmetic re-records the file, with its reason in the commit. A new mode
adds a line (issue 18: "onehot-auto", the auto training recipe). Last change of arithmetic:
the softplus normalizers sum ln(1 + e) as eight interleaved partial products instead of four
(shorter multiply chains; issue 12), which moves the last bits of every log A.
"""

from __future__ import annotations

import hashlib

import numpy as np

import nemm
from nemm.datasets import embedded_digits

MODES = {
    "onehot-softmax": dict(hidden="onehot", normalization="softmax"),
    "onehot-sigmoid": dict(hidden="onehot", normalization="sigmoid"),
    "binary": dict(hidden="binary"),
    "tied": dict(hidden="onehot", tied=True),
    # The auto recipe: the Rao-Blackwellized gradient, minibatches of 500, one pass per epoch.
    "onehot-auto": dict(hidden="onehot", recipe="auto"),
}


def mode_hash(X: np.ndarray, settings: dict) -> str:
    settings = {"recipe": "paper", **settings}  # the paper's protocol unless the mode names a recipe
    m = nemm.Machine(6, n_epochs=6, n_chains=2, random_state=3, **settings).fit(X)
    h = hashlib.sha256()
    for arr in (m.w_, m.a_, m.wbar_, m.abar_, m.xbar_):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(m.sample(32, seed=5), dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(m.hidden_trajectory(5000, seed=7, codes=True), dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    X, _ = embedded_digits()
    X = X[::4]
    for name, settings in MODES.items():
        print(f"{name:16s} {mode_hash(X, settings)}")


if __name__ == "__main__":
    main()
