"""Smoke tests of the benchmarks: they run (quick mode) and write well-formed results.

They fail on errors and on malformed output, never on timings.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemm import _bench

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "bench" / "suite.py"


def _positive(results: dict, key: str) -> float:
    assert key in results, f"missing result {key!r}"
    v = results[key]["value"]
    assert v is not None and math.isfinite(v) and v > 0, f"{key} = {v!r}"
    return v


def test_power_law_and_best_time():
    assert _bench.best_time(lambda: None, repeats=2) >= 0
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import suite
    finally:
        sys.path.remove(str(REPO / "bench"))
    assert suite.power_law([1, 2, 4, 8], [3, 6, 12, 24]) == pytest.approx(1.0)
    assert suite.power_law([1, 10], [5, 0.5]) == pytest.approx(-1.0)
    assert suite.power_law([3], [1]) is None
    X = _bench.digits()[:5]
    for D in (196, 392, 784, 1568, 3136):
        Y = suite.resize_digits(X, D)
        assert Y.shape == (5, D) and Y.dtype.name == "uint8" and set(Y.ravel()) <= {0, 1}


def test_bench_quick(tmp_path):
    out = tmp_path / "bench.json"
    data = _bench.bench(quick=True, yardstick_steps=20_000, threads=2, json_path=str(out), verbose=False)
    on_disk = json.loads(out.read_text())
    assert on_disk["results"].keys() == data["results"].keys()
    res = data["results"]
    for key in ("paper_protocol_s", "chain.onehot6.one_chain", "chain.binary8.one_chain",
                "chain.onehot6.C8.t1", "chain.onehot6.C8.t2", "chain.onehot6.efficiency"):
        _positive(res, key)
    # The yardstick needs g++ and the shared source: a number when both are there, else n/a.
    if data["yardstick"]["steps_per_s"] is not None:
        _positive(res, "yardstick")
        assert res["chain.onehot6.one_chain"]["ratio"] > 0
    else:
        assert data["yardstick"]["reason"]
    names = [t["name"] for t in data["targets"]]
    assert any("yardstick" in n for n in names) and any("efficiency" in n for n in names)


def test_bench_command(tmp_path, capsys):
    from nemm.cli import main

    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--yardstick-steps", "0", "--threads", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "chain throughput" in text and "targets" in text
    data = json.loads(out.read_text())
    assert data["yardstick"]["steps_per_s"] is None
    _positive(data["results"], "chain.onehot6.one_chain")


def test_suite_quick(tmp_path):
    out, png = tmp_path / "suite.json", tmp_path / "scaling.png"
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, str(SUITE), "--quick", "--json", str(out), "--plot", str(png), "--yardstick-steps", "20000"],
        capture_output=True, text=True, timeout=300, cwd=str(REPO), env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "targets" in proc.stdout
    data = json.loads(out.read_text())
    res = data["results"]
    for key in ("chain.onehot6.one_chain", "chain.binary8.one_chain", "step.chain_s", "step.likelihood_s",
                "step.gradient_s", "step.train_step_s", "protocol.ours_s", "protocol.numpy_s", "seeds.wall_s",
                "loglik.score_samples_s", "scaling.D.chain_step", "scaling.N.gradient_step"):
        _positive(res, key)
    assert res["check.gradient_vs_numpy"]["value"] < 1e-8
    for axis in ("D", "L_onehot", "L_binary", "T", "N", "threads"):
        series = data["series"]["scaling"][axis]
        assert len(series["x"]) >= 2
        for costs in series["costs"].values():
            assert all(c > 0 for c in costs)
    alloc = data.get("allocations")
    if alloc is not None:  # needs gcc: then the chain loop must not allocate
        assert alloc["hidden_trajectory_C1"][2] == 0
    assert png.stat().st_size > 1000
