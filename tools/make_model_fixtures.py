"""Write the model-file fixtures of tests/fixtures/: one small file of each format and version.

    python tools/make_model_fixtures.py

They are checked in and must keep loading in every later nemm (tests/test_model_fixtures.py):
run this only to add a new version's fixtures, never to "fix" an old one. Version-1 files are
what nemm wrote before the training state was stored: the version-2 arrays less ``train/*``
and the metadata's ``train`` entry, with ``format_version`` 1. ``expected.json`` records, for
each file, the data it was trained on (by seed) and its ``score_samples`` on that data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import nemm

HERE = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def fixture_data(seed: int = 0, n: int = 40, d: int = 10) -> np.ndarray:
    """Tiny binary data with three prototypes (the same function lives in the test)."""
    rng = np.random.default_rng(seed)
    protos = rng.uniform(0.1, 0.9, size=(3, d))
    return (rng.random((n, d)) < protos[rng.integers(0, 3, size=n)]).astype(np.uint8)


def as_version_1(src: Path, dst: Path) -> None:
    with np.load(src) as f:
        arrays = {k: f[k] for k in f.files if not k.startswith("train/")}
    meta = json.loads(str(arrays["metadata"]))
    meta["format_version"] = 1
    meta.pop("train", None)
    arrays["metadata"] = np.array(json.dumps(meta))
    with open(dst, "wb") as fh:
        np.savez(fh, **arrays)


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    X = fixture_data()
    models = {
        "machine": nemm.Machine(
            3, n_epochs=2, steps_per_epoch=3, batch_size=(4, 8), chain_steps=4, random_state=1
        ),
        "rbm": nemm.RBM(3, n_epochs=2, random_state=1),
    }
    expected: dict[str, dict[str, object]] = {}
    for name, model in models.items():
        model.fit(X)
        v2 = HERE / f"{name}-v2.npz"
        model.save(v2)
        as_version_1(v2, HERE / f"{name}-v1.npz")
        for version in (1, 2):
            expected[f"{name}-v{version}.npz"] = {
                "data_seed": 0,
                "score_samples": [float(v) for v in model.score_samples(X)],
                "nemm_version": nemm.__version__,
            }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {sorted(p.name for p in HERE.iterdir())}")


if __name__ == "__main__":
    main()
