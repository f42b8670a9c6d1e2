"""The driver of ``nemm reproduce``: train and diagnose many seeds in worker processes, then report.

``reproduce(out_dir)`` trains the paper protocol (L = 6 one-hot hidden states,
120 epochs of 30 RMSprop steps, T = 48) for 36 seeds in parallel on the embedded
MNIST digits 0, 1, 2, tracks the entropy production during training, runs the
final diagnostics of section IV.B on every seed, fits the two baselines (the EM
Bernoulli mixture, the ceiling of the one-hot model's likelihood, and the tied
RBM, the equilibrium variant trained by the same engine and protocol), and hands
the results table to :func:`nemm.reproduce.report.write_report`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from nemm._pool import process_pool
from nemm._seeds import derive_seed
from nemm.reproduce.regimes import classify_regime
from nemm.reproduce.report import describe_result, draw_figures, summarize, table_text, write_tables

__all__ = ["QUICK_EPOCHS", "QUICK_SEEDS", "reproduce"]

#: ``--quick``: seeds and epochs per machine (the full protocol: 36 and 120).
QUICK_SEEDS = 6
QUICK_EPOCHS = 60

#: Stream of the final diagnostics' chains, hashed with the seed (derive_seed(seed, stream)).
_DIAGNOSTICS_STREAM = 1

#: Diagnostics copied into every machine record under the same name (see nemm.diagnostics.Diagnosis).
RECORD_DIAGNOSTICS = (
    "loglik_on_the_fly", "sigma", "sigma_err", "n_one_way", "pseudocount", "sigma_two_way", "tau", "tau_err",
    "self_transition", "self_transition_err", "random_self_transition", "sigma_rao_blackwell",
    "tau_rao_blackwell", "occupancy", "M", "sampling",
)

# --------------------------------------------------------------------------- the workers

_WORKER_DATA: tuple[np.ndarray, np.ndarray | None] | None = None


def _init_worker(X: np.ndarray | None, y: np.ndarray | None) -> None:
    """Worker initializer: the data (None: the embedded digits)."""
    global _WORKER_DATA
    if X is None:
        from nemm.datasets import embedded_digits

        X, y = embedded_digits()
    _WORKER_DATA = (X, y)


def _worker_data() -> tuple[np.ndarray, np.ndarray | None]:
    if _WORKER_DATA is None:
        raise RuntimeError("reproduce worker used before its data were set")
    return _WORKER_DATA


def _train_and_diagnose(task: Mapping[str, Any]) -> dict[str, Any]:
    """Train one machine with per-epoch tracking, run the final diagnostics, save the model."""
    from nemm import Machine
    from nemm import diagnostics as diag

    X, y = _worker_data()
    seed = int(task["seed"])
    t0 = time.perf_counter()
    m = Machine(int(task["n_hidden"]), tied=bool(task["tied"]), n_epochs=int(task["n_epochs"]), random_state=seed)
    callback = None
    if task["track_every"]:
        callback = diag.epoch_tracker(X, y, every=int(task["track_every"]), n_steps=int(task["track_steps"]))
    m.fit(X, callback=callback)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    # diag_steps steps in all (the spec's 1e5), as two parallel chains, and 1000 Rao-Blackwell
    # draws per state: the error bars of the report stay small, and 36 seeds stay within seconds.
    d = diag.diagnose(m, X, y, n_steps=max(2, int(task["diag_steps"]) // 2),
                      seed=derive_seed(seed, _DIAGNOSTICS_STREAM), n_chains=2, rao_blackwell_draws=1000)
    diag_s = time.perf_counter() - t1
    model = str(m.save(task["model_path"])) if task.get("model_path") else None
    ck = d.class_kl
    rec: dict[str, Any] = {
        "kind": "rbm" if task["tied"] else "nemm",
        "seed": seed,
        "tied": bool(task["tied"]),
        "n_epochs": int(task["n_epochs"]),
        "loglik": d.loglik_exact,
        **{name: getattr(d, name) for name in RECORD_DIAGNOSTICS},
        "class_kl": ck.kl if ck else None,
        "class_p_model": ck.p_model if ck else None,
        "class_p_data": ck.p_data if ck else None,
        "state_class": ck.state_class if ck else None,
        "regime": classify_regime(d.sigma, d.sigma_err, d.tau, d.self_transition, int(task["n_hidden"])),
        "train_seconds": train_s,
        "diag_seconds": diag_s,
        "model": model,
        "history": {k: list(v) for k, v in m.history_.items() if k != "batch_size"},
    }
    return rec


def _em_baseline(task: Mapping[str, Any]) -> dict[str, Any]:
    """The EM Bernoulli-mixture ceiling (several restarts)."""
    from nemm.baselines import fit_em_ceiling

    X, _ = _worker_data()
    t0 = time.perf_counter()
    ll = fit_em_ceiling(X, int(task["n_hidden"]), n_init=int(task["n_init"]), random_state=int(task["seed"]))
    return {"kind": "em", "loglik": float(ll), "n_components": int(task["n_hidden"]),
            "n_init": int(task["n_init"]), "seconds": time.perf_counter() - t0}


def _run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    return _em_baseline(task) if task["kind"] == "em" else _train_and_diagnose(task)


# --------------------------------------------------------------------------- the driver


def _resolve_data(data: Any) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """(X or None for the embedded digits, y, description)."""
    if data is None:
        return None, None, "the embedded MNIST test-split digits 0, 1, 2 (2980 images, 784 pixels)"
    if isinstance(data, tuple):
        X, y = data
    else:
        X, y = data, None
    from nemm._checks import as_binary_matrix

    X = as_binary_matrix(X)
    if y is not None:
        y = np.asarray(y)
        if y.shape != (X.shape[0],):
            raise ValueError(f"labels must have shape ({X.shape[0]},), got {y.shape}")
    return X, y, f"user data ({X.shape[0]} rows of {X.shape[1]} bits{', labelled' if y is not None else ''})"


def reproduce(
    out_dir: str | os.PathLike[str],
    *,
    seeds: int | Sequence[int] | None = None,
    n_epochs: int | None = None,
    quick: bool = False,
    n_jobs: int | None = None,
    data: Any = None,
    track_every: int = 10,
    progress: bool = True,
    n_hidden: int = 6,
    track_steps: int = 5000,
    diag_steps: int = 100_000,
    em_restarts: int | None = None,
    rbm_seeds: int | Sequence[int] | None = None,
    figures: bool = True,
) -> dict[str, Any]:
    """Run the paper's section IV and write a report.

    Parameters
    ----------
    out_dir : path-like
        Output directory (created): ``results.csv``, ``results.json``, ``fig2.png``,
        ``fig3_best.png``, ``fig3_worst.png``, ``fig4.png``, ``report.md``, ``models/``.
    seeds : int or sequence of int, optional
        Number of seeds (0, 1, ...) or the seeds themselves. Default 36 (quick: 6).
    n_epochs : int, optional
        Epochs per machine. Default 120 (quick: 60).
    quick : bool
        Demo settings: 6 seeds, 60 epochs, 2 EM restarts, 1 RBM seed (well under a
        minute on two cores). Explicit ``seeds``/``n_epochs``/... still win.
    n_jobs : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in this process.
    data : optional
        ``None`` (the embedded digits 0, 1, 2 with labels), an (N, D) 0/1 array, or a
        pair ``(X, y)`` with integer labels (for the class KL).
    track_every : int
        Track sigma, tau and the exact log-likelihood every this many epochs
        during training (0: no tracking). The cost is ``track_steps`` chain steps each time.
    progress : bool
        Print what is being done and one line per finished machine.
    n_hidden : int
        L, one-hot hidden states (the paper: 6).
    track_steps : int
        Chain length of the per-epoch tracking.
    diag_steps : int
        Steps of the final diagnostics, split over 2 chains (the paper: 1e5).
    em_restarts : int, optional
        EM restarts of the ceiling (default 5; quick 2).
    rbm_seeds : int or sequence of int, optional
        Tied RBM baseline seeds (default 3; quick 1; 0 for none).
    figures : bool
        Draw the figures (needs matplotlib).

    Returns
    -------
    dict
        ``protocol``, ``seeds`` (one record per seed), ``baselines`` (``em``, ``rbm``),
        ``summary`` (medians, regimes), ``files`` (written paths) and ``seconds``.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = list(range(seeds if seeds is not None else (QUICK_SEEDS if quick else 36))) if not isinstance(
        seeds, (list, tuple, range, np.ndarray)) else [int(s) for s in seeds]
    epochs = int(n_epochs if n_epochs is not None else (QUICK_EPOCHS if quick else 120))
    n_em = int(em_restarts if em_restarts is not None else (2 if quick else 5))
    rb = rbm_seeds if rbm_seeds is not None else (1 if quick else 3)
    rbm_list = list(range(rb)) if isinstance(rb, (int, np.integer)) else [int(s) for s in rb]
    jobs = int(n_jobs or os.cpu_count() or 1)
    if not seed_list:
        raise ValueError("reproduce needs at least one seed")
    if epochs < 1 or n_hidden < 2:
        raise ValueError("need n_epochs >= 1 and n_hidden >= 2")
    X, y, data_desc = _resolve_data(data)

    def say(text: str) -> None:
        if progress:
            tqdm.write(text, file=sys.stdout)

    if figures and importlib.util.find_spec("matplotlib") is None:
        # Say so before the long part, and still write the tables and the report.
        print("nemm reproduce: matplotlib is not installed, so no figures will be drawn "
              "(pip install 'nemm[plots]' for them); the tables and the report are still written.",
              file=sys.stderr)
        figures = False
    mode = "quick (demo)" if quick else "full"
    say(f"nemm reproduce — {mode} run: {len(seed_list)} seed(s) × {epochs} epochs, L = {n_hidden} one-hot, "
        f"on {data_desc}")
    say(f"  baselines: EM mixture ceiling ({n_em} restarts)"
        + (f", tied RBM ({len(rbm_list)} seed(s))" if rbm_list else "")
        + f"; {jobs} worker process(es); writing to {out.resolve()}")

    models = out / "models"
    models.mkdir(exist_ok=True)
    common = dict(n_hidden=int(n_hidden), n_epochs=epochs, track_every=int(track_every),
                  track_steps=int(track_steps), diag_steps=int(diag_steps))
    tasks: list[dict[str, Any]] = []
    if n_em > 0:
        tasks.append({"kind": "em", "n_hidden": int(n_hidden), "n_init": n_em, "seed": 0})
    for s in seed_list:
        tasks.append({"kind": "machine", "seed": s, "tied": False, **common,
                      "model_path": str(models / f"seed_{s:03d}.npz")})
    for s in rbm_list:
        tasks.append({"kind": "machine", "seed": s, "tied": True, **common,
                      "model_path": str(models / f"rbm_seed_{s:03d}.npz")})

    results: list[dict[str, Any]] = []
    say(f"training {len(seed_list)} machine(s) and the baselines ({len(tasks)} jobs)...")
    bar = tqdm(total=len(tasks), desc="machines", unit="job", disable=not progress, leave=False)

    def collect(done: Iterable[dict[str, Any]]) -> None:
        for r in done:
            results.append(r)
            bar.update(1)
            say(f"  [{len(results)}/{len(tasks)}] {time.perf_counter() - t_start:6.1f} s  {describe_result(r)}")

    def finish(map_fn: Any) -> dict[str, Any]:
        bar.close()
        res = _assemble(results, out, mode=mode, data_desc=data_desc, n_hidden=int(n_hidden), epochs=epochs,
                        seed_list=seed_list, rbm_list=rbm_list, n_em=n_em, jobs=jobs, track_every=track_every,
                        track_steps=track_steps, diag_steps=diag_steps)
        res["training_seconds"] = time.perf_counter() - t_start
        fig_files = None
        if figures:
            say("drawing figures...")
            fig_files = draw_figures(res, out, map_fn)
        res["seconds"] = time.perf_counter() - t_start
        write_tables(res, out, fig_files)
        return res

    if jobs == 1:
        global _WORKER_DATA
        saved = _WORKER_DATA
        try:
            _init_worker(X, y)
            collect(_run_task(t) for t in tasks)
        finally:
            _WORKER_DATA = saved
        res = finish(map)
    else:
        import concurrent.futures as cf

        with process_pool(min(jobs, len(tasks)), _init_worker, (X, y)) as pool:
            futures = [pool.submit(_run_task, t) for t in tasks]
            collect(f.result() for f in cf.as_completed(futures))
            # The warm workers draw the figures in parallel.
            res = finish(pool.map)
    if progress:
        print(table_text(res))
    return res


def _assemble(results: Sequence[dict[str, Any]], out: Path, *, mode: str, data_desc: str, n_hidden: int,
              epochs: int, seed_list: list[int], rbm_list: list[int], n_em: int, jobs: int, track_every: int,
              track_steps: int, diag_steps: int) -> dict[str, Any]:
    """The results dictionary (the table the report is written from)."""
    seeds_res = sorted((r for r in results if r["kind"] == "nemm"), key=lambda r: r["seed"])
    rbm_res = sorted((r for r in results if r["kind"] == "rbm"), key=lambda r: r["seed"])
    em_res = next((r for r in results if r["kind"] == "em"), None)
    for r in seeds_res + rbm_res:
        if r["model"]:
            r["model"] = os.path.relpath(r["model"], out)
    protocol = {
        "mode": mode, "data": data_desc, "n_hidden": n_hidden, "hidden": "onehot", "n_epochs": epochs,
        "steps_per_epoch": 30, "batch_size": [16, 160], "chain_steps": 48, "learning_rate": 0.1,
        "seeds": seed_list, "rbm_seeds": rbm_list, "em_restarts": n_em, "n_jobs": jobs,
        "track_every": int(track_every), "track_steps": int(track_steps), "diag_steps": int(diag_steps),
    }
    return {
        "protocol": protocol,
        "seeds": seeds_res,
        "baselines": {"em": em_res, "rbm": rbm_res},
        "summary": summarize(seeds_res, rbm_res, em_res["loglik"] if em_res else None, n_hidden),
        "seconds": 0.0,
        "files": {},
    }
