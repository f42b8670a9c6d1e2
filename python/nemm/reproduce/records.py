"""One model of a reproduction, trained and measured: the record of a run of kind nemm, tied, rbm or mixture.

:func:`run_record` is what every run of a sweep with ``[diagnostics] report =
"reproduce"`` executes (``nemm reproduce`` is such a sweep), in a worker:

* ``nemm`` and ``tied``: a :class:`~nemm.Machine` (``tied``: wbar = w^T, trained by
  eqs. 16-17), tracked every ``track_every`` epochs;
* ``rbm``: the equilibrium baseline :class:`nemm.RBM`, trained by its own exact gradient;
* ``mixture``: the EM mixture of product-Bernoullis, sampled by i.i.d. draws.

Every chain model gets :func:`nemm.diagnostics.diagnose` with the Rao-Blackwell
entropy production as headline (spec, "Entropy production: which estimator"),
and every model the class mixing of its own sampling chain (:func:`nemm.sample_mixing.mixing_of`),
with its ``sampler`` and ``sample_cost`` (Gibbs sweeps per sample: :data:`SAMPLE_COSTS`). The RBM,
trained once, has its mixing measured with each of its samplers (``samplers``: gibbs, pt, and
exact where its hidden layer is enumerable); its record's own mixing measures are its Gibbs chain's,
and results.csv shows one row per sampler.
Side computations get seeds hashed from the run's seed (:func:`nemm._seeds.derive_seed`),
stream 1 for the diagnostics chains and stream 2 for the mixing chain, as in a plain sweep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from nemm._seeds import derive_seed
from nemm._settings import TRACK_STEPS
from nemm.mixture import _CLIP as EM_PROBABILITY_CLIP
from nemm.reproduce.regimes import classify_regime

__all__ = ["KINDS", "RECORD_DIAGNOSTICS", "RECORD_MIXING", "SAMPLE_COSTS", "run_record"]

#: The kinds of model of a reproduction, in report order.
KINDS = ("nemm", "rbm", "tied", "mixture")
#: Streams of the final diagnostics' chains and of the mixing chain, hashed with the seed.
DIAGNOSTICS_STREAM = 1
MIXING_STREAM = 2

#: Diagnostics copied into every chain model's record under the same name (see nemm.diagnostics.Diagnosis).
RECORD_DIAGNOSTICS = (
    "sigma",
    "sigma_err",
    "sigma_converged",
    "sigma_method",
    "sigma_effort",
    "sigma_effort_needed",
    "sigma_counting",
    "sigma_counting_err",
    "loglik_on_the_fly",
    "loglik_err",
    "n_one_way",
    "pseudocount",
    "sigma_two_way",
    "tau",
    "tau_err",
    "self_transition",
    "self_transition_err",
    "random_self_transition",
    "sigma_rao_blackwell",
    "tau_rao_blackwell",
    "occupancy",
    "M",
    "sampling",
    "sigma_rao_blackwell_err",
    "sigma_rao_blackwell_converged",
    "sigma_rao_blackwell_curve",
    "sigma_counting_curve",
    "rao_blackwell_draws",
    "currents",
    "dominant_cycle",
    "cycle_affinity",
    "cycle_current",
    "self_transition_rao_blackwell",
)
#: The measures of nemm.mixing.MixingMeasures copied into every record.
RECORD_MIXING = (
    "tau_int_class",
    "tau_int_class_envelope",
    "tau_int_class_sokal",
    "tau_window",
    "tau_window_envelope",
    "tau_window_sokal",
    "cover_time",
    "cover_fraction",
    "class_kl_samples",
    "class_frequencies",
)

#: The sampler and cost per sample (in sweeps x | h + h | x, or their equivalent) of the kinds with
#: one sampler: the machines' chain (one double step per sample, thin 1), and the mixture's i.i.d.
#: ancestral draws (a component, then x | component: half a sweep). The RBM's come from RBM.sample.
SAMPLE_COSTS = {"nemm": ("chain", 1.0), "tied": ("chain", 1.0), "mixture": ("iid", 0.5)}

# The naive-Bayes classifier of the labels, fitted once per worker and data set (keyed by the data checksum).
_CLASSIFIERS: dict[str, Any] = {}


def _classifier(X: np.ndarray, y: np.ndarray | None, key: str) -> Any:
    if y is None:
        return None
    if key not in _CLASSIFIERS:
        from nemm.classifier import BernoulliNaiveBayes

        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = BernoulliNaiveBayes().fit(X, y)
    return _CLASSIFIERS[key]


def _mixing_record(
    model: Any,
    X: np.ndarray,
    y: np.ndarray | None,
    clf: Any,
    seed: int,
    n_steps: int,
    kind: str,
    sampler: str | None = None,
) -> dict[str, Any]:
    """The class-mixing measures of the model's own chain (NaN without labels), its sampler and cost.

    ``sampler``: an RBM's (gibbs, pt, exact); every sampler of one model gets the same seed.
    """
    from nemm.sample_mixing import mixing_of

    name, cost = (sampler, math.nan) if sampler is not None else SAMPLE_COSTS[kind]
    if clf is None or n_steps < 2:
        return {**{k: math.nan for k in RECORD_MIXING}, "sampler": name, "sample_cost": cost}
    t0 = time.perf_counter()
    mm = mixing_of(
        model, X, y, n_steps=n_steps, seed=derive_seed(seed, MIXING_STREAM), classifier=clf, sampler=sampler
    )
    d = mm.as_dict()
    rec = {k: d[k] for k in RECORD_MIXING}
    rec["sampler"] = name
    rec["sample_cost"] = float(model.sample_cost_) if sampler is not None else cost
    if sampler == "pt":
        rec["pt_swap_rates"] = [float(r) for r in model.pt_swap_rates_]
        rec["pt_betas"] = [float(b) for b in model.pt_betas_]
    rec["mixing_steps"] = int(n_steps)
    rec["mixing_seconds"] = time.perf_counter() - t0
    return rec


def _rbm_samplers(model: Any) -> tuple[str, ...]:
    """The RBM's samplers measured by a reproduction: exact only where its hidden layer is enumerable."""
    from nemm.rbm import EXACT_MAX_STATES

    return ("gibbs", "pt") + (("exact",) if model.n_states <= EXACT_MAX_STATES else ())


def _chain_record(
    model: Any, kind: str, seed: int, X: np.ndarray, y: np.ndarray | None, diag_cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """Diagnose a chain model (machine or RBM): its record without the mixing measures."""
    from nemm import diagnostics as diag

    t1 = time.perf_counter()
    d = diag.diagnose(
        model,
        X,
        y,
        n_steps=int(diag_cfg["diagnostic_steps"]),
        seed=derive_seed(seed, DIAGNOSTICS_STREAM),
        n_chains=int(diag_cfg["n_chains"]),
        pseudocount=float(diag_cfg["pseudocount"]),
        rao_blackwell_draws=int(diag_cfg.get("rao_blackwell_draws", 0)),
        sigma_effort=float(diag_cfg.get("sigma_effort", 1.0)),
    )
    ck = d.class_kl
    L = int(model.n_hidden)
    regime = classify_regime(d.sigma, d.sigma_err, d.tau, d.self_transition, L) if d.n_states == L else ""
    return {
        "loglik": d.loglik_exact,
        "counting_steps": int(d.sampling["n_steps"]) * int(d.sampling["n_chains"]),
        **{name: getattr(d, name) for name in RECORD_DIAGNOSTICS},
        "class_kl": ck.kl if ck else None,
        "class_p_model": ck.p_model if ck else None,
        "class_p_data": ck.p_data if ck else None,
        "state_class": ck.state_class if ck else None,
        "regime": regime,
        "diag_seconds": time.perf_counter() - t1,
        "history": {k: list(v) for k, v in getattr(model, "history_", {}).items() if k != "batch_size"},
    }


def run_record(
    kind: str,
    settings: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray | None,
    diagnostics: Mapping[str, Any],
    *,
    data_key: str = "",
) -> tuple[dict[str, Any], Any]:
    """Train one model of ``kind`` with ``settings`` and measure it.

    Parameters
    ----------
    kind : {"nemm", "tied", "rbm", "mixture"}
    settings : dict
        ``nemm``/``tied``: Machine keywords (``random_state`` the seed); ``rbm``: RBM
        keywords; ``mixture``: ``n_components``, ``n_init``, ``random_state``.
    X, y : arrays
        The data and their labels (None: no class KL, no mixing measures).
    diagnostics : dict
        ``diagnostic_steps`` (per chain), ``n_chains``, ``pseudocount``, ``rao_blackwell_draws``,
        ``sigma_effort`` (of the headline sigma, default 1), ``mixing_steps``, ``track_every``, ``track_steps``.
    data_key : str
        Identity of the data (their checksum), to reuse the label classifier between runs.

    Returns
    -------
    (record, model)
        The record (plain Python values, as JSON keeps them) and the trained model.
    """
    from nemm.results import to_jsonable

    seed = int(settings["random_state"])
    model: Any  # a Machine, RBM or BernoulliMixture, by kind
    t0 = time.perf_counter()
    if kind in ("nemm", "tied"):
        from nemm import Machine
        from nemm import diagnostics as diag

        machine_kwargs: dict[str, Any] = {
            k: (tuple(v) if k == "batch_size" and isinstance(v, list) else v) for k, v in settings.items()
        }
        model = Machine(**machine_kwargs)
        callback = None
        if int(diagnostics.get("track_every", 0)):
            callback = diag.epoch_tracker(
                X,
                y,
                every=int(diagnostics["track_every"]),
                n_steps=int(diagnostics.get("track_steps", TRACK_STEPS)),
            )
        model.fit(X, callback=callback)
    elif kind == "rbm":
        from nemm.rbm import RBM

        model = RBM(**settings).fit(X)
    elif kind == "mixture":
        from nemm.baselines import BernoulliMixture

        model = BernoulliMixture(**settings).fit(X)
    else:
        raise ValueError(f"unknown kind of run {kind!r}; expected one of {', '.join(KINDS)}")
    train_s = time.perf_counter() - t0
    rec: dict[str, Any] = {"kind": kind, "seed": seed}
    if kind == "mixture":
        rec.update(
            {
                "loglik": float(model.log_likelihood_),
                "n_components": int(settings["n_components"]),
                "n_init": int(settings["n_init"]),
                "probability_clip": EM_PROBABILITY_CLIP,  # the ceiling depends on it (0.4 nats, 1e-6 vs 1e-3)
                # Not a chain: no entropy production, no M.
                "sigma": math.nan,
                "sigma_err": math.nan,
                "sigma_converged": None,
                "sigma_method": "",
                "sigma_counting": math.nan,
                "sigma_counting_err": math.nan,
                "n_one_way": None,
                "tau": math.nan,
                "self_transition": math.nan,
                "class_kl": None,
                "regime": "",
                "occupancy": [float(w) for w in model.weights_],
            }
        )
    else:
        rec["tied"] = kind == "tied"
        rec["n_epochs"] = int(model.training_settings_["n_epochs"] if kind != "rbm" else model.n_epochs)
        rec.update(_chain_record(model, kind, seed, X, y, diagnostics))
    rec["train_seconds"] = train_s
    clf, n_mix = _classifier(X, y, data_key), int(diagnostics.get("mixing_steps", 0))
    if kind == "rbm":
        per = [_mixing_record(model, X, y, clf, seed, n_mix, kind, s) for s in _rbm_samplers(model)]
        rec.update(per[0])  # the Gibbs chain's: the RBM's own chain, as for the other chain models
        rec["samplers"] = per
    else:
        rec.update(_mixing_record(model, X, y, clf, seed, n_mix, kind))
    return to_jsonable(rec), model
