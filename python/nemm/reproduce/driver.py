"""The driver of ``nemm reproduce``: train and measure every model in worker processes, then report.

``reproduce(out_dir)`` trains the paper protocol (L = 6 one-hot hidden states,
120 epochs of 30 RMSprop steps, T = 48) for 36 seeds in parallel on the embedded
MNIST digits 0, 1, 2, and beside them the models it must be compared with
(spec, "The equilibrium baseline" and "Mixing at equal likelihood"), one row
per model with its ``kind``:

* ``nemm``: the nonequilibrium machine (the seeds);
* ``rbm``: the equilibrium baseline, :class:`nemm.RBM` trained by its own exact
  gradient (its defaults), sampled by its Gibbs chain;
* ``tied``: the studied variant with ``wbar = w^T`` trained by eqs. 16-17 (not
  an RBM's learning rule; never "the RBM baseline");
* ``mixture``: the EM mixture of L product-Bernoullis, the ceiling of the
  one-hot family's likelihood, sampled by i.i.d. ancestral draws (the ideal mixer).

Every model gets its exact ln p, the class mixing of its own sampling chain
(:func:`nemm.mixing.mixing_of`), and every chain model the diagnostics of
section IV.B with the Rao-Blackwell entropy production as headline (spec,
"Entropy production: which estimator"). ``compare="normalization"`` runs the
softmax and sigmoid variants of eq. 19 side by side in one report.
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
from nemm.reproduce.report import describe_result, draw_figures, kind_summary, summarize, table_text, write_tables

__all__ = ["COMPARABLE", "KINDS", "MIXING_STEPS", "QUICK_EPOCHS", "QUICK_SEEDS", "reproduce"]

#: ``--quick``: seeds and epochs per machine (the full protocol: 36 and 120).
QUICK_SEEDS = 6
QUICK_EPOCHS = 60
#: Samples of the mixing chain of every model (one chain, consecutive steps).
MIXING_STEPS = 20_000
#: The kinds of model of a reproduction, in report order.
KINDS = ("nemm", "rbm", "tied", "mixture")
#: Settings that ``compare`` can vary, with the values it runs side by side.
COMPARABLE = {"normalization": ("softmax", "sigmoid")}

#: Streams of the final diagnostics' chains and of the mixing chain, hashed with the seed.
_DIAGNOSTICS_STREAM = 1
_MIXING_STREAM = 2

#: Diagnostics copied into every chain model's record under the same name (see nemm.diagnostics.Diagnosis).
RECORD_DIAGNOSTICS = (
    "loglik_on_the_fly", "n_one_way", "pseudocount", "sigma_two_way", "tau", "tau_err",
    "self_transition", "self_transition_err", "random_self_transition", "sigma_rao_blackwell",
    "tau_rao_blackwell", "occupancy", "M", "sampling", "sigma_rao_blackwell_err",
    "sigma_rao_blackwell_converged", "sigma_rao_blackwell_curve", "sigma_counting_curve", "rao_blackwell_draws",
    "currents", "dominant_cycle", "cycle_affinity", "cycle_current", "self_transition_rao_blackwell",
)
#: The measures of nemm.mixing.MixingMeasures copied into every record.
RECORD_MIXING = ("tau_int_class", "tau_int_class_envelope", "tau_window", "tau_window_envelope", "cover_time",
                 "cover_fraction", "class_kl_samples", "class_frequencies")

# --------------------------------------------------------------------------- the workers

_WORKER_DATA: tuple[np.ndarray, np.ndarray | None] | None = None
_WORKER_CLASSIFIER: Any = None


def _init_worker(X: np.ndarray | None, y: np.ndarray | None) -> None:
    """Worker initializer: the data (None: the embedded digits)."""
    global _WORKER_DATA, _WORKER_CLASSIFIER
    if X is None:
        from nemm.datasets import embedded_digits

        X, y = embedded_digits()
    _WORKER_DATA = (X, y)
    _WORKER_CLASSIFIER = None


def _worker_data() -> tuple[np.ndarray, np.ndarray | None]:
    if _WORKER_DATA is None:
        raise RuntimeError("reproduce worker used before its data were set")
    return _WORKER_DATA


def _classifier() -> Any:
    """The naive-Bayes classifier of the data's labels, fitted once per worker (None without labels)."""
    global _WORKER_CLASSIFIER
    X, y = _worker_data()
    if y is None:
        return None
    if _WORKER_CLASSIFIER is None:
        from nemm.mixing import BernoulliNaiveBayes

        _WORKER_CLASSIFIER = BernoulliNaiveBayes().fit(X, y)
    return _WORKER_CLASSIFIER


def _mixing_record(model: Any, seed: int, n_steps: int) -> dict[str, Any]:
    """The class-mixing measures of the model's own chain (NaN without labels)."""
    from nemm.mixing import mixing_of

    X, y = _worker_data()
    clf = _classifier()
    if clf is None or n_steps < 2:
        return {k: float("nan") for k in RECORD_MIXING}
    t0 = time.perf_counter()
    mm = mixing_of(model, X, y, n_steps=n_steps, seed=derive_seed(seed, _MIXING_STREAM), classifier=clf)
    d = mm.as_dict()
    rec = {k: d[k] for k in RECORD_MIXING}
    rec["mixing_steps"] = int(n_steps)
    rec["mixing_seconds"] = time.perf_counter() - t0
    return rec


def _settings_columns(task: Mapping[str, Any]) -> dict[str, Any]:
    v = task["variant"]
    return {"variant": task["variant_name"], "normalization": v["normalization"], "hidden": v["hidden"],
            "centered": v["centered"], "n_hidden": int(task["n_hidden"])}


def _chain_model_record(model: Any, task: Mapping[str, Any], kind: str, train_s: float) -> dict[str, Any]:
    """Diagnose a chain model (machine or RBM), measure its mixing, save it; one record."""
    from nemm import diagnostics as diag

    X, y = _worker_data()
    seed = int(task["seed"])
    t1 = time.perf_counter()
    # diag_steps steps in all (the spec's 1e5), as two parallel chains, and 1000 Rao-Blackwell
    # draws per state: the error bars of the report stay small, and 36 seeds stay within seconds.
    d = diag.diagnose(model, X, y, n_steps=max(2, int(task["diag_steps"]) // 2),
                      seed=derive_seed(seed, _DIAGNOSTICS_STREAM), n_chains=2,
                      rao_blackwell_draws=int(task["rb_draws"]))
    diag_s = time.perf_counter() - t1
    path = task.get("model_path")
    saved = str(model.save(path)) if path else None
    ck = d.class_kl
    L = int(task["n_hidden"])
    sigma = d.sigma_rao_blackwell if d.sigma_rao_blackwell is not None else d.sigma
    sigma_err = d.sigma_rao_blackwell_err if d.sigma_rao_blackwell_err is not None else d.sigma_err
    rec: dict[str, Any] = {
        "kind": kind,
        "seed": seed,
        **_settings_columns(task),
        "tied": kind == "tied",
        "n_epochs": int(task["n_epochs"]) if kind != "rbm" else int(model.n_epochs),
        "loglik": d.loglik_exact,
        # The headline sigma is the model's own (Rao-Blackwell M); the counting one sits beside it.
        "sigma": sigma,
        "sigma_err": sigma_err,
        "sigma_counting": d.sigma,
        "sigma_counting_err": d.sigma_err,
        "counting_steps": int(d.sampling["n_steps"]) * int(d.sampling["n_chains"]),
        **{name: getattr(d, name) for name in RECORD_DIAGNOSTICS},
        "class_kl": ck.kl if ck else None,
        "class_p_model": ck.p_model if ck else None,
        "class_p_data": ck.p_data if ck else None,
        "state_class": ck.state_class if ck else None,
        "regime": classify_regime(sigma, sigma_err, d.tau, d.self_transition, L) if d.n_states == L
        else "",
        "train_seconds": train_s,
        "diag_seconds": diag_s,
        "model": saved,
        "history": {k: list(v) for k, v in getattr(model, "history_", {}).items() if k != "batch_size"},
    }
    rec.update(_mixing_record(model, seed, int(task["mixing_steps"])))
    return rec


def _train_machine(task: Mapping[str, Any]) -> dict[str, Any]:
    """Train one nonequilibrium (or tied) machine with per-epoch tracking, then measure it."""
    from nemm import Machine
    from nemm import diagnostics as diag

    X, y = _worker_data()
    seed = int(task["seed"])
    v = task["variant"]
    t0 = time.perf_counter()
    m = Machine(int(task["n_hidden"]), hidden=v["hidden"], normalization=v["normalization"],
                centered=bool(v["centered"]), tied=task["kind"] == "tied", n_epochs=int(task["n_epochs"]),
                learning_rate=float(v["learning_rate"]), chain_steps=int(v["chain_steps"]),
                n_chains=int(v["n_chains"]), random_state=seed)
    callback = None
    if task["track_every"]:
        callback = diag.epoch_tracker(X, y, every=int(task["track_every"]), n_steps=int(task["track_steps"]))
    m.fit(X, callback=callback)
    return _chain_model_record(m, task, task["kind"], time.perf_counter() - t0)


def _train_rbm(task: Mapping[str, Any]) -> dict[str, Any]:
    """The equilibrium baseline: an RBM trained by its own exact gradient (its defaults)."""
    from nemm.rbm import RBM

    X, _ = _worker_data()
    t0 = time.perf_counter()
    rbm = RBM(int(task["n_hidden"]), hidden=task["variant"]["hidden"], random_state=int(task["seed"])).fit(X)
    return _chain_model_record(rbm, task, "rbm", time.perf_counter() - t0)


def _fit_mixture(task: Mapping[str, Any]) -> dict[str, Any]:
    """The EM Bernoulli mixture (several restarts) and the mixing of its i.i.d. draws."""
    from nemm.baselines import BernoulliMixture

    X, _ = _worker_data()
    t0 = time.perf_counter()
    mix = BernoulliMixture(n_components=int(task["n_hidden"]), n_init=int(task["n_init"]),
                           random_state=int(task["seed"])).fit(X)
    rec: dict[str, Any] = {
        "kind": "mixture", "seed": int(task["seed"]), **_settings_columns(task),
        "loglik": float(mix.log_likelihood_), "n_components": int(task["n_hidden"]),
        "n_init": int(task["n_init"]), "train_seconds": time.perf_counter() - t0,
        # Not a chain: no entropy production, no M.
        "sigma": float("nan"), "sigma_err": float("nan"), "sigma_counting": float("nan"), "n_one_way": None,
        "tau": float("nan"), "self_transition": float("nan"), "class_kl": None, "regime": "",
        "occupancy": [float(w) for w in mix.weights_],
    }
    rec.update(_mixing_record(mix, int(task["seed"]), int(task["mixing_steps"])))
    return rec


def _run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    kind = task["kind"]
    if kind == "mixture":
        return _fit_mixture(task)
    if kind == "rbm":
        return _train_rbm(task)
    return _train_machine(task)


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


def _variants(compare: str | None, base: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, settings) of every variant: one, or one per value of the compared setting."""
    if compare is None:
        return [(str(base["normalization"]), dict(base))]
    if compare not in COMPARABLE:
        raise ValueError(f"compare must be one of {sorted(COMPARABLE)}, got {compare!r}")
    return [(str(v), {**base, compare: v}) for v in COMPARABLE[compare]]


def _seed_list(value: Any, default: int) -> list[int]:
    if value is None:
        value = default
    if isinstance(value, (int, np.integer)):
        if value < 0:
            raise ValueError(f"a number of seeds must be >= 0, got {value}")
        return list(range(int(value)))
    return [int(s) for s in value]


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
    tied_seeds: int | Sequence[int] | None = None,
    figures: bool = True,
    normalization: str = "softmax",
    hidden: str = "onehot",
    centered: bool = True,
    n_chains: int = 1,
    chain_steps: int = 48,
    learning_rate: float = 0.1,
    compare: str | None = None,
    mixing_steps: int | None = None,
    rao_blackwell_draws: int = 1000,
) -> dict[str, Any]:
    """Run the paper's section IV beside its baselines and write a report.

    Parameters
    ----------
    out_dir : path-like
        Output directory (created): ``results.csv`` (one row per model, ``kind`` in
        nemm, rbm, tied, mixture), ``results.json``, ``fig2.png``, ``fig3_best.png``,
        ``fig3_worst.png``, ``fig4.png``, ``fig5_mixing.png``, ``fig6_sigma.png``,
        ``report.md``, ``models/``.
    seeds : int or sequence of int, optional
        Number of nemm seeds (0, 1, ...) or the seeds themselves. Default 36 (quick: 6).
    n_epochs : int, optional
        Epochs per machine (nemm and tied). Default 120 (quick: 60).
    quick : bool
        Demo settings: 6 seeds, 60 epochs, 2 EM restarts, 1 RBM and 1 tied seed, shorter
        chains (well under a minute on two cores). Explicit arguments still win.
    n_jobs : int, optional
        Worker processes (default ``os.cpu_count()``); 1 runs everything in this process.
    data : optional
        ``None`` (the embedded digits 0, 1, 2 with labels), an (N, D) 0/1 array, or a
        pair ``(X, y)`` with integer labels (for the class KL and the mixing measures).
    track_every, track_steps : int
        Track sigma, tau and the exact log-likelihood every ``track_every`` epochs
        (0: no tracking) on chains of ``track_steps`` steps.
    progress : bool
        Print what is being done and one line per finished model.
    n_hidden : int
        L: hidden states (one-hot) or units (binary) of every model (the paper: 6).
    diag_steps : int
        Steps of the final diagnostics of every chain model, split over 2 chains (the paper: 1e5).
    em_restarts : int, optional
        EM restarts of the mixture (default 5; quick 2; 0 for no mixture).
    rbm_seeds : int or sequence of int, optional
        Seeds of the equilibrium RBM (:class:`nemm.RBM`, its defaults): default 2 (quick 1; 0 for none).
    tied_seeds : int or sequence of int, optional
        Seeds of the tied machine trained by eqs. 16-17: default 3 (quick 1; 0 for none).
    figures : bool
        Draw the figures (needs matplotlib).
    normalization, hidden, centered, n_chains, chain_steps, learning_rate
        Settings of the machines (see :class:`nemm.Machine`); ``hidden`` is also the
        RBM's hidden layer.
    compare : {"normalization"}, optional
        Run the machines once per value of that setting (softmax and sigmoid, eq. 19),
        side by side in one report. The RBM, the mixture and the tied machine (always softmax:
        eq. 19's sigmoid ratio does not apply to the tied sampler) do not depend on it and run once.
    mixing_steps : int, optional
        Length of each model's mixing chain (default 20000; quick 10000).
    rao_blackwell_draws : int
        Draws per hidden state of the Rao-Blackwell M (the headline sigma).

    Returns
    -------
    dict
        ``protocol``, ``models`` (one record per model), ``seeds`` (the nemm records of the
        first variant), ``baselines`` (``em``, ``rbm``, ``tied``), ``variants`` (per-variant
        summaries), ``summary``, ``files`` (written paths) and ``seconds``.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_list = _seed_list(seeds, QUICK_SEEDS if quick else 36)
    epochs = int(n_epochs if n_epochs is not None else (QUICK_EPOCHS if quick else 120))
    n_em = int(em_restarts if em_restarts is not None else (2 if quick else 5))
    rbm_list = _seed_list(rbm_seeds, 1 if quick else 2)
    tied_list = _seed_list(tied_seeds, 1 if quick else 3)
    mix_steps = int(mixing_steps if mixing_steps is not None else (10_000 if quick else MIXING_STEPS))
    jobs = int(n_jobs or os.cpu_count() or 1)
    if not seed_list:
        raise ValueError("reproduce needs at least one seed")
    if epochs < 1 or n_hidden < 2:
        raise ValueError("need n_epochs >= 1 and n_hidden >= 2")
    if normalization not in ("softmax", "sigmoid"):
        raise ValueError(f"normalization must be 'softmax' or 'sigmoid', got {normalization!r}")
    if hidden not in ("onehot", "binary"):
        raise ValueError(f"hidden must be 'onehot' or 'binary', got {hidden!r}")
    base = {"normalization": normalization, "hidden": hidden, "centered": bool(centered),
            "n_chains": int(n_chains), "chain_steps": int(chain_steps), "learning_rate": float(learning_rate)}
    variants = _variants(compare, base)
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
    say(f"nemm reproduce — {mode} run: {len(seed_list)} nemm seed(s) × {epochs} epochs, L = {n_hidden} {hidden}, "
        f"{' and '.join(n for n, _ in variants)} normalization, on {data_desc}")
    say(f"  beside them: equilibrium RBM ({len(rbm_list)} seed(s)), tied machine ({len(tied_list)} seed(s)), "
        f"EM mixture ({n_em} restarts); {jobs} worker process(es); writing to {out.resolve()}")

    models = out / "models"
    models.mkdir(exist_ok=True)
    common = dict(n_hidden=int(n_hidden), n_epochs=epochs, track_every=int(track_every),
                  track_steps=int(track_steps), diag_steps=int(diag_steps), mixing_steps=mix_steps,
                  rb_draws=int(rao_blackwell_draws))
    tasks: list[dict[str, Any]] = []
    shared = ("shared" if len(variants) > 1 else variants[0][0])
    # The slow jobs first, so the pool's tail is short.
    for s in rbm_list:
        tasks.append({"kind": "rbm", "seed": s, **common, "variant": base, "variant_name": shared,
                      "model_path": str(models / f"rbm_seed_{s:03d}.npz")})
    # The tied machine is an RBM-like sampler: eq. 19's sigmoid ratio does not apply to it (it always
    # runs with the softmax kernel), so it does not depend on the compared normalization and runs once.
    tied_variant = {**base, "normalization": "softmax"}
    for s in tied_list:
        tasks.append({"kind": "tied", "seed": s, **common, "variant": tied_variant, "variant_name": shared,
                      "model_path": str(models / f"tied_seed_{s:03d}.npz")})
    for name, v in variants:
        tag = f"{name}_" if len(variants) > 1 else ""
        for s in seed_list:
            tasks.append({"kind": "nemm", "seed": s, **common, "variant": v, "variant_name": name,
                          "model_path": str(models / f"{tag}seed_{s:03d}.npz")})
    if n_em > 0:
        tasks.append({"kind": "mixture", "seed": 0, **common, "n_init": n_em, "variant": base,
                      "variant_name": shared})

    results: list[dict[str, Any]] = []
    say(f"training and measuring {len(tasks)} model(s)...")
    bar = tqdm(total=len(tasks), desc="models", unit="model", disable=not progress, leave=False)

    def collect(done: Iterable[dict[str, Any]]) -> None:
        for r in done:
            results.append(r)
            bar.update(1)
            say(f"  [{len(results)}/{len(tasks)}] {time.perf_counter() - t_start:6.1f} s  {describe_result(r)}")

    def finish(map_fn: Any) -> dict[str, Any]:
        bar.close()
        res = _assemble(results, out, mode=mode, data_desc=data_desc, n_hidden=int(n_hidden), epochs=epochs,
                        seed_list=seed_list, rbm_list=rbm_list, tied_list=tied_list, n_em=n_em, jobs=jobs,
                        track_every=track_every, track_steps=track_steps, diag_steps=diag_steps,
                        variants=variants, compare=compare, mixing_steps=mix_steps,
                        rb_draws=int(rao_blackwell_draws))
        res["training_seconds"] = time.perf_counter() - t_start
        fig_files = None
        if figures:
            say("drawing figures...")
            fig_files = draw_figures(res, out, map_fn)
        res["seconds"] = time.perf_counter() - t_start
        write_tables(res, out, fig_files)
        return res

    if jobs == 1:
        global _WORKER_DATA, _WORKER_CLASSIFIER
        saved = (_WORKER_DATA, _WORKER_CLASSIFIER)
        try:
            _init_worker(X, y)
            collect(_run_task(t) for t in tasks)
        finally:
            _WORKER_DATA, _WORKER_CLASSIFIER = saved
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


def _by_seed(results: Sequence[dict[str, Any]], kind: str, variant: str | None = None) -> list[dict[str, Any]]:
    return sorted((r for r in results if r["kind"] == kind and (variant is None or r["variant"] == variant)),
                  key=lambda r: r["seed"])


def _assemble(results: Sequence[dict[str, Any]], out: Path, *, mode: str, data_desc: str, n_hidden: int,
              epochs: int, seed_list: list[int], rbm_list: list[int], tied_list: list[int], n_em: int, jobs: int,
              track_every: int, track_steps: int, diag_steps: int, variants: list[tuple[str, dict[str, Any]]],
              compare: str | None, mixing_steps: int, rb_draws: int) -> dict[str, Any]:
    """The results dictionary (the table the report is written from)."""
    for r in results:
        if r.get("model"):
            r["model"] = os.path.relpath(r["model"], out)
    em_res = next((r for r in results if r["kind"] == "mixture"), None)
    rbm_res = _by_seed(results, "rbm")
    em_ll = em_res["loglik"] if em_res else None
    first = variants[0][1]
    protocol = {
        "mode": mode, "data": data_desc, "n_hidden": n_hidden, "hidden": first["hidden"], "n_epochs": epochs,
        "steps_per_epoch": 30, "batch_size": [16, 160], "chain_steps": first["chain_steps"],
        "n_chains": first["n_chains"], "learning_rate": first["learning_rate"], "centered": first["centered"],
        "normalization": first["normalization"], "compare": compare, "variants": [n for n, _ in variants],
        "seeds": seed_list, "rbm_seeds": rbm_list, "tied_seeds": tied_list, "em_restarts": n_em, "n_jobs": jobs,
        "track_every": int(track_every), "track_steps": int(track_steps), "diag_steps": int(diag_steps),
        "mixing_steps": int(mixing_steps), "rao_blackwell_draws": int(rb_draws),
    }
    per_variant = []
    tied_all = _by_seed(results, "tied")
    for name, v in variants:
        seeds_v = _by_seed(results, "nemm", name)
        tied_v = tied_all
        per_variant.append({"name": name, "settings": dict(v), "seeds": seeds_v, "tied": tied_v,
                            "summary": summarize(seeds_v, tied_v, em_ll, n_hidden, rbms=rbm_res, mixture=em_res)})
    order = {k: i for i, k in enumerate(KINDS)}
    models = sorted(results, key=lambda r: (order[r["kind"]], str(r.get("variant")), r["seed"]))
    # The headline summary is the first variant's, but its comparison of kinds covers every variant.
    summary = dict(per_variant[0]["summary"])
    summary["kinds"] = kind_summary(models)
    return {
        "protocol": protocol,
        "models": models,
        "seeds": per_variant[0]["seeds"],
        "baselines": {"em": em_res, "rbm": rbm_res, "tied": tied_all},
        "variants": per_variant,
        "summary": summary,
        "seconds": 0.0,
        "files": {},
    }
