"""nemm.sweep: run ids, backends that agree to the bit, resumption after SIGKILL, recorded failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import nemm
from nemm import sweep
from nemm.config import load_config, parse_config

# Tiny runs: 60 digits, 2 epochs of 3 steps, a short diagnostics chain; 2 grid points x 2 seeds.
TINY = """\
[model]
n_hidden = [2, 3]

[train]
recipe = "paper"
n_epochs = 2
steps_per_epoch = 3
batch_size = [8, 16]
chain_steps = 8

[sweep]
seeds = 2

[data]
per_class = 20

[diagnostics]
diagnostic_steps = 2000

[baselines]
mixture = true
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def snapshot(out: Path) -> dict[str, int]:
    """mtime (ns) of every file under out."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in sorted(out.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- run ids


def test_run_ids_are_stable_and_sensitive_to_settings_data_and_version(tiny: Path) -> None:
    cfg = load_config(tiny)
    X, y, _ = sweep.load_data(cfg.data)
    ck = sweep.data_checksum(X, y)
    ids = [s.run_id for s in sweep.expand(cfg, ck)]
    assert ids == [s.run_id for s in sweep.expand(load_config(tiny), sweep.data_checksum(X.copy(), y.copy()))]
    assert len(set(ids)) == 4 and all(len(i) == 16 for i in ids)
    # A setting written at its default value is the same run as the default itself.
    explicit = parse_config(TINY.replace("chain_steps = 8", "chain_steps = 8\nrho = 0.9"))
    assert [s.run_id for s in sweep.expand(explicit, ck)] == ids
    # Any change of settings, diagnostics, baselines, data or version changes every id.
    for changed in (
        TINY.replace("chain_steps = 8", "chain_steps = 9"),
        TINY.replace("diagnostic_steps = 2000", "diagnostic_steps = 2001"),
        TINY.replace("mixture = true", "mixture = false"),
        TINY.replace("seeds = 2", "seeds = [2, 3]"),
    ):
        assert not set(s.run_id for s in sweep.expand(parse_config(changed), ck)) & set(ids)
    X2 = X.copy()
    X2[5, 100] ^= 1
    assert not set(s.run_id for s in sweep.expand(cfg, sweep.data_checksum(X2, y))) & set(ids)
    y2 = y.copy()
    y2[0] = 2 if y2[0] != 2 else 1
    assert sweep.data_checksum(X, y2) != ck and sweep.data_checksum(X, None) != ck
    spec = sweep.expand(cfg, ck)[0]
    other = sweep.run_id(
        spec.settings, spec.diagnostics, spec.baselines, ck, version=nemm.__version__ + ".post1"
    )
    assert other != spec.run_id == sweep.run_id(spec.settings, spec.diagnostics, spec.baselines, ck)


# --------------------------------------------------------------------------- local backend


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny sweep run in this process: the table every backend must reproduce."""
    d = tmp_path_factory.mktemp("ref")
    (d / "tiny.toml").write_text(TINY)
    res = sweep.run_sweep(load_config(d / "tiny.toml"), d / "out", workers=0, progress=False)
    assert res.n_run == 4 and res.n_errors == 0
    return d / "out"


def test_sweep_writes_runs_table_report_and_figure(reference: Path, tiny: Path) -> None:
    text = (reference / "results.csv").read_text().splitlines()
    assert text[0] == (
        "n_hidden,seed,loglik,sigma,sigma_err,sigma_converged,sigma_method,sigma_counting,sigma_counting_err,"
        "n_one_way,tau,tau_err,trace,trace_err,class_kl,mixture_loglik,status,error,run_id"
    )
    rows = [line.split(",") for line in text[1:]]
    assert [(r[0], r[1]) for r in rows] == [("2", "0"), ("2", "1"), ("3", "0"), ("3", "1")]
    assert all(r[-3] == "ok" and r[-2] == "" for r in rows)
    cfg = load_config(tiny)
    X, y, _ = sweep.load_data(cfg.data)
    for spec, r in zip(sweep.expand(cfg, sweep.data_checksum(X, y)), rows):
        assert r[-1] == spec.run_id
        run = reference / "runs" / spec.run_id
        result = json.loads((run / "result.json").read_text())
        assert result["status"] == "ok" and result["swept"] == spec.swept
        # The saved model is the measured one: measuring the file again gives the table's values.
        m = nemm.load(run / "model.npz")
        assert m.n_hidden == spec.settings["n_hidden"] and m.random_state == spec.seed
        again = sweep.measure(m, X, y, spec.diagnostics)
        assert (
            repr(again["loglik"]) == r[2]
            and repr(again["sigma"]) == r[3]
            and repr(again["class_kl"]) == r[14]
        )
        # ln p is a mean of log-probabilities of 784 bits: negative and finite, and below the EM ceiling + noise.
        assert -784 * np.log(2) < float(r[2]) < 0 and float(r[2]) < float(r[15]) + 1.0
    assert (reference / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (reference / "report.md").read_text()
    assert "| n_hidden | runs | loglik |" in report and "| 2 | 2/2 |" in report and "| 3 | 2/2 |" in report


@pytest.mark.parametrize("workers", [1, 2])
def test_local_processes_give_the_same_table(
    reference: Path, tiny: Path, tmp_path: Path, workers: int
) -> None:
    res = sweep.run_sweep(load_config(tiny), tmp_path / "out", workers=workers, progress=False)
    assert res.n_run == 4
    assert (tmp_path / "out" / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_rerun_is_a_noop_and_a_lost_run_is_redone(reference: Path, tiny: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    before = snapshot(out)
    res = sweep.run_sweep(load_config(tiny), out, workers=1, progress=False)
    assert res.n_run == 0 and res.n_skipped == 4
    assert snapshot(out) == before  # nothing rewritten, not even the table
    lost = res.rows[2]["run_id"]
    shutil.rmtree(out / "runs" / lost)
    res = sweep.run_sweep(load_config(tiny), out, workers=1, progress=False)
    assert res.n_run == 1
    after = snapshot(out)
    assert all(after[k] == v for k, v in before.items() if not k.startswith(f"runs/{lost}") and "/" in k)
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_a_failing_run_is_recorded_and_the_others_finish(
    reference: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sweep._train_and_measure

    def flaky(spec: Any, X: Any, y: Any) -> Any:
        if spec.seed == 1 and spec.settings["n_hidden"] == 3:
            raise FloatingPointError("training diverged at epoch 1 (injected)")
        return real(spec, X, y)

    monkeypatch.setattr(sweep, "_train_and_measure", flaky)
    out = tmp_path / "out"
    res = sweep.run_sweep(load_config(tiny), out, workers=0, progress=False)
    assert res.n_errors == 1 and [r["status"] for r in res.rows] == ["ok", "ok", "ok", "error"]
    bad = res.rows[3]
    assert bad["error"] == "FloatingPointError: training diverged at epoch 1 (injected)"
    assert np.isnan(bad["loglik"])
    assert json.loads((out / "runs" / bad["run_id"] / "result.json").read_text())["status"] == "error"
    assert not (out / "runs" / bad["run_id"] / "model.npz").exists()
    ref = (reference / "results.csv").read_text().splitlines()
    got = (out / "results.csv").read_text().splitlines()
    assert got[:4] == ref[:4]  # the other runs are untouched by the failure
    assert got[4].endswith(
        f",error,FloatingPointError: training diverged at epoch 1 (injected),{bad['run_id']}"
    )
    assert "## Failed runs" in (out / "report.md").read_text()
    # A recorded failure is final: a re-run does not retry it.
    monkeypatch.setattr(sweep, "_train_and_measure", real)
    assert sweep.run_sweep(load_config(tiny), out, workers=0, progress=False).n_run == 0


@pytest.mark.slow
def test_sigkilled_sweep_resumes_to_the_same_table(reference: Path, tmp_path: Path) -> None:
    # Longer runs (a longer diagnostics chain), so that the kill lands mid-sweep.
    slow = TINY.replace("seeds = 2", "seeds = 4").replace(
        "diagnostic_steps = 2000", "diagnostic_steps = 60000"
    )
    cfg_path = tmp_path / "slow.toml"
    cfg_path.write_text(slow)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nemm",
            "sweep",
            str(cfg_path),
            "--out",
            str(out),
            "--workers",
            "1",
            "--quiet",
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("runs/*/result.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, as a crash would
        proc.wait()
    done = len(list(out.glob("runs/*/result.json")))
    assert 1 <= done < 8 and not (out / "results.csv").exists()
    res = sweep.run_sweep(load_config(cfg_path), out, workers=1, progress=False)
    assert res.n_skipped == done and res.n_run == 8 - done and res.n_errors == 0
    whole = sweep.run_sweep(load_config(cfg_path), tmp_path / "whole", workers=2, progress=False)
    assert whole.n_run == 8
    assert (out / "results.csv").read_bytes() == (tmp_path / "whole" / "results.csv").read_bytes()


# --------------------------------------------------------------------------- Dask


def test_dask_local_cluster_gives_the_same_table(reference: Path, tiny: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        res = sweep.run_sweep(
            load_config(tiny), tmp_path / "out", scheduler=cluster.scheduler_address, progress=False
        )
    assert res.n_run == 4 and res.n_errors == 0
    assert (tmp_path / "out" / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dask_processes(tmp_path: Path) -> Iterator[str]:
    """A `dask scheduler` and two `dask worker` processes on 127.0.0.1; yields the scheduler address."""
    distributed = pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{_free_port()}"
    dask = [sys.executable, "-m", "dask"]
    logs = [open(tmp_path / f"dask-{i}.log", "wb") for i in range(3)]
    procs = [
        subprocess.Popen(
            dask
            + ["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        for i in (1, 2):
            procs.append(
                subprocess.Popen(
                    dask
                    + [
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-dashboard",
                        "--local-directory",
                        str(tmp_path / f"w{i}"),
                    ],
                    stdout=logs[i],
                    stderr=subprocess.STDOUT,
                )
            )
        with distributed.Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs:
            f.close()


@pytest.mark.slow
def test_dask_scheduler_and_worker_processes_give_the_same_table(
    reference: Path, tiny: Path, tmp_path: Path, dask_processes: str
) -> None:
    from nemm.cli import main

    assert (
        main(["sweep", str(tiny), "--out", str(tmp_path / "out"), "--scheduler", dask_processes, "--quiet"])
        == 0
    )
    assert (tmp_path / "out" / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


# --------------------------------------------------------------------------- command line


def test_cli_sweep_and_train_config_agree(
    reference: Path, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nemm.cli import main

    assert main(["sweep", str(tiny), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 0
    assert "4 runs (0 already done, 4 run now)" in capsys.readouterr().out
    assert (tmp_path / "out" / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    # `nemm train --config` reads the same tables: the one-point file of the first run gives its numbers.
    one = tmp_path / "one.toml"
    one.write_text(TINY.replace("n_hidden = [2, 3]", "n_hidden = 2").replace("seeds = 2", "seeds = [1]"))
    assert main(["train", "--config", str(one), "--out", str(tmp_path / "m.npz"), "--quiet"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines() if ": " in line)
    header, row = (reference / "results.csv").read_text().splitlines()[:3:2]
    ref = dict(zip(header.split(","), row.split(",")))
    assert printed["loglik"] == ref["loglik"] and printed["sigma"] == ref["sigma"]
    assert float(printed["mixture_loglik"]) == pytest.approx(float(ref["mixture_loglik"]), abs=1e-5)


def test_cli_errors_are_one_line_and_nonzero(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nemm.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nn_hiden = 3\n")
    assert main(["sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(bad) in err and "[model] n_hiden" in err
    assert main(["train", "--config", str(tiny)]) == 2
    assert "nemm sweep" in capsys.readouterr().err
    assert main(["train", "--config", str(tiny), "--hidden", "5"]) == 2
    assert "--hidden" in capsys.readouterr().err
    assert main(["sweep", str(tiny), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert (
        main(["sweep", str(tiny), "--out", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://x:1"])
        == 2
    )
    assert "--scheduler" in capsys.readouterr().err


# --------------------------------------------------------------------------- data


def test_data_from_an_npz_with_labels_and_from_an_idx_directory(tmp_path: Path, mnist_dir: Path) -> None:
    rng = np.random.default_rng(0)
    X = (rng.random((30, 12)) < 0.3).astype(np.uint8)
    y = np.repeat([4, 7, 9], 10)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    cfg = parse_config("[data]\npath = 'd.npz'\ndigits = [9, 4]\nper_class = 3\n", base_dir=tmp_path)
    Xs, ys, desc = sweep.load_data(cfg.data)
    # select_digits keeps the file's order: the first 3 fours, then the first 3 nines.
    assert (
        ys.tolist() == [4, 4, 4, 9, 9, 9]
        and np.array_equal(Xs, X[[0, 1, 2, 20, 21, 22]])
        and "labelled" in desc
    )
    Xa, ya, _ = sweep.load_data(parse_config("[data]\npath = 'd.npz'\n", base_dir=tmp_path).data)
    assert np.array_equal(Xa, X) and np.array_equal(ya, y)
    np.save(tmp_path / "d.npy", X)
    Xn, yn, _ = sweep.load_data(parse_config("[data]\npath = 'd.npy'\n", base_dir=tmp_path).data)
    assert np.array_equal(Xn, X) and yn is None
    unlabelled = parse_config(
        "[data]\npath = 'd.npy'\n[diagnostics]\nmeasures = ['class_kl']\n", base_dir=tmp_path
    )
    with pytest.raises(ValueError, match="class_kl needs labelled data"):
        sweep.run_sweep(unlabelled, tmp_path / "never", workers=0, progress=False)
    assert not (tmp_path / "never").exists()
    with pytest.raises(ValueError, match="no labels"):
        sweep.load_data(parse_config("[data]\npath = 'd.npy'\ndigits = [1]\n", base_dir=tmp_path).data)
    cfg = parse_config(f"[data]\npath = '{mnist_dir}'\ndigits = [3, 8]\nper_class = 4\n")
    Xm, ym, _ = sweep.load_data(cfg.data)
    assert Xm.shape == (8, 784) and sorted(ym.tolist()) == [3] * 4 + [8] * 4 and set(np.unique(Xm)) <= {0, 1}


def test_a_worker_with_another_nemm_version_is_refused_and_retried(
    reference: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sweep.run_one

    def old_worker(spec: Any, X: Any, y: Any = None) -> Any:
        got = real(spec, X, y)
        if spec.index == 0:
            got["result"]["nemm_version"] = "0.0.1"
        return got

    monkeypatch.setattr(sweep, "run_one", old_worker)
    out = tmp_path / "out"
    res = sweep.run_sweep(load_config(tiny), out, workers=0, progress=False)
    assert res.n_errors == 1 and "worker lost" in res.rows[0]["error"] and "0.0.1" in res.rows[0]["error"]
    assert not (out / "runs" / res.rows[0]["run_id"]).exists()  # not recorded: the next run retries it
    monkeypatch.setattr(sweep, "run_one", real)
    again = sweep.run_sweep(load_config(tiny), out, workers=0, progress=False)
    assert again.n_run == 1 and again.n_errors == 0
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_all_ten_digits_of_the_test_split(mnist_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse_config(f"[data]\npath = '{mnist_dir}'\ndigits = 'all'\nper_class = 'all'\n")
    X, y, desc = sweep.load_data(cfg.data)
    assert (
        X.shape == (10_000, 784)
        and np.bincount(y).tolist()[0] == 980
        and sorted(set(y.tolist())) == list(range(10))
    )
    assert "0,1,2,3,4,5,6,7,8,9" in desc
    # Without a path: NEMM_DATA (or the cache) gives the same rows.
    monkeypatch.setenv("NEMM_DATA", str(mnist_dir))
    X2, y2, _ = sweep.load_data(parse_config("[data]\ndigits = 'all'\nper_class = 100\n").data)
    assert X2.shape == (1000, 784) and np.array_equal(X2[y2 == 7], X[y == 7][:100])


def test_digits_all_on_a_labelled_file_keeps_every_label(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = (rng.random((12, 5)) < 0.5).astype(np.uint8)
    y = np.array([3, 1, 3, 1, 2, 2, 3, 1, 2, 3, 1, 2])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    Xs, ys, _ = sweep.load_data(
        parse_config("[data]\npath = 'd.npz'\ndigits = 'all'\nper_class = 2\n", base_dir=tmp_path).data
    )
    assert ys.tolist() == [3, 1, 3, 1, 2, 2] and np.array_equal(Xs, X[:6])


# --------------------------------------------------------------------------- large hidden spaces


def _random_chains(rng: np.random.Generator, S: int, C: int, T: int, stay: float) -> np.ndarray:
    """Chains over S states with a preferred cyclic drift (so that sigma > 0 and one-way pairs exist)."""
    z = np.empty((C, T), dtype=np.int64)
    z[:, 0] = rng.integers(0, S, C)
    for t in range(1, T):
        r = rng.random(C)
        z[:, t] = np.where(
            r < stay, z[:, t - 1], np.where(r < 0.8, (z[:, t - 1] + 1) % S, rng.integers(0, S, C))
        )
    return z


@pytest.mark.parametrize("seed, S, pc", [(0, 7, 0.5), (1, 40, 0.5), (2, 300, 0.25), (3, 12, 0.0)])
def test_sparse_counts_give_the_dense_sigma_and_trace(seed: int, S: int, pc: float) -> None:
    from nemm.markov import (
        count_summary_sparse,
        summarize_counts,
        transition_counts,
        transition_counts_sparse,
    )

    rng = np.random.default_rng(seed)
    z = _random_chains(rng, S, 3, 400, 0.3)
    z[0, -1] = S - 1  # a state that may be seen only last: the "occupancy" row of M
    dense = summarize_counts(transition_counts(z, S), pseudocount=pc)
    sigma, n_one_way, trace = count_summary_sparse(*transition_counts_sparse(z), S, pc)
    assert n_one_way == dense.entropy.n_one_way
    assert (
        sigma == pytest.approx(dense.entropy.sigma, rel=1e-12, abs=0)
        or sigma == dense.entropy.sigma == np.inf
    )
    assert trace == pytest.approx(dense.self_transition, rel=1e-12)


def _binary_machine(L: int, D: int, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    return nemm.Machine.from_params(
        rng.normal(0, 1.5, (D, L)),
        rng.normal(0, 0.5, D),
        rng.normal(0, 0.4, (L, D)),
        rng.normal(0, 0.3, L),
        rng.uniform(0.2, 0.8, D),
        hidden="binary",
        random_state=seed,
    )


@pytest.mark.parametrize("chain_steps", [400, 3000])
def test_large_binary_space_measures_equal_the_dense_statistics(
    chain_steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nemm import diagnostics
    from nemm.markov import DENSE_STATE_LIMIT

    m = _binary_machine(13, 24, 5)  # 8192 states > DENSE_STATE_LIMIT: the sparse path
    assert m.n_states > DENSE_STATE_LIMIT
    rng = np.random.default_rng(0)
    X = (rng.random((90, 24)) < 0.5).astype(np.uint8)
    y = rng.integers(0, 3, 90)
    cfg = {
        "diagnostic_steps": chain_steps,
        "n_chains": 2,
        "pseudocount": 0.5,
        "measures": ["loglik", "sigma", "tau", "trace", "class_kl"],
    }
    monkeypatch.setattr(sweep, "_LOG_A_BLOCK_BYTES", 8 * 500)  # several blocks of rows in the class KL
    got = sweep.measure(m, X, y, cfg)
    # transition_statistics relabels to the visited states too (it can, while they are <= 4096).
    ts = diagnostics.transition_statistics(
        m, chain_steps, n_chains=2, seed=sweep._derived_seed(m.random_state, 1), pseudocount=0.5
    )
    assert got["n_one_way"] == ts.n_one_way
    for k, ref in (
        ("sigma_counting", ts.sigma),
        ("sigma_counting_err", ts.sigma_err),
        ("trace", ts.self_transition),
        ("trace_err", ts.self_transition_err),
        ("tau", ts.tau),
        ("tau_err", ts.tau_err),
    ):
        assert got[k] == pytest.approx(ref, rel=1e-9, nan_ok=True), k
    assert (ts.states.size <= 512) == np.isfinite(got["tau"])
    # The headline sigma of a space this large comes from the chain's transitions.
    assert got["sigma_method"] == "transitions" and np.isfinite(got["sigma"]) and got["sigma_err"] > 0
    pfull = np.zeros(m.n_states)
    pfull[ts.states] = ts.pbar_e
    assert got["loglik"] == pytest.approx(float(np.mean(m.score_samples(X, pbar=pfull))), rel=1e-12)
    ref_kl = diagnostics.class_kl_of(m, X, y, pbar=pfull).kl
    assert got["class_kl"] == pytest.approx(ref_kl, rel=1e-12)


def test_binary_16_and_onehot_64_run_in_a_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2**16 hidden states: exact ln p from the chain's occupancy, sparse counts, nothing of size S^2."""
    import tracemalloc

    from nemm.datasets import planted

    X, z = planted(40, 16, 300, 3, hidden="binary")
    y = (z % 3).astype(np.int64)
    cfg = parse_config(
        "[model]\nn_hidden = 16\nhidden = 'binary'\n[train]\nn_epochs = 2\nsteps_per_epoch = 3\n"
        "batch_size = [8, 16]\nchain_steps = 8\n[diagnostics]\ndiagnostic_steps = 3000\n"
    )
    tracemalloc.start()
    res = sweep.run_sweep(cfg, tmp_path / "b16", workers=0, progress=False, data=(X, y))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    row = res.rows[0]
    assert row["status"] == "ok", row["error"]
    assert np.isfinite(row["loglik"]) and np.isfinite(row["sigma"]) and np.isfinite(row["class_kl"])
    assert row["loglik"] < 0 and 0 <= row["trace"] <= 1
    assert peak < 2**16 * 2**16 // 64  # far below one dense 65536^2 matrix of bytes
    cfg64 = parse_config(
        "[model]\nn_hidden = 64\n[train]\nn_epochs = 2\nsteps_per_epoch = 3\nbatch_size = [8, 16]\n"
        "chain_steps = 8\n[diagnostics]\ndiagnostic_steps = 3000\n"
    )
    X64, z64 = planted(40, 64, 500, 4)
    row = sweep.run_sweep(cfg64, tmp_path / "o64", workers=0, progress=False, data=(X64, z64 % 10)).rows[0]
    assert row["status"] == "ok", row["error"]
    assert np.isfinite(row["loglik"]) and np.isfinite(row["tau"]) and np.isfinite(row["class_kl"])


def test_the_reproduce_report_kind_is_found_without_importing_reproduce_first() -> None:
    # The sweep never imports reproduce: naming the kind imports the module that registers it.
    code = (
        "import sys; import nemm.sweep as s; assert 'nemm.reproduce' not in sys.modules; "
        "k = s.report_kind('reproduce'); assert k.name == 'reproduce' and 'nemm.reproduce' in sys.modules; "
        "print(sorted(s._REPORT_KINDS))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['reproduce', 'sweep']"
    with pytest.raises(ValueError, match="unknown report kind 'paper'"):
        sweep.report_kind("paper")


def test_a_registered_report_kind_runs_the_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A kind replaces what runs and what is written: here every run records its seed only.
    seen: list[int] = []

    def run(spec: sweep.RunSpec, X: np.ndarray, y: Any) -> tuple[dict[str, Any], Any]:
        seen.append(spec.seed)
        return {"rows_seen": len(X)}, None

    def write(o: sweep.SweepOutput) -> dict[str, Any]:
        return {"rows": [dict(r) for r in o.rows]}

    plain = sweep.report_kind("sweep")
    monkeypatch.setitem(
        sweep._REPORT_KINDS,
        "sweep",
        sweep.ReportKind(
            "sweep", expand=plain.expand, run=run, columns=lambda c: ["seed", "rows_seen"], write=write
        ),
    )
    X = np.random.default_rng(0).integers(0, 2, (30, 8)).astype(np.uint8)
    res = sweep.run_sweep(
        parse_config("[sweep]\nseeds = 3\n"), tmp_path, workers=0, progress=False, data=(X, None)
    )
    assert sorted(seen) == [0, 1, 2] and res.columns == ["seed", "rows_seen", "status", "error", "run_id"]
    assert res.report is not None and [r["rows_seen"] for r in res.report["rows"]] == [30, 30, 30]
    assert not (tmp_path / "results.csv").exists() and len(list((tmp_path / "runs").iterdir())) == 3
