"""PCD settings of the RBM measured by the exact ln p (docs/training-at-scale.md, "The RBM baseline at scale").

Usage: ``python bench/rbm_pcd_experiments.py N EPOCHS EVERY SPECS``: 16 binary hidden units trained by
PCD on the first N training digits (``NEMM_DATA`` points at the MNIST files), the exact mean ln p of
those digits after epoch 1 and every EVERY epochs. SPECS is a JSON object ``{name: RBM keywords}``;
each starts from the old PCD defaults (``centered=False``, ``lr_decay=0``); the extra keyword ``decay`` sets the rate of epoch e to ``learning_rate / (1 + e / decay)``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

import nemm
from nemm.datasets import load_digits


def run(name: str, X: np.ndarray, epochs: int, every: int, decay: float | None = None, **kw: Any) -> None:
    # The old PCD defaults are the baseline every spec changes: uncentered, a constant rate.
    kw = {"gradient": "pcd", "centered": False, "lr_decay": 0.0, **kw}
    m = nemm.RBM(16, "binary", random_state=0, **kw)
    lr0 = kw.get("learning_rate", 0.02)
    out = []
    t0 = time.time()
    for e in range(epochs):
        if decay is not None:
            m.set_params(learning_rate=lr0 / (1 + e / decay), lr_decay=0.0)
        m.partial_fit(X, n_epochs=1)
        if (e + 1) % every == 0 or e == 0:
            out.append((e + 1, round(float(m.score(X)), 2)))
    print(name, json.dumps(out), f"{time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    n, epochs, every = (int(a) for a in sys.argv[1:4])
    X = np.asarray(load_digits(digits=range(10), per_class=None, split="train")[0])[:n]
    for name, kw in json.loads(sys.argv[4]).items():
        run(name, X, epochs, every, **kw)
